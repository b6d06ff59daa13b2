# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py)
"""Several web processes of the Procfile's web line, one SQLite file and one Redis (db 15):
what one process learns, the others know.

Three ``PortalStack`` web processes share the database file, the var directory (so the same
keys) and ``REDIS_URL``; the ECR stand-in's token endpoint is moto's server behind a small
forwarder that counts GetAuthorizationToken calls. Each test reaches the processes in turn,
posing as a client address of its own through X-Forwarded-For (127.0.0.1 is the trusted proxy).
"""

from __future__ import annotations

import base64
import concurrent.futures
import signal
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis

from tests.support import images
from tests.support.processes import PortalStack
from tests.support.registry import ECR_HOST, MOTO_TOKEN_PASSWORD
from tests.support.servers import LOOPBACK, require_binary

pytestmark = pytest.mark.slow

SLUG = "sharedapp"
IMAGE = f"{ECR_HOST}/shared/app"
PROXY_LIMIT = 5
LOGIN_LIMIT = 3
PASSWORD = "pw-alice-1234"  # tests/support/proxy_server.py's seed
REDIS_DB = 15
PROCESSES = 3


class CountingForwarder(ThreadingHTTPServer):
    """Passes AWS API calls to moto's server unchanged (the Host header too, which the request's
    signature covers) and counts the GetAuthorizationToken calls."""

    daemon_threads = True

    def __init__(self, upstream: str):
        self.upstream, self.token_calls, self.lock = upstream, 0, threading.Lock()
        super().__init__((LOOPBACK, 0), _Forward)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "GetAuthorizationToken" in self.headers.get("X-Amz-Target", ""):
            with self.server.lock:
                self.server.token_calls += 1
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        answer = httpx.post(self.server.upstream + self.path, content=body, headers=headers,
                            timeout=30)
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                    "content-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def forwarder(moto_server):
    server = CountingForwarder(moto_server.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def redis_url(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def webs(ecr_registry, aws_users, forwarder, redis_url, tmp_path_factory):
    """Three web processes over one database and one Redis, seeded with one app, one ECR
    registry and a few customers."""
    image = images.build_single([40_000], seed=21)
    images.push(image, ecr_registry.url, "shared/app", "1.0", auth=("AWS", MOTO_TOKEN_PASSWORD))
    root = tmp_path_factory.mktemp("shared-state")
    common = {
        "REDIS_URL": redis_url,
        "PORTAL_SQLITE_PATH": str(root / "portal.sqlite3"),
        "PORTAL_VAR_DIR": str(root / "var"),
        "AWS_ENDPOINT_URL_ECR": forwarder.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"],
        "PORTAL_PROXY_AUTH_FAILURE_LIMIT": str(PROXY_LIMIT),
        "PORTAL_LOGIN_FAILURE_LIMIT": str(LOGIN_LIMIT),
        "PORTAL_TRUSTED_PROXIES": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    stacks = []
    try:
        for i in range(PROCESSES):
            stack = PortalStack(root / f"web{i}", names=("web",), seed=None, migrate=i == 0,
                                debug=True, extra_env=common,
                                web_args=("--log-level", "warning"))
            stacks.append(stack.start())
        stacks[0].data = stacks[0].call("tests.support.proxy_server.seed", registries=[
            {"endpoint": ECR_HOST, "provider": "ecr", "username": aws_users.reader.access_key_id,
             "password": aws_users.reader.secret_access_key},
        ], apps=[{"slug": SLUG, "releases": [[f"{IMAGE}:1.0"]],
                  "customers": [{"name": name} for name in ("Token Co", "Doomed Co", "Log Co")]}])
        yield stacks
    finally:
        for stack in stacks:
            stack.stop()
        images.cleanup(image)


def basic(license_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()}


def manifest(stack, license_id: str, *, address: str) -> httpx.Response:
    return httpx.get(f"{stack.url}/v2/proxy/{SLUG}/{IMAGE}/manifests/1.0", timeout=30,
                     headers={**basic(license_id), "X-Forwarded-For": address,
                              "Accept": images.OCI_MANIFEST})


def skopeo_inspect(stack, license_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("skopeo"), "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{license_id}:{license_id}", f"docker://{stack.host}/proxy/{SLUG}/{IMAGE}:1.0"],
        capture_output=True, text=True, timeout=120)


# --- the ECR token: one GetAuthorizationToken for the installation ------------------------------


def test_every_process_pulls_with_one_ecr_token(webs, forwarder):
    lic = webs[0].data["licenses"]["Token Co"]
    with concurrent.futures.ThreadPoolExecutor(PROCESSES * 2) as pool:
        results = list(pool.map(lambda i: skopeo_inspect(webs[i % PROCESSES], lic),
                                range(PROCESSES * 2)))
    assert [r.returncode for r in results] == [0] * len(results), results[0].stderr[-500:]
    assert forwarder.token_calls == 1
    stored = redis.Redis.from_url(webs[0].env["REDIS_URL"]).keys("portal:ecr-token:*")
    assert stored, "the token is kept in Redis"
    client = redis.Redis.from_url(webs[0].env["REDIS_URL"])
    for key in stored:
        value = client.get(key) or b""
        assert MOTO_TOKEN_PASSWORD.encode() not in value, "the token is stored encrypted"
    for stack in webs:
        assert MOTO_TOKEN_PASSWORD not in stack.log("web")


# --- the decision cache -------------------------------------------------------------------------


def customer_pk(*, name: str) -> int:
    """Run inside the stack (``call``): the customer's primary key."""
    from releases.models import Customer

    return Customer.objects.get(name=name).pk


def test_a_license_archived_through_one_process_is_refused_by_every_other(webs):
    lic = webs[0].data["licenses"]["Doomed Co"]
    for stack in webs:  # every process caches the allowed decision
        assert manifest(stack, lic, address="10.2.0.1").status_code == 200
    pk = webs[0].call("tests.production.test_shared_state.customer_pk", name="Doomed Co")
    with httpx.Client(base_url=webs[0].url, timeout=30, headers={"X-Forwarded-For": "10.2.0.9"}) as alice:
        alice.get("/accounts/login/")
        alice.post("/accounts/login/", data={"username": "alice", "password": PASSWORD,
                                             "csrfmiddlewaretoken": alice.cookies["csrftoken"]})
        archived = alice.post(f"/customers/{pk}/archive/",
                              headers={"X-CSRFToken": alice.cookies["csrftoken"],
                                       "Referer": webs[0].url + "/"})
        assert archived.status_code == 302, archived.text[:500]
        assert "no longer works" in alice.get(archived.headers["location"]).text
    started = time.monotonic()
    refused_after = {}
    while len(refused_after) < PROCESSES:
        for i, stack in enumerate(webs):
            if i not in refused_after and manifest(stack, lic, address="10.2.0.1").status_code == 403:
                refused_after[i] = time.monotonic() - started
        assert time.monotonic() - started < 3, f"still allowed after 3 s: {refused_after}"
        time.sleep(0.02)
    print(f"refused by every process after {max(refused_after.values()) * 1000:.0f} ms")
    for stack in webs:
        result = skopeo_inspect(stack, lic)
        assert result.returncode != 0 and "archived by the vendor" in result.stderr, result.stderr


# --- the throttles ------------------------------------------------------------------------------


def test_failed_license_logins_are_counted_across_processes(webs):
    codes = [manifest(webs[i % PROCESSES], "x" * 40, address="10.3.0.1").status_code
             for i in range(PROXY_LIMIT + 2)]
    assert codes == [401] * PROXY_LIMIT + [429, 429]
    # Another address is counted apart.
    assert manifest(webs[1], "x" * 40, address="10.3.0.2").status_code == 401


# --- the login lockout --------------------------------------------------------------------------


def sign_in(stack, password: str, *, address: str) -> int:
    with httpx.Client(base_url=stack.url, timeout=30, headers={"X-Forwarded-For": address}) as client:
        client.get("/accounts/login/")
        return client.post("/accounts/login/", data={
            "username": "alice", "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"]}).status_code


def test_wrong_passwords_over_several_processes_lock_exactly_at_the_limit(webs):
    below = [sign_in(webs[i], "wrong", address="10.4.0.1") for i in range(LOGIN_LIMIT - 1)]
    assert all(code == 400 for code in below), below
    assert sign_in(webs[LOGIN_LIMIT % PROCESSES], PASSWORD, address="10.4.0.1") == 302

    # At the same moment on every process: no failure may be lost.
    with concurrent.futures.ThreadPoolExecutor(LOGIN_LIMIT) as pool:
        codes = list(pool.map(lambda i: sign_in(webs[i % PROCESSES], "wrong", address="10.4.0.2"),
                              range(LOGIN_LIMIT)))
    assert sorted(codes).count(429) <= 1 and all(c in (400, 429) for c in codes), codes
    for stack in webs:
        assert sign_in(stack, PASSWORD, address="10.4.0.2") == 429
    # The pair is locked, not the user: another address still signs in.
    assert sign_in(webs[2], PASSWORD, address="10.4.0.3") == 302


# --- the pull log -------------------------------------------------------------------------------


def pull_rows(stack, customer_name: str) -> int:
    with sqlite3.connect(stack.env["PORTAL_SQLITE_PATH"], timeout=10) as db:
        return db.execute("SELECT count(*) FROM releases_pullevent JOIN releases_customer c "
                          "ON c.id = customer_id WHERE c.name = ?", (customer_name,)).fetchone()[0]


def test_each_process_writes_its_pull_log_within_a_second_and_on_sigterm(webs):
    lic = webs[0].data["licenses"]["Log Co"]
    for i, stack in enumerate(webs[:2]):
        assert manifest(stack, lic, address="10.5.0.1").status_code == 200
        deadline = time.monotonic() + 1
        while pull_rows(stack, "Log Co") < i + 1:
            assert time.monotonic() < deadline, "no pull log row within 1 s"
            time.sleep(0.02)
    # The last process is stopped right after its answer: its row is written as it stops.
    last = webs[-1]
    assert manifest(last, lic, address="10.5.0.1").status_code == 200
    last.web.send_signal(signal.SIGTERM)
    last.web.wait(timeout=10)
    assert pull_rows(last, "Log Co") == 3
