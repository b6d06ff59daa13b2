"""HTTPS end to end through Caddy (deploy/Caddyfile as shipped) in front of the production shape:
3 web processes, 2 workers and beat, PORTAL_ENV=production with an https PORTAL_URL, on
PostgreSQL (a database of this module's own) and Redis (db 14). Started once for the module.

Clients are programs nobody here wrote (skopeo, httpx) and trust the test CA only; nothing
turns verification off.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.production.conftest import (
    CUSTOMER,
    SLUG,
    assert_same_image,
    production_env,
    proxied,
    pull,
    seed_upstream,
)
from tests.support import images
from tests.support.caddy import Caddy, postgres_database, start_caddy
from tests.support.processes import PortalStack
from tests.support.tls import LocalCA

pytestmark = pytest.mark.slow

REDIS_DB = 14


@dataclass
class Production:
    stack: PortalStack
    caddy: Caddy
    ca: LocalCA
    data: dict
    database_url: str

    @property
    def license_id(self) -> str:
        return self.data["licenses"][CUSTOMER]

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.caddy.url, verify=self.ca.ssl_context(),
                            timeout=kwargs.pop("timeout", 60), **kwargs)


@pytest.fixture(scope="module")
def production(local_ca, upstream, redis_server, tmp_path_factory):
    database_url, drop_database = postgres_database("portal_production")
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    stack = PortalStack(tmp_path_factory.mktemp("stack"), broker_url=redis_url, seed=None,
                        web_count=3, worker_count=2)
    # The web processes share one blob cache (one host), which Caddy sends cached blobs from.
    blob_cache = stack.directory / "blob-cache"
    caddy = start_caddy(tmp_path_factory.mktemp("caddy"), ca=local_ca, upstreams=stack.web_ports,
                        blob_cache_dir=blob_cache)
    stack.extra_env.update(production_env(), **{
        "PORTAL_BLOB_CACHE_DIR": str(blob_cache), "PORTAL_BLOB_CACHE_X_ACCEL": "true",
        "PORTAL_URL": caddy.url, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        # Caddy's address: the one proxy whose X-Forwarded-For/-Proto are believed.
        "PORTAL_TRUSTED_PROXIES": "127.0.0.1",
    })
    try:
        stack.start(timeout=90)
        data = seed_upstream(stack, upstream)
        stack.password = "pw-alice-1234"  # the vendor user the seed creates
        yield Production(stack, caddy, local_ca, data, database_url)
    finally:
        stack.stop()
        caddy.stop()
        drop_database()


def basic(license_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()}


def test_skopeo_copy_all_through_caddy_verifies_tls_and_keeps_every_digest(production, upstream, tmp_path):
    result = pull(proxied(production.caddy.host), production.license_id, production.ca,
                  tmp_path / "oci")
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_image(tmp_path / "oci", upstream["index"])


def test_caddy_sends_a_cached_blob_itself_after_the_portal_allowed_it(production, upstream, tmp_path):
    """A repeat pull: the web processes check the license and answer X-Accel-Redirect; Caddy
    sends the verified file from the shared cache, and the client never sees the header."""
    for n in (1, 2):
        result = pull(proxied(production.caddy.host), production.license_id, production.ca,
                      tmp_path / f"oci-{n}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert_same_image(tmp_path / f"oci-{n}", upstream["index"])
    layer = upstream["index"].blobs[0]
    with production.client() as client:
        response = client.get(f"/v2/proxy/{SLUG}/upstream/team/app/blobs/{layer.digest}",
                              headers=basic(production.license_id))
        ranged = client.get(f"/v2/proxy/{SLUG}/upstream/team/app/blobs/{layer.digest}",
                            headers={**basic(production.license_id), "Range": "bytes=0-99"})
        refused = client.get(f"/v2/proxy/{SLUG}/upstream/team/app/blobs/{layer.digest}",
                             headers=basic("not-a-license"))
    assert response.status_code == 200
    assert images.sha256(response.content) == layer.digest
    assert response.headers["docker-content-digest"] == layer.digest
    assert "x-accel-redirect" not in response.headers
    assert ranged.status_code == 206 and len(ranged.content) == 100
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    deadline = time.monotonic() + 10
    while True:
        rows = production.stack.call("tests.support.proxy_server.pull_log", customer=CUSTOMER)["rows"]
        sent = [r for r in rows if r["note"] == "from cache, sent by the front server"]
        ranged_row = any(r["status"] == 206 for r in sent)
        if (len(sent) >= len(upstream["index"].blobs) and ranged_row) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # The ranged GET is counted as what Caddy was asked to send.
    assert {r["status"] for r in sent} == {200, 206}
    assert [r["bytes"] for r in sent if r["status"] == 206] == [100]
    assert len(sent) >= len(upstream["index"].blobs)


def test_skopeo_refuses_the_proxy_without_the_test_ca(production, upstream, tmp_path):
    # Verification is really on: the same pull with an empty certificate directory fails.
    empty = tmp_path / "no-ca"
    empty.mkdir()
    result = pull(proxied(production.caddy.host), production.license_id,
                  type(production.ca)(empty), tmp_path / "oci")
    assert result.returncode != 0
    assert "certificate" in result.stderr


def test_the_update_check_answers_over_https(production):
    with production.client() as client:
        response = client.get(f"/release/{SLUG}/pending", headers=basic(production.license_id))
    assert response.status_code == 200, response.text
    assert [r["versionLabel"] for r in response.json()["channelReleases"]] == ["1.0.0"]


def test_the_customer_signs_in_and_sees_the_page_over_https(production):
    with production.client() as client:
        page = client.get("/customer/")
        assert page.status_code == 200
        assert "Secure" in page.headers["set-cookie"]
        signed_in = client.post("/customer/", data={
            "license_id": production.license_id, "csrfmiddlewaretoken": client.cookies["csrftoken"],
        }, headers={"Referer": production.caddy.url + "/customer/"}, follow_redirects=True)
    assert signed_in.status_code == 200, signed_in.text[:500]
    assert CUSTOMER in signed_in.text
    assert "1.0.0" in signed_in.text


def test_the_vendor_pages_set_only_secure_cookies(production):
    client = production.stack.session("alice", base_url=production.caddy.url,
                                      verify=production.ca.ssl_context())
    try:
        cookies = client.cookies.jar
        assert {c.name for c in cookies} >= {"sessionid", "csrftoken"}
        assert all(c.secure for c in cookies)
        page = client.get("/customers/")
    finally:
        client.close()
    assert page.status_code == 200
    assert CUSTOMER in page.text
    assert page.headers["strict-transport-security"].startswith("max-age=")


def test_plain_http_to_the_https_port_is_refused(production):
    response = httpx.get(f"http://{production.caddy.host}/customer/", timeout=10)
    assert response.status_code == 400
    assert "HTTPS" in response.text


def test_the_forwarded_address_is_the_client_not_caddy(production):
    # A client's own X-Forwarded-For is replaced by Caddy, so it cannot pose as another
    # address; the portal sees the address Caddy saw (loopback here) and the HTTPS scheme.
    with production.client() as client:
        response = client.get("/accounts/login/", headers={"X-Forwarded-For": "203.0.113.9",
                                                           "X-Forwarded-Proto": "http"})
    assert response.status_code == 200  # not redirected to https: the scheme came from Caddy


def test_concurrent_requests_leave_no_database_connections_behind(production):
    # Each request's sync code runs in a thread of its own under ASGI: a connection kept for
    # reuse would outlive it, and a burst of requests would use up PostgreSQL's max_connections.
    def check(_):
        with production.client() as client:
            return client.get(f"/release/{SLUG}/pending", headers=basic(production.license_id)).status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(check, range(60)))
    assert statuses == [200] * 60
    # Workers (2 x 2 processes), beat and the web processes may each hold one; the check's own.
    limit = 2 * 3 + 1 + 3 + 1
    deadline = time.monotonic() + 5
    with psycopg.connect(production.database_url, autocommit=True) as connection:
        while (count := connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()[0]) > limit:
            assert time.monotonic() < deadline, f"{count} connections left open"
            time.sleep(0.1)


# --- a web process dies -----------------------------------------------------------------------


def _web_process_stuck_sending(stack: PortalStack) -> str | None:
    """The web process with bytes queued on a connection (/proc/net/tcp's tx_queue): the one
    streaming the blob the test client stopped reading, while Caddy's other connections to the
    web processes sit idle."""
    names = dict(zip(stack.web_ports, stack.web_names, strict=True))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        queued = int(fields[4].split(":")[0], 16)
        if local_port in names and fields[3] == "01" and queued > 0:  # 01: ESTABLISHED
            return names[local_port]
    return None


def test_killing_a_web_process_mid_pull_loses_no_request_that_arrives_after(production, upstream):
    stack = production.stack
    big = upstream["big"].layers[0]
    image = "upstream/team/big"
    blob_url = f"/v2/proxy/{SLUG}/{image}/blobs/{big.digest}"
    manifest_url = f"/v2/proxy/{SLUG}/{image}/manifests/1.0"
    headers = {**basic(production.license_id),
               "Accept": "application/vnd.oci.image.manifest.v1+json"}
    results: list[tuple[float, int | str]] = []
    stop = threading.Event()

    def keep_asking():
        with production.client(timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(manifest_url, headers=headers).status_code
                except httpx.TransportError as e:
                    status = type(e).__name__
                results.append((started, status))

    with production.client(timeout=60) as client, client.stream("GET", blob_url, headers=headers) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_raw(1 << 20)
        received = len(next(chunks))
        deadline = time.monotonic() + 10
        while (victim := _web_process_stuck_sending(stack)) is None:
            assert time.monotonic() < deadline, "no web process is streaming the blob"
            time.sleep(0.05)
        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            stack.kill(victim)
            killed_at = time.monotonic()
            cut = False
            try:
                for chunk in chunks:
                    received += len(chunk)
            except httpx.TransportError:
                cut = True
            # Keep asking after the kill until enough requests arrived: each must land on
            # another process.
            deadline = killed_at + 20
            while sum(started > killed_at for started, _ in results) < 20:
                assert time.monotonic() < deadline, "the requests after the kill are too slow"
                time.sleep(0.05)
        finally:
            stop.set()
            asker.join(timeout=60)
    assert cut and received < big.size, "the stream of the killed process should have been cut"

    after = [status for started, status in results if started > killed_at]
    assert len(after) >= 20
    assert all(status == 200 for status in after), after

    # The client's retry of the cut blob succeeds, whole, through another process.
    with production.client(timeout=120) as client:
        retry = client.get(blob_url, headers=headers)
    assert retry.status_code == 200
    assert retry.headers["docker-content-digest"] == big.digest
    assert len(retry.content) == big.size

    stack.revive(victim)
