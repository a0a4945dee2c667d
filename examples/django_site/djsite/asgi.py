"""The site as an ASGI app, with the workerkit dashboard at /workerkit for staff users.

Run it with ``uvicorn djsite.asgi:application`` (the Procfile does, on ``$PORT``).
"""

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from workerkit.contrib.django.asgi import mount

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")
django_app = get_asgi_application()
if settings.DEBUG:  # uvicorn serves the admin's stylesheets too, as runserver would
    django_app = ASGIStaticFilesHandler(django_app)
application = mount(django_app, prefix="/workerkit")
