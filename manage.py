#!/usr/bin/env python
"""Django's command-line utility for VulHub."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (load settings now, to report bad ones plainly)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"VulHub is not configured correctly: {exc}\n")
        sys.exit(1)
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as exc:
        sys.stderr.write(f"The database could not be reached: {exc}\nCheck DATABASE_URL and that the server runs.\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
