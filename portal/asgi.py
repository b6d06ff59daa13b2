"""ASGI entry point: uvicorn serves the portal, so the proxy registry can stream."""

import os

import django
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup(set_prefix=False)


class PortalASGIHandler(ASGIHandler):
    # Django sends a streamed response in 64 KB messages; the proxy registry streams blobs of
    # hundreds of MB, and 1 MB messages cost a sixteenth of the per-message overhead.
    chunk_size = 2**20


application = PortalASGIHandler()
# The portal is self-hosted with no separate web server in front by default: serve /static/
# from the app directories and static/ (collectstatic is not needed).
application = ASGIStaticFilesHandler(application)
