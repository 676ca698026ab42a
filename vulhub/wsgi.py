import os
import sys

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")

try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ImproperlyConfigured as exc:  # a configuration message, not a traceback
    sys.stderr.write(f"VulHub cannot start: {exc}\n")
    raise SystemExit(1) from None
