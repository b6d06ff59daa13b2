"""Bounds on what a client may send before the portal sees a request: uvicorn's fast parser.

The Procfile runs uvicorn with ``--http portal.server:BoundedHttpToolsProtocol``. uvicorn's
httptools protocol has no limit on the request head: httptools joins the pieces of a header
value as they arrive (a 50 MB header is held, and copied, whole), and nothing closes a
connection that sends its head one byte at a time. This subclass keeps httptools and adds:

- the request target (URL) at most ``MAX_URL_BYTES`` (8 KB): 414;
- at most ``MAX_HEADER_FIELDS`` (100) header fields and ``MAX_HEADER_BYTES`` (64 KB) of them:
  431. Bytes received while a head is incomplete are counted too, so a header that never
  ends is refused after about 72 KB instead of being collected;
- the whole head (request line and headers) within ``HEAD_TIMEOUT`` (10 s) of the request's
  first byte, and the first request within 10 s of the connection opening; else the
  connection is closed.

The timer covers the head only: once the head is complete it is off, so a response that
takes minutes to send (a slow cluster pulling a 1 GB layer) is never cut. A refusal is a
short plain-text answer, then the connection closes.
"""

from __future__ import annotations

import asyncio

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
HEAD_TIMEOUT = 10.0
# The request line around the URL (method, version) and the line ends: room for both.
_HEAD_SLACK = 1024

TOO_LONG_URL = (414, "URI too long: the request line may be at most 8 KB.")
TOO_LARGE_HEADERS = (431, f"Request header fields too large: at most {MAX_HEADER_FIELDS} "
                          "fields and 64 KB in all.")


class HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal is on the protocol."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._header_bytes = 0
        self._header_fields = 0
        self._refusal: tuple[int, str] | None = None

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: the rest is not parsed
        # Count what arrives while a head is being read: a header value still incomplete is
        # held by httptools and reported by no callback. A head that starts inside this chunk
        # is counted from the next one (at most one read of the socket undercounted).
        head_was_open = self._in_head
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and head_was_open:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_URL_BYTES + MAX_HEADER_BYTES + _HEAD_SLACK:
                self._refusal = TOO_LARGE_HEADERS  # a long URL is refused by on_url
                self._refuse()

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._header_bytes = self._header_fields = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = TOO_LONG_URL
            raise HeadRefused()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_fields += 1
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_fields > MAX_HEADER_FIELDS or self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = TOO_LARGE_HEADERS
            raise HeadRefused()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    # --- the head timer --------------------------------------------------------------------

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._response_in_progress():
            # A pipelined head is late while the previous response still streams: never cut
            # that response; close the connection once it is sent.
            self.cycle.keep_alive = False
            return
        self.transport.close()

    # --- refusing --------------------------------------------------------------------------

    def _response_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self) -> None:
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        if self._response_in_progress():
            self.cycle.keep_alive = False  # the previous response finishes, then we close
            return
        status, message = self._refusal
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ])
        self.transport.write(b"".join(content))
        self.transport.close()
