#!/usr/bin/env python
"""Django's command line for courseprogress.

After `make run` (which makes the .venv): `.venv/bin/python manage.py <command>`, or
`make manage ARGS="<command>"`. Without SECRET_KEY in the environment it reads the key that
`make run` keeps in .secret_key (or the file SECRET_KEY_FILE names), so a command sees the same
installation as the server: the same demo passwords, the same signed sessions.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not os.environ.get("SECRET_KEY"):
        key_file = Path(os.environ.get("SECRET_KEY_FILE") or ROOT / ".secret_key")
        if key_file.is_file():
            os.environ["SECRET_KEY"] = key_file.read_text().strip()
    try:
        from django.core.exceptions import ImproperlyConfigured
        from django.core.management import execute_from_command_line
    except ImportError:
        sys.exit(
            f"manage.py: Django is not installed for {sys.executable}. Run `make run` once, "
            'then `.venv/bin/python manage.py ...` or `make manage ARGS="..."`.'
        )
    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting is missing or wrong: one line, no traceback
        sys.exit(f"manage.py: {exc}")


if __name__ == "__main__":
    main()
