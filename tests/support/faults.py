"""Loopback HTTP proxies that misbehave on purpose, in front of a real registry.

- `FaultProxy`: forwards to the registry, but the first request of each kind (method + path, upload
  ids folded) fails: alternately a 500, a dropped connection, or (blob downloads) a body cut
  short. Every later request of that kind passes, so a copier that retries must finish.
- `RedirectingRegistry`: forwards to the registry, but answers blob GETs (and, if asked,
  manifest GETs) with a 307 to another host and port (like ECR sending blobs to S3); that "S3"
  refuses any request carrying an Authorization header and serves the content with its own
  access to the registry. The Location looks like an S3 pre-signed address (``signed``), or not,
  or points back at the registry itself (``same_origin``).
Both buffer bodies: test images are a few MB.
"""

from __future__ import annotations

import re
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te",
       "upgrade", "proxy-authorization", "accept-encoding"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxy:
    """Forward everything to `upstream`; subclasses override `intercept`."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.http = httpx.Client(timeout=60)
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, int | str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = _read_chunked(self.rfile)
                if proxy.intercept(self, body):
                    return
                proxy.forward(self, body)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def record(self, handler, outcome):
        with self.lock:
            self.log.append((handler.command, handler.path, outcome))

    def intercept(self, handler, body: bytes) -> bool:
        return False

    def forward(self, handler, body: bytes, *, truncate: bool = False) -> None:
        # A list, not a dict: clients such as skopeo send several Accept headers.
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP]
        headers.append(("Host", self.host))  # the registry builds Location URLs from it: keep them on us
        response = self.http.request(handler.command, self.upstream + handler.path,
                                     headers=headers, content=body)
        self.record(handler, response.status_code)
        handler.send_response(response.status_code)
        for key, value in response.headers.multi_items():
            if key.lower() not in HOP:
                handler.send_header(key, value)
        data = response.content
        if handler.command == "HEAD":
            handler.send_header("Content-Length", response.headers.get("content-length", "0"))
            handler.end_headers()
            return
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if truncate and len(data) > 1:
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            _drop(handler)
            return
        handler.wfile.write(data)


def _read_chunked(rfile) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            rfile.readline()
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()


def _drop(handler) -> None:
    """Close the client's connection abruptly (RST), without an HTTP answer."""
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


UPLOAD_ID = re.compile(r"/blobs/uploads/[^/?]+")


class FaultProxy(Proxy):
    """The first request of each kind fails (500, dropped connection, or a truncated blob)."""

    def __init__(self, upstream: str, *, skip_ping: bool = True):
        super().__init__(upstream)
        self.seen: set[tuple[str, str]] = set()
        self.faults = 0
        self.skip_ping = skip_ping

    def intercept(self, handler, body: bytes) -> bool:
        path = UPLOAD_ID.sub("/blobs/uploads/ID", handler.path.split("?")[0])
        key = (handler.command, path)
        if self.skip_ping and path == "/v2/":
            return False
        with self.lock:
            first = key not in self.seen
            self.seen.add(key)
            if first:
                self.faults += 1
                kind = self.faults % 3
        if not first:
            return False
        if kind == 0 and handler.command == "GET" and "/blobs/" in path:
            self.record(handler, "truncated")
            self.forward(handler, body, truncate=True)
        elif kind == 1:
            self.record(handler, "dropped")
            _drop(handler)
        else:
            self.record(handler, 500)
            payload = b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
            handler.send_response(500)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        return True


class _Storage(Proxy):
    """The 'S3' a redirect points to: serves /storage/<repo>/<blobs|manifests>/<reference> with
    its own access to the registry; refuses (400) and records any request carrying Authorization."""

    def __init__(self, upstream: str, auth: tuple[str, str]):
        super().__init__(upstream)
        self.auth = auth
        self.requests: list[dict] = []
        self.authorization_seen: list[str] = []
        self.served = 0

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"  # another host name than the registry's, as S3 is

    def intercept(self, handler, body: bytes) -> bool:
        with self.lock:
            self.requests.append({"path": handler.path, "headers": dict(handler.headers)})
        if handler.headers.get("authorization"):
            self.authorization_seen.append(handler.path)
            handler.send_response(400)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        self.serve(handler)
        return True

    def serve(self, handler) -> None:
        """Answer GET /storage/<repo>/<kind>/<reference> from the registry."""
        repo, kind, reference = handler.path.split("?")[0].removeprefix("/storage/").rsplit("/", 2)
        headers = {"Accept": handler.headers["accept"]} if handler.headers.get("accept") else {}
        response = self.http.get(f"{self.upstream}/v2/{repo}/{kind}/{reference}", auth=self.auth,
                                 headers=headers, follow_redirects=True)
        self.served += 1
        handler.send_response(response.status_code)
        if kind == "manifests":
            for key in ("Content-Type", "Docker-Content-Digest"):
                if key in response.headers:
                    handler.send_header(key, response.headers[key])
        else:
            handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(response.content)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(response.content)


REDIRECTED = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>blobs|manifests)/(?P<reference>[^/?]+)$")


class RedirectingRegistry(Proxy):
    """A registry that sends content elsewhere, as ECR sends blobs to S3.

    Forwards to ``upstream`` (a real docker-registry with ``auth``), but answers an authorized
    blob GET (and, with ``manifests=True``, manifest GET) with a 307 to ``storage``, a second
    server on ``localhost`` and another port, which must never receive the Authorization header.
    ``registry_requests`` holds every request's path and headers; ``storage.requests`` likewise.
    The Location carries an S3-style signature (``X-Amz-Algorithm``, ``X-Amz-Credential``,
    ``X-Amz-Signature``: a fresh one each time, listed in ``locations``) unless ``signed=False``;
    with ``same_origin=True`` it points at ``/storage/...`` on this server, which serves it too.
    """

    def __init__(self, upstream: str, auth: tuple[str, str], *, manifests: bool = False,
                 signed: bool = True, same_origin: bool = False):
        super().__init__(upstream)
        self.auth = auth
        self.manifests = manifests
        self.signed = signed
        self.same_origin = same_origin
        self.locations: list[str] = []
        self.served_here = 0  # /storage/ requests this server answered (same_origin)
        self.storage = _Storage(upstream, auth)
        self.registry_requests: list[dict] = []
        self.redirects = 0

    @property
    def username(self) -> str:
        return self.auth[0]

    @property
    def password(self) -> str:
        return self.auth[1]

    def start(self):
        self.storage.start()
        return super().start()

    def stop(self):
        super().stop()
        self.storage.stop()

    def intercept(self, handler, body: bytes) -> bool:
        with self.lock:
            self.registry_requests.append({"path": handler.path, "headers": dict(handler.headers)})
        if handler.path.startswith("/storage/"):
            with self.lock:
                self.served_here += 1
            self.storage.serve(handler)
            return True
        match = REDIRECTED.match(handler.path)
        if (handler.command != "GET" or not match or not handler.headers.get("authorization")
                or (match["kind"] == "manifests" and not self.manifests)):
            return False  # unauthorized requests get the registry's own 401 challenge
        origin = "" if self.same_origin else f"http://{self.storage.host}"
        location = f"{origin}/storage/{match['repo']}/{match['kind']}/{match['reference']}"
        if self.signed:
            location += ("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIATEST%2F20260101"
                         "%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Expires=3600"
                         f"&X-Amz-SignedHeaders=host&X-Amz-Signature={secrets.token_hex(32)}")
        else:
            location += f"?token={secrets.token_hex(16)}"
        with self.lock:
            self.redirects += 1
            self.locations.append(location)
        self.record(handler, 307)
        handler.send_response(307)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True
