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

from django.conf import settings  # noqa: E402  (after the settings are known to load)

from vulhub.ops import schema  # noqa: E402

# A schema older than the code: one line, and gunicorn stops (exit 3: "Worker failed to boot")
# rather than starting workers that fail on every query (vulhub/ops/schema.py).
if settings.SCHEMA_CHECK_AT_START and (missing := schema.missing_migrations()):
    sys.stderr.write(schema.refusal(missing) + "\n")
    raise SystemExit(3)
