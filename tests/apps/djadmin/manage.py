#!/usr/bin/env python
# The manage.py a Django project has: `pyhost serve DIR` finds the settings
# through it.
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pyhost_admin_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
