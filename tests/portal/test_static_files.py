"""/static/ as the ASGI application serves it: traversal spellings are 404s, files carry the site's headers.

Requests go straight into ``portal.asgi.application`` with the scope uvicorn builds: ``path`` is
``raw_path`` percent-decoded once (uvicorn's httptools and h11 protocols both do this).
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import pytest

from portal import asgi


def asgi_get(raw_path: bytes, *, scheme: str = "http", headers=(), application=asgi.application):
    """One GET through the ASGI application: (status, headers, body)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": scheme, "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path,
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
    }
    sent = []
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    # In a thread of its own: a browser test earlier in the run may leave an event loop
    # running in the main thread (Playwright's sync API), where asyncio.run() refuses to start.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, application(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


TRAVERSALS = [
    b"/static/../../var/encryption_keys",
    b"/static/portal/../../../var/encryption_keys",
    b"/static/%2e%2e/%2e%2e/var/encryption_keys",
    b"/static/%2E%2E/%2E%2E/var/encryption_keys",
    b"/static/..%2f..%2fvar/encryption_keys",
    b"/static/..%2F..%2Fportal/settings.py",
    b"/static/%252e%252e/%252e%252e/var/encryption_keys",
    b"/static/..%255c..%255cvar/encryption_keys",
    b"/static/..\\..\\var\\encryption_keys",
    b"/static/..%5c..%5cvar%5cencryption_keys",
    b"/static/portal.css%00",
    b"/static/%00../../var/encryption_keys",
    b"/static/%c0%ae%c0%ae/%c0%ae%c0%ae/var/encryption_keys",
    b"/static/%c0%af..%c0%af..%c0%afvar/encryption_keys",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/static/nothing-here.css",
]


@pytest.mark.parametrize("raw_path", TRAVERSALS, ids=lambda p: p.decode())
def test_traversal_spellings_are_404_without_a_traceback(raw_path, caplog):
    with caplog.at_level(logging.INFO):
        status, headers, body = asgi_get(raw_path)
    assert status == 404
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text
    assert headers["x-content-type-options"] == "nosniff"


def test_a_static_file_carries_the_sites_security_headers():
    status, headers, body = asgi_get(b"/static/portal/portal.css")
    assert status == 200 and body
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert "strict-transport-security" not in headers  # plain HTTP


def test_a_static_file_over_https_carries_hsts(settings):
    settings.SECURE_HSTS_SECONDS = 3600  # read when the handler is built, as the site's middleware
    handler = asgi.PortalStaticFilesHandler(asgi.PortalASGIHandler())
    status, headers, _ = asgi_get(b"/static/portal/portal.css", scheme="https", application=handler)
    assert status == 200
    assert headers["strict-transport-security"].startswith("max-age=3600")
