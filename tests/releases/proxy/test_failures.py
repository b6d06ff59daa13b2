"""The proxy registry when the upstream fails, and when the server stops mid-pull.

Against the real server process (uvicorn), as ``make run`` serves it. Every answer under /v2/
is an OCI JSON error: an upstream problem (an endpoint the client cannot use, a connection
closed, a TLS failure, a 5xx) is 502/503/504, never 500 and never HTML. A blob cut short (the
client went away, or the server stopped) still leaves a pull log row with the bytes sent.
"""

from __future__ import annotations

import base64
import http.server
import os
import re
import signal
import socket
import sqlite3
import threading
import time

import httpx
import pytest

from tests.support import images
from tests.support.processes import ROOT
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import start_distribution
from tests.support.servers import LOOPBACK

pytestmark = pytest.mark.slow

SLUG = "fragile"
BIG = 48 << 20  # more than loopback's socket buffers hold: the stream is still in flight


class FlakyUpstream(http.server.BaseHTTPRequestHandler):
    """A registry that answers /v2/, then fails: a manifest of team/cut is cut short, anything
    else is a 500."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/v2/":
            self._answer(200, b"{}")
        elif "/team/cut/" in self.path:  # a manifest or a blob cut short after its 200
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json"
                             if "/manifests/" in self.path else "application/octet-stream")
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b'{"schemaVersion"')
            self.wfile.flush()
            self.close_connection = True
        else:
            self._answer(500, b"oops")

    do_HEAD = do_GET

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def closing_server() -> tuple[socket.socket, int]:
    """Accepts connections and closes them at once."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(16)

    def run():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return listener, listener.getsockname()[1]


def graceful_timeout_of_the_procfile() -> str:
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines()
               if line.startswith("web:"))
    match = re.search(r"--timeout-graceful-shutdown[ =](\d+)", web)
    assert match, "the Procfile's web server must bound its graceful shutdown"
    return match.group(1)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    flaky = http.server.ThreadingHTTPServer((LOOPBACK, 0), FlakyUpstream)
    threading.Thread(target=flaky.serve_forever, daemon=True).start()
    closer, closer_port = closing_server()
    big = start_distribution(tmp_path_factory.mktemp("big-registry"))
    image = images.build_single([BIG], seed=21)
    images.push(image, big.url, "team/big", "1.0")
    flaky_url = f"http://{LOOPBACK}:{flaky.server_address[1]}"
    host_map = ",".join([
        f"flaky.example.com={flaky_url}",
        f"tls.example.com=https://{LOOPBACK}:{flaky.server_address[1]}",
        f"closer.example.com=http://{LOOPBACK}:{closer_port}",
        f"big.example.com={big.url}",
    ])
    yield {"host_map": host_map, "blob": image.layers[0]}
    flaky.shutdown()
    closer.close()
    big.stop()


def start(tmp_path_factory, upstreams, *, args=(), extra=None):
    server = start_proxy_server(tmp_path_factory.mktemp("proxy-failures"), args=args, extra={
        "PORTAL_REGISTRY_HOST_MAP": upstreams["host_map"], **(extra or {})})
    registries = [
        {"endpoint": "256.1.1.1", "name": "bad"},  # saved before the form refused it
        {"endpoint": "flaky.example.com", "name": "flaky"},
        {"endpoint": "tls.example.com", "name": "tls"},
        {"endpoint": "closer.example.com", "name": "closer"},
        {"endpoint": "big.example.com", "name": "big"},
    ]
    server.data = server.call("tests.support.proxy_server.seed", registries=[
        {**r, "provider": "other", "username": "u", "password": "upstream-pw",
         "insecure": True} for r in registries
    ], apps=[{"slug": SLUG, "releases": [[
        "256.1.1.1/team/app:1.0", "flaky.example.com/team/fail:1.0",
        "flaky.example.com/team/cut:1.0", "tls.example.com/team/app:1.0",
        "closer.example.com/team/app:1.0", "big.example.com/team/big:1.0",
    ]], "customers": [{"name": "Big Bank"}]}])
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory, upstreams):
    server = start(tmp_path_factory, upstreams)
    yield server
    server.stop()


def headers(server) -> dict[str, str]:
    lic = server.data["licenses"]["Big Bank"]
    return {"Authorization": "Basic " + base64.b64encode(f"{lic}:{lic}".encode()).decode()}


