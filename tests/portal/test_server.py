"""Bounds on the request head under the server the Procfile runs (uvicorn + portal.server).

The server is the Procfile's ``web:`` command on 127.0.0.1 (tests/support/processes.py);
clients are raw sockets, so nothing between the test and the server tidies up the bytes.
"""

from __future__ import annotations

import base64
import socket
import threading
import time

import httpx
import pytest

from portal.server import HEAD_TIMEOUT
from tests.support.processes import PortalStack
from tests.support.proxy_server import start_proxy_server
from tests.support.servers import LOOPBACK

pytestmark = pytest.mark.slow


FAILURE_LIMIT = 3


def _start(tmp_path_factory, name: str, *, app: str | None = None) -> PortalStack:
    return start_proxy_server(tmp_path_factory.mktemp(name), app=app, extra={
        "PORTAL_PROXY_AUTH_FAILURE_LIMIT": str(FAILURE_LIMIT),
        "PORTAL_LOGIN_FAILURE_LIMIT": str(FAILURE_LIMIT)})


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    server = _start(tmp_path_factory, "web")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def streaming(tmp_path_factory):
    server = _start(tmp_path_factory, "stream", app="tests.portal.streaming_app:app")
    yield server
    server.stop()


def connect(server, timeout: float = 10) -> socket.socket:
    return socket.create_connection((LOOPBACK, server.port), timeout=timeout)


def head(server, path: str = "/healthz", headers: list[tuple[str, str]] = ()) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length (what the portal sends to these requests)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def send_and_read(server, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(server) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before everything was sent: the answer is still there to read
        return read_response(sock)


def test_a_request_and_a_second_one_on_the_same_connection_work(portal):
    with connect(portal) as sock:
        for _ in range(2):
            sock.sendall(head(portal))
            status, headers, body = read_response(sock)
            assert (status, body) == (200, b"ok\n")
            assert headers.get("connection") != "close"


def test_a_1_mb_header_is_refused_with_431(portal):
    status, headers, body = send_and_read(portal, head(portal, headers=[("X-Big", "a" * (1 << 20))]))
    assert status == 431
    assert headers["content-type"].startswith("text/plain")
    assert body == b"Request header fields too large: at most 100 fields and 64 KB in all."


def test_100_fields_pass_and_101_are_refused_with_431(portal):
    fields = [(f"X-Field-{n}", "v") for n in range(99)]  # with Host: 100
    assert send_and_read(portal, head(portal, headers=fields))[0] == 200
    assert send_and_read(portal, head(portal, headers=[*fields, ("X-One-More", "v")]))[0] == 431


def test_a_9_kb_url_is_refused_with_414(portal):
    status, _, body = send_and_read(portal, head(portal, path="/healthz?q=" + "a" * 9 * 1024))
    assert status == 414
    assert body == b"URI too long: the request line may be at most 8 KB."
    assert send_and_read(portal, head(portal, path="/healthz?q=" + "a" * 7 * 1024))[0] == 200


def test_ten_connections_sending_50_mb_headers_do_not_grow_the_server(portal):
    before = portal.web_rss_bytes() // 1024
    peak = [before]
    done = threading.Event()

    def flood():
        chunk = b"a" * (1 << 20)
        with connect(portal, timeout=30) as sock:
            sock.sendall(head(portal)[:-2] + b"X-Big: ")
            try:
                for _ in range(50):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server refused and closed: what we want

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], portal.web_rss_bytes() // 1024)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    floods = [threading.Thread(target=flood) for _ in range(10)]
    for t in floods:
        t.start()
    for t in floods:
        t.join(timeout=60)
    done.set()
    watcher.join()
    assert not any(t.is_alive() for t in floods)
    assert peak[0] - before < 50 * 1024, f"RSS grew from {before} KiB to {peak[0]} KiB"
    assert send_and_read(portal, head(portal))[0] == 200  # and it still serves


def test_a_slow_head_and_a_silent_connection_are_closed_after_the_head_timeout(portal):
    slow, silent = connect(portal, timeout=1), connect(portal, timeout=1)
    start = time.monotonic()
    slow.sendall(head(portal)[:-2] + b"X-Slow: ")
    closed = {}
    deadline = start + HEAD_TIMEOUT + 10
    while len(closed) < 2 and time.monotonic() < deadline:
        for name, sock in (("slow", slow), ("silent", silent)):
            if name in closed:
                continue
            try:
                if name == "slow":
                    sock.sendall(b"a")  # one header byte a second
                if sock.recv(1024) == b"":
                    closed[name] = time.monotonic() - start
            except TimeoutError:
                pass
            except OSError:
                closed[name] = time.monotonic() - start
    slow.close()
    silent.close()
    assert set(closed) == {"slow", "silent"}, closed
    for name, seconds in closed.items():
        assert HEAD_TIMEOUT - 1 <= seconds <= HEAD_TIMEOUT + 5, (name, seconds)


def test_a_slow_reader_of_a_large_response_is_not_cut(streaming):
    """The head timeout covers reading the request only: a response may take minutes."""
    from tests.portal.streaming_app import expected

    size_mb = 20
    with connect(streaming, timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(head(streaming, path=f"/stream?mb={size_mb}"))
        data = bytearray()
        start = time.monotonic()
        while True:
            chunk = sock.recv(256 * 1024)
            if not chunk:
                break
            data += chunk
            if data.endswith(expected(size_mb)[-16:]) and len(data) > size_mb << 20:
                break
            time.sleep(0.05)  # a slow client: about 14 s for the whole body
        elapsed = time.monotonic() - start
    assert elapsed > HEAD_TIMEOUT + 1, f"the reader was not slow enough ({elapsed:.1f} s) to test this"
    _, _, received = bytes(data).partition(b"\r\n\r\n")
    assert received == expected(size_mb)


def test_x_forwarded_for_changes_no_client_address_without_trusted_proxies(portal):
    """PORTAL_TRUSTED_PROXIES is empty: a forged X-Forwarded-For escapes no throttle."""
    wrong = {"Authorization": "Basic " + base64.b64encode(b"f:f").decode()}
    for n in range(FAILURE_LIMIT):
        response = httpx.get(f"{portal.url}/v2/", headers={**wrong, "X-Forwarded-For": f"1.2.3.{n}"})
        assert response.status_code == 401
    response = httpx.get(f"{portal.url}/v2/", headers={**wrong, "X-Forwarded-For": "1.2.3.99"})
    assert response.status_code == 429

    portal.shell("from django.contrib.auth import get_user_model; "
                 "get_user_model().objects.create_user('victor', 'v@example.com', 'right-pw-1234')")
    with httpx.Client(base_url=portal.url) as client:
        def log_in(password: str, address: str) -> httpx.Response:
            client.get("/accounts/login/")
            return client.post("/accounts/login/", headers={"X-Forwarded-For": address}, data={
                "username": "victor", "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"]})

        for n in range(FAILURE_LIMIT - 1):
            assert log_in("wrong", f"5.6.7.{n}").status_code == 400  # the form again
        assert log_in("wrong", "5.6.7.50").status_code == 429  # the limit: locked out
        locked = log_in("right-pw-1234", "5.6.7.99")
    assert locked.status_code == 429
    assert "sessionid" not in client.cookies
