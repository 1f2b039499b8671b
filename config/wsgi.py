import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

# In front of Django: refuses charsets that cannot decode text, reads chunked bodies
# (courseprogress/wsgi_guard.py).
from courseprogress.wsgi_guard import RequestGuard  # noqa: E402 - needs the settings above

application = RequestGuard(django_application)
