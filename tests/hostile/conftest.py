"""One process stack for the hostile-input suite, and the checks every case shares.

The stack runs the Procfile's web, worker and beat over a private redis-server. Every case runs
inside ``guarded()``: the web process may spend at most 5 s of CPU on it (read from /proc, not
wall time: a coarse guard against work that grows with the input, not a benchmark), header cases
may grow its memory by at most 100 MB, and its log must gain no traceback. A case that pinned
the server (timeout or over budget) restarts the web process, so the next case starts clean.
"""

from __future__ import annotations

import html
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.support.processes import PortalStack
from tests.support.servers import LOOPBACK

CPU_BUDGET_SECONDS = 5.0
RSS_BUDGET_BYTES = 100 * 2**20
# Wall-clock ceiling of one request: far above what a bounded case needs on a busy machine,
# low enough that a case that pins the server fails without holding up the suite for minutes.
REQUEST_TIMEOUT = 20


def stack_broker(redis_server, db: int) -> str:
    """The session's redis-server, in a database of its own (0, 5, 6, 7 and 9 are other tests')."""
    return redis_server.url.rsplit("/", 1)[0] + f"/{db}"


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    processes = PortalStack(
        tmp_path_factory.mktemp("hostile"), stack_broker(redis_server, 11),
        # Many cases fail to sign in on purpose; the throttles have their own stack
        # (test_forwarded_for.py), so here they must not turn every later case into a 429.
        extra_env={"PORTAL_PROXY_AUTH_FAILURE_LIMIT": "1000000"},
    ).start()
    yield processes
    processes.stop()


@pytest.fixture(scope="session")
def sessions(stack):
    clients = {role: stack.session(role) for role in ("Admin", "Developer", "Support")}
    for client in clients.values():
        client.timeout = httpx.Timeout(REQUEST_TIMEOUT)
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def anonymous(stack):
    with stack.client(timeout=REQUEST_TIMEOUT) as client:
        yield client


@contextmanager
def guarded(stack: PortalStack, *, memory: bool = False):
    """Run one case; fail when the web process spent over 5 s of CPU or logged a traceback."""
    log_start = len(stack.log("web"))
    cpu_start = stack.web_cpu_seconds()
    rss_start = stack.web_rss_bytes()
    try:
        yield
    except (httpx.TimeoutException, TimeoutError):
        spent = stack.web_cpu_seconds() - cpu_start
        stack.restart_web()
        pytest.fail(f"no answer within {REQUEST_TIMEOUT} s (web process spent {spent:.1f} s of CPU)")
    finally:
        spent = stack.web_cpu_seconds() - cpu_start if "web" in stack.processes else 0
        if spent > CPU_BUDGET_SECONDS:
            stack.restart_web()
    grown = stack.web_rss_bytes() - rss_start
    logged = stack.log("web")[log_start:]
    assert spent <= CPU_BUDGET_SECONDS, f"the web process spent {spent:.1f} s of CPU on one case"
    if memory:
        assert grown <= RSS_BUDGET_BYTES, f"the web process grew by {grown / 2**20:.0f} MB"
    assert "Traceback" not in logged, f"the server logged a traceback:\n{logged[-3000:]}"


def assert_refused(response: httpx.Response, statuses, *, message: str | None = None,
                   kept: str | None = None) -> None:
    """A 4xx among ``statuses``, with ``message`` and the user's ``kept`` text in the page."""
    statuses = {statuses} if isinstance(statuses, int) else set(statuses)
    assert response.status_code != 500, f"500 from {response.request.method} {response.request.url.path}"
    assert response.status_code in statuses, (
        f"{response.status_code} from {response.request.method} {response.request.url.path}, "
        f"expected one of {sorted(statuses)}: {response.text[:300]!r}")
    if message is not None:
        assert message in response.text, f"the page does not say {message!r}: {response.text[:500]!r}"
    if kept is not None:
        assert html.escape(kept) in response.text or kept in response.text, (
            f"the re-rendered form lost what the user typed ({kept[:60]!r})")


def assert_oci_error(response: httpx.Response, statuses) -> None:
    """/v2/ answers OCI JSON errors, never an HTML page."""
    assert_refused(response, statuses)
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"/v2/ answered {response.headers.get('content-type')!r}: {response.text[:200]!r}")
    assert "errors" in response.json(), response.text[:300]


# --- raw HTTP, for what httpx will not send -----------------------------------------------------


@dataclass
class RawResponse:
    status: int | None
    head: bytes
    body: bytes


def raw_request(stack: PortalStack, data: bytes, *, timeout: float = REQUEST_TIMEOUT) -> RawResponse:
    """Send ``data`` as it is on a fresh connection; read one response (status None: no answer).

    A server that refuses early may close the connection while the request is still being
    sent: what it answered before closing is still read.
    """
    deadline = time.monotonic() + timeout
    received = b""
    with socket.create_connection((LOOPBACK, stack.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while b"\r\n\r\n" not in received and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(body) < length and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            body += chunk
    status = None
    if head.startswith(b"HTTP/"):
        status = int(head.split(b" ", 2)[1])
    return RawResponse(status, head, body)
