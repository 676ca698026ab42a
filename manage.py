#!/usr/bin/env python
"""Django's command-line utility for VulHub."""

import os
import sys

# Commands that serve requests: they run as the app role, under row-level security. Every
# other command is an operator's tool: it connects as the owner, a role that bypasses it
# (vulhub/settings.py, docs/security.md).
SERVING_COMMANDS = {"runserver"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
    if len(sys.argv) > 1 and sys.argv[1] not in SERVING_COMMANDS and not sys.argv[1].startswith("-"):
        os.environ["VULHUB_MANAGEMENT_COMMAND"] = sys.argv[1]
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (load settings now, to report bad ones plainly)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"VulHub is not configured correctly: {exc}\n")
        sys.exit(1)
    from django.db import OperationalError

    from vulhub.ops.embedded_db.server import EmbeddedServerError

    try:
        execute_from_command_line(sys.argv)
    except EmbeddedServerError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
    except OperationalError as exc:
        sys.stderr.write(f"The database could not be reached: {exc}\nCheck DATABASE_URL and that the server runs.\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
