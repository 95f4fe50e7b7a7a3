# The Django project in djproj/, through Django's own WSGI handler.
import os
import sys

sys.path.insert(0, os.path.join("@APPS_DIR@", "djproj"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pyhost_testsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
