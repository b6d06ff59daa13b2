"""ASGI entry point: uvicorn serves the portal, so the proxy registry can stream."""

import ctypes
import os

import django
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import response_for_exception
from django.http import Http404
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from portal.lane import LeanLane
from portal.lifespan import serve_lifespan


def tune_malloc(mmap_threshold: int = 2 << 20, trim_threshold: int = 16 << 20) -> bool:
    """Keep glibc from mapping and unmapping memory for every socket read (proxy registry).

    The event loop reads a streamed blob as ~256 KB ``bytes`` objects; glibc serves allocations
    that large with a fresh mmap (and returns them with munmap, or trims the heap top), so each
    read pays page faults and syscalls: reading 100 MB cost ~0.25 s of CPU instead of ~0.1 s
    (docs/benchmarks.md, "Proxy registry"). With a fixed 2 MB mmap threshold and 16 MB of
    free heap kept before trimming, the buffers are reused. MALLOC_MMAP_THRESHOLD_ /
    MALLOC_TRIM_THRESHOLD_ in the environment win; other C libraries are left alone.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, mmap_threshold)) and bool(
        mallopt(m_trim_threshold, trim_threshold))


tune_malloc()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup(set_prefix=False)


class PortalASGIHandler(ASGIHandler):
    # Django sends a streamed response in 64 KB messages; the proxy registry streams blobs of
    # hundreds of MB, and 1 MB messages cost a sixteenth of the per-message overhead.
    chunk_size = 2**20

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # Django speaks HTTP only (portal/lifespan.py)
            await serve_lifespan(receive, send)
            return
        await super().__call__(scope, receive, send)


class PortalStaticFilesHandler(ASGIStaticFilesHandler):
    """/static/ from the app directories and static/, with the headers every other page carries.

    Django's handler answers only a missing file with 404: a path that leaves the static
    directories (``/static/../../var/encryption_keys``, however it is encoded) makes the finders
    raise SuspiciousFileOperation, which escaped as a 500 with a traceback in the log. Such a path
    names no static file, so it is a 404 like any other. The handler also bypasses the site's
    middleware; the two that set response headers (nosniff, Referrer-Policy, COOP, HSTS over
    HTTPS, the HTTPS redirect, X-Frame-Options) wrap the file view here, 404s included.
    Sessions, CSRF and authentication have nothing to do with a public file.
    """

    def __init__(self, application):
        super().__init__(application)
        self._serve_with_headers = SecurityMiddleware(XFrameOptionsMiddleware(self._serve_file))

    def _serve_file(self, request):
        try:
            try:
                return super().serve(request)
            except SuspiciousFileOperation:
                raise Http404("No such static file.") from None
        except Http404 as e:
            return response_for_exception(request, e)

    def serve(self, request):
        return self._serve_with_headers(request)


# The portal is self-hosted with no separate web server in front by default: serve /static/
# from the app directories and static/ (collectstatic is not needed). The registry API's
# ``@lean`` views skip the page middleware (portal/lane.py).
LEAN_PATH_PREFIXES = ("/v2/",)
application = LeanLane(PortalStaticFilesHandler(PortalASGIHandler()), LEAN_PATH_PREFIXES)
