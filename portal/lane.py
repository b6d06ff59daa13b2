"""The lean lane: async views that need none of the page middleware, served without it.

The proxy registry answers every layer of every pull a customer's cluster makes, so its
per-request cost is paid hundreds of times per install. Through Django's ASGI handler each of
those requests paid for the page machinery it never uses: sessions, CSRF, messages,
authentication, htmx and the login lockout run as sync middleware, each moved to a thread and
back (``sync_to_async``), and the request_started/request_finished signals take two more thread
hops. A view marked ``@lean`` is served here instead, on the event loop with no thread hop:

- the Host check (``request.get_host()``), the HTTPS redirect and the security headers
  (``SecurityMiddleware``, ``XFrameOptionsMiddleware``: pure functions of the request and the
  response, called directly), the request's metric and log line
  (``observability.middleware.record``), exactly as the page middleware gives them;
- a streamed response is sent as its iterator yields, and cancelled when the client goes away
  (as Django's handler does), so an abandoned pull stops reading the upstream.

Anything unusual is handed to Django's handler unchanged, which answers it as before: a path
that resolves to no lean view, a request with a body, a Host that is not allowed (Django's own
400). ORM work of a lean view goes through ``sync_db``: outside Django's request cycle nothing
else checks the thread's database connection before use or closes it after (CONN_MAX_AGE).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import logging
import time

from asgiref.sync import sync_to_async
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.db import close_old_connections
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, get_resolver

from .observability.middleware import record

logger = logging.getLogger(__name__)

_LEAN = "lean_view"
# True while a request is served by the lane: its ORM calls manage their own connection.
_in_lane = contextvars.ContextVar("in_lean_lane", default=False)


def lean(view):
    """Mark an async view to be served by the lean lane (outermost decorator)."""
    setattr(view, _LEAN, True)
    return view


def sync_db(fn):
    """``sync_to_async(fn)`` for ORM work: in the lane, the thread's connection is checked
    before and closed after, as Django's request signals do for every other request."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not _in_lane.get():
            return fn(*args, **kwargs)  # Django's handler (or a test client) does the rest
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=True)


def _passthrough(request):  # the middleware below are used for their hooks only
    raise AssertionError("not called")


class LeanLane:
    """ASGI application: ``@lean`` views under ``prefixes`` here, everything else to
    ``application`` (Django's handler)."""

    def __init__(self, application, prefixes: tuple[str, ...]):
        self.application = application
        self.prefixes = tuple(prefixes)
        self._security = SecurityMiddleware(_passthrough)
        self._frame = XFrameOptionsMiddleware(_passthrough)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            served = await self._serve(scope, receive, send)
            if served:
                return
        await self.application(scope, receive, send)

    def _route(self, scope):
        for name, value in scope["headers"]:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return None  # a body: Django's handler reads it within its limits
        try:
            match = get_resolver().resolve(scope["path"])
        except Resolver404:
            return None
        return match if getattr(match.func, _LEAN, False) else None

    async def _serve(self, scope, receive, send) -> bool:
        match = self._route(scope)
        if match is None:
            return False
        started = time.perf_counter()
        request = ASGIRequest(scope, io.BytesIO())
        try:
            request.get_host()
        except DisallowedHost:
            return False
        request.resolver_match = match
        token = _in_lane.set(True)
        try:
            response = self._security.process_request(request)
            if response is None:
                response = await match.func(request, *match.args, **match.kwargs)
        except Exception as e:  # a lean view answers its own errors; this is the last net
            response = response_for_exception(request, e)
        finally:
            _in_lane.reset(token)
        response = self._frame.process_response(request, self._security.process_response(
            request, response))
        record(request, response, started)
        await _send_response(response, receive, send)
        return True


async def _send_response(response, receive, send) -> None:
    if not response.streaming and not response.has_header("Content-Length"):
        # What CommonMiddleware adds on the page path: a length instead of chunked framing.
        response["Content-Length"] = str(len(response.content))
    headers = [(name.encode("latin-1"), value.encode("latin-1"))
               for name, value in response.items()]
    headers.extend((b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
                   for cookie in response.cookies.values())
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": headers})
    if not response.streaming:
        await send({"type": "http.response.body", "body": response.content})
        return
    pump = asyncio.ensure_future(_pump(response.streaming_content, send))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, gone):
            task.cancel()
        await asyncio.gather(pump, gone, return_exceptions=True)
    if not pump.cancelled() and pump.exception() is not None:
        # The response has started: all that is left is to cut it (the client sees a
        # short body and retries). The view logged why.
        logger.info("lean lane: a streamed response stopped early (%s)",
                    type(pump.exception()).__name__)


async def _pump(chunks, send) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
