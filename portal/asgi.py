"""ASGI entry point: uvicorn serves the portal, so the proxy registry can stream."""

import ctypes
import os

import django
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.handlers.asgi import ASGIHandler

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


application = PortalASGIHandler()
# The portal is self-hosted with no separate web server in front by default: serve /static/
# from the app directories and static/ (collectstatic is not needed).
application = ASGIStaticFilesHandler(application)
