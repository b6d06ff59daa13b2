"""ASGI entry point: uvicorn serves the portal, so the proxy registry can stream."""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_asgi_application()
# The portal is self-hosted with no separate web server in front by default: serve /static/
# from the app directories and static/ (collectstatic is not needed).
application = ASGIStaticFilesHandler(application)
