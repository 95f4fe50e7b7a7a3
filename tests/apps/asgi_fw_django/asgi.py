# The Django project beside this file, through Django's own ASGI handler
# (which raises on the lifespan scope: served under ASGILifespan auto).
import os
import sys

sys.path.insert(0, os.path.join("@APPS_DIR@", "asgi_fw_django"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fwsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