def pull_log_rows(server, *, until, seconds: float = 15) -> list[dict]:
    deadline = time.monotonic() + seconds
    while True:
        rows = server.call("tests.support.proxy_server.pull_log", customer="Big Bank")["rows"]
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.mark.parametrize("name, statuses", [
    ("256.1.1.1/team/app", {502}),  # an endpoint the HTTP client cannot use
    ("flaky.example.com/team/fail", {502}),  # upstream 500
    ("flaky.example.com/team/cut", {502}),  # the upstream closes the connection mid-body
    ("tls.example.com/team/app", {502}),  # TLS to a plain HTTP server
    ("closer.example.com/team/app", {502, 503}),  # the upstream closes every connection
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_upstream_problem_is_an_oci_error_never_500(server, name, statuses, method):
    if method == "HEAD" and name.endswith("/cut"):
        # A HEAD answer has no body to cut short: the upstream's 200 head is complete and may be
        # passed on, unless the junk this fake writes after it breaks the connection first
        # (then 502). The GET case is the one that sees the connection close mid-body.
        statuses = {200, 502}
    response = httpx.request(method, f"{server.url}/v2/proxy/{SLUG}/{name}/manifests/1.0",
                             headers=headers(server), timeout=30)
    assert response.status_code in statuses, response.text
    if response.status_code == 200:
        return
    assert response.headers["content-type"] == "application/json"
    if method == "GET":
        error = response.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and error["message"]
        assert "upstream-pw" not in response.text


def test_the_server_log_has_no_traceback_for_upstream_problems(server):
    for name in ("256.1.1.1/team/app", "flaky.example.com/team/fail",
                 "closer.example.com/team/app"):  # a blob cut after its 200: the test below
        httpx.get(f"{server.url}/v2/proxy/{SLUG}/{name}/blobs/sha256:{'a' * 64}",
                  headers=headers(server), timeout=30)
    assert "Traceback" not in server.log()


def test_a_blob_the_upstream_cuts_after_its_200_is_cut_for_the_client_too(server):
    """The head has gone to the client: the proxy cannot turn it into an error any more, so it
    ends the connection early (the client sees fewer bytes than the Content-Length and retries),
    logs 502, and writes no traceback."""
    digest = f"sha256:{'b' * 64}"
    url = f"{server.url}/v2/proxy/{SLUG}/flaky.example.com/team/cut/blobs/{digest}"
    with httpx.Client(timeout=30) as client, client.stream("GET", url,
                                                           headers=headers(server)) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "5000"
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    rows = pull_log_rows(server, until=lambda rows: any(r["reference"] == digest for r in rows))
    assert [r["status"] for r in rows if r["reference"] == digest] == [502]
    assert "Traceback" not in server.log()


def _start_blob_pull(server, blob) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(timeout=30)
    request = client.build_request("GET", f"{server.url}/v2/proxy/{SLUG}/big.example.com/team/big/blobs/"
                                          f"{blob.digest}", headers=headers(server))
    response = client.send(request, stream=True)
    assert response.status_code == 200
    next(response.iter_raw(1 << 16))  # the stream has begun; then the client stalls
    return client, response


def _cut_short(rows, blob) -> list[dict]:
    return [r for r in rows if r["kind"] == "blob" and r["reference"] == blob.digest
            and r["status"] == 499]


def test_a_blob_the_client_abandons_is_logged_cut_short(server, upstreams):
    blob = upstreams["blob"]
    client, response = _start_blob_pull(server, blob)
    response.close()
    client.close()
    rows = _cut_short(pull_log_rows(server, until=lambda rows: _cut_short(rows, blob)), blob)
    assert len(rows) == 1 and 0 < rows[0]["bytes"] < blob.size


def test_a_blob_in_flight_at_a_graceful_stop_is_logged_before_the_process_exits(
        tmp_path_factory, upstreams):
    blob = upstreams["blob"]
    server = start(tmp_path_factory, upstreams, extra={"LOG_LEVEL": "INFO"},
                   args=("--timeout-graceful-shutdown", graceful_timeout_of_the_procfile()))
    database = sqlite3.connect(server.env["PORTAL_SQLITE_PATH"], timeout=30,
                               isolation_level=None)
    try:
        client, response = _start_blob_pull(server, blob)
        # A busy database while the server stops: the row cannot be written at once, so the
        # process must wait for its writer rather than exit with the row in memory.
        database.execute("BEGIN IMMEDIATE")
        os.kill(server.web.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "server stopping: writing the pull log" not in server.log():
            assert time.monotonic() < deadline and server.web.poll() is None, server.log()
            time.sleep(0.02)
        database.execute("ROLLBACK")
        server.web.wait(timeout=30)  # the stalled pull does not keep the server up
        rows = _cut_short(server.call("tests.support.proxy_server.pull_log", customer="Big Bank")["rows"], blob)
        assert len(rows) == 1 and 0 < rows[0]["bytes"] < blob.size
        client.close()
    finally:
        database.close()
        server.stop()


# --- a bug in the proxy itself: OCI JSON 500, nothing more ----------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path, seam", [
    ("/v2/", "check_login"),
    (f"/v2/proxy/{SLUG}/team/app/manifests/1.0", "authorize"),
])
def test_an_unexpected_error_is_an_oci_json_500_without_traceback(monkeypatch, caplog, path,
                                                                  seam):
    from django.test import Client

    from releases.proxy import views as proxy_views

    def broken(**kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(proxy_views, seam, broken)
    response = Client(raise_request_exception=False).get(path, HTTP_AUTHORIZATION="Basic eDp4")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["errors"][0] == {"code": "UNKNOWN", "detail": {}, "message": (
        "Internal error in the proxy registry: try again later.")}
    assert "surprise" not in response.content.decode()
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert len(errors) == 1
