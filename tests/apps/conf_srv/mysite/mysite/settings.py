# conf/django.conf's project: database-less, DEBUG off (static files are
# Apache's business).
SECRET_KEY = "pyhost-conf-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
STATIC_URL = "static/"
USE_TZ = True
