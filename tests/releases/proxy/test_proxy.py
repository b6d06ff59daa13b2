# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py)
"""The proxy registry against the real server process (uvicorn), with skopeo as the client.

Upstream: an ECR stand-in (moto's GetAuthorizationToken + docker-registry with htpasswd user
AWS, reached at the ECR host name through PORTAL_REGISTRY_HOST_MAP), a public registry with no
auth, and a linked registry whose address nobody listens on (an outage).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import ECR_HOST, MOTO_TOKEN_PASSWORD, start_distribution
from tests.support.servers import free_port, require_binary

pytestmark = pytest.mark.slow

SLUG = "mysampleecrapp"
ECR_IMAGE = f"{ECR_HOST}/demo/app"
UNLINKED_IMAGE = "unlinked.example.com/team/tool"
DOWN_IMAGE = "down.example.com/team/app"
PUBLIC_IMAGE = "public.example.com/pub/app"
THROTTLE_LIMIT = 5


@pytest.fixture(scope="module")
def upstream(ecr_registry, tmp_path_factory):
    """Push a two-platform OCI image and a second repository to the ECR stand-in."""
    index = images.build_index(layer_sizes=[300_000, 200_000], shared_size=150_000, seed=7)
    images.push(index, ecr_registry.url, "demo/app", "1.0", auth=("AWS", MOTO_TOKEN_PASSWORD))
    secret = images.build_single([50_000], seed=8)
    images.push(secret, ecr_registry.url, "demo/secret", "1.0", auth=("AWS", MOTO_TOKEN_PASSWORD))
    public = start_distribution(tmp_path_factory.mktemp("public-registry"))
    public_image = images.build_single([40_000], seed=9)
    images.push(public_image, public.url, "pub/app", "1.0")
    yield {"index": index, "public": public, "public_image": public_image}
    public.stop()


@pytest.fixture(scope="module")
def server(upstream, ecr_registry, moto_server, aws_users, tmp_path_factory):
    host_map = ",".join([
        ecr_registry.extra["host_map"],
        f"down.example.com=http://127.0.0.1:{free_port()}",
        f"public.example.com={upstream['public'].url}",
    ])
    server = start_proxy_server(tmp_path_factory.mktemp("proxy"), extra={
        **moto_server.env, "PORTAL_REGISTRY_HOST_MAP": host_map,
        "PORTAL_PROXY_AUTH_FAILURE_LIMIT": str(THROTTLE_LIMIT),
        # Each test poses as its own client address through X-Forwarded-For.
        "PORTAL_TRUSTED_PROXIES": "127.0.0.1",
    })
    try:
        server.data = server.call("tests.support.proxy_server.seed", registries=[
            {"endpoint": ECR_HOST, "provider": "ecr", "username": aws_users.reader.access_key_id,
             "password": aws_users.reader.secret_access_key},
            {"endpoint": "down.example.com", "provider": "other", "username": "u",
             "password": "down-pw", "name": "down"},
        ], apps=[
            {"slug": SLUG, "releases": [[f"{ECR_IMAGE}:1.0", f"{UNLINKED_IMAGE}:2.0",
                                          f"{DOWN_IMAGE}:1.0"]],
             "customers": [{"name": "Big Bank"}, {"name": "Archived Co", "archived": True},
                           {"name": "Expired Inc", "expired": True}]},
            {"slug": "otherapp", "releases": [[f"{ECR_IMAGE}:1.0"]],
             "customers": [{"name": "Other Customer"}]},
            {"slug": "publicapp", "proxy_public_images": True,
             "releases": [[f"{PUBLIC_IMAGE}:1.0"]], "customers": [{"name": "Public Fan"}]},
        ])
        yield server
    finally:
        server.stop()


def license_of(server, name: str) -> str:
    return server.data["licenses"][name]


def basic(license_id: str, password: str | None = None) -> dict[str, str]:
    pair = f"{license_id}:{license_id if password is None else password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def get(server, path: str, *, headers=None, method="GET", address="10.1.0.1") -> httpx.Response:
    # The server trusts X-Forwarded-For from 127.0.0.1 (PORTAL_TRUSTED_PROXIES above).
    headers = {"X-Forwarded-For": address, **(headers or {})}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=30)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    binary = require_binary("skopeo")
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=180)
    if check and result.returncode:
        raise AssertionError(f"skopeo {args[0]} failed: {result.stderr[-2000:]}")
    return result


def proxied(server, image: str, slug: str = SLUG) -> str:
    return f"docker://{server.host}/proxy/{slug}/{image}"


def pull_log_rows(server, customer: str, *, until, seconds: float = 10) -> list[dict]:
    """The customer's pull log once ``until(rows)`` holds (rows are written by a thread in
    batches, a moment after the response), or when the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        rows = server.call("tests.support.proxy_server.pull_log", customer=customer)["rows"]
        if until(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


# --- skopeo through the proxy ----------------------------------------------------------------


def test_skopeo_inspect_through_the_proxy_sees_the_upstream_digest(server, upstream):
    lic = license_of(server, "Big Bank")
    result = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"{lic}:{lic}",
                    proxied(server, f"{ECR_IMAGE}:1.0"))
    assert result.stdout.encode() == upstream["index"].content
    result = skopeo("inspect", "--tls-verify=false", "--creds", f"{lic}:{lic}",
                    "--override-arch", "arm64", proxied(server, f"{ECR_IMAGE}:1.0"))
    info = json.loads(result.stdout)
    assert info["Digest"] == upstream["index"].digest
    assert info["Architecture"] == "arm64" and info["RepoTags"] == ["1.0"]


def test_skopeo_copy_all_through_the_proxy_keeps_every_digest(server, upstream, tmp_path):
    lic = license_of(server, "Big Bank")
    target = tmp_path / "oci"
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", f"{lic}:{lic}",
           proxied(server, f"{ECR_IMAGE}:1.0"), f"oci:{target}:1.0")
    index = upstream["index"]
    top = json.loads((target / "index.json").read_text())["manifests"][0]
    assert top["digest"] == index.digest
    stored = {f"sha256:{p.name}" for p in (target / "blobs" / "sha256").iterdir()}
    expected = {index.digest, *(i.digest for i in index.images), *(b.digest for b in index.blobs)}
    assert expected <= stored
    for blob in index.blobs:  # the bytes, not only the names
        data = (target / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")).read_bytes()
        assert images.sha256(data) == blob.digest

    digests = {b.digest for b in index.blobs}
    rows = pull_log_rows(server, "Big Bank", until=lambda rows: {
        r["reference"] for r in rows if r["kind"] == "blob" and r["method"] == "GET"} >= digests)
    blob_rows = [r for r in rows if r["kind"] == "blob" and r["method"] == "GET"]
    assert {r["reference"] for r in blob_rows} >= digests
    assert all(r["status"] == 200 for r in blob_rows)
    sizes = {b.digest: b.size for b in index.blobs}
    assert all(r["bytes"] == sizes[r["reference"]] for r in blob_rows if r["reference"] in sizes)
    manifests = [r for r in rows if r["kind"] == "manifest"]
    assert any(r["reference"] == "1.0" and r["status"] == 200 for r in manifests)
    assert all(r["image"] == f"{ECR_HOST}/demo/app" for r in rows)
    assert all(r["registry"] == server.data["registries"][ECR_HOST] for r in rows)


def test_concurrent_pulls_all_succeed_and_are_all_logged(server, upstream, tmp_path):
    lic = license_of(server, "Other Customer")

    def pull(i: int) -> str:
        target = tmp_path / f"oci-{i}"
        skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", f"{lic}:{lic}",
               proxied(server, f"{ECR_IMAGE}:1.0", slug="otherapp"), f"oci:{target}:1.0")
        return json.loads((target / "index.json").read_text())["manifests"][0]["digest"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(pull, range(8)))
    assert digests == [upstream["index"].digest] * 8
    # A blob's row is queued after its last byte is sent and written by the log's thread.
    expected = 8 * len(upstream["index"].blobs)

    def blob_gets_of(rows):
        return [r for r in rows if r["kind"] == "blob" and r["method"] == "GET"]

    rows = pull_log_rows(server, "Other Customer",
                         until=lambda rows: len(blob_gets_of(rows)) >= expected)
    blob_gets = blob_gets_of(rows)
    assert len(blob_gets) == expected
    assert all(r["status"] == 200 for r in blob_gets)
    assert "database is locked" not in server.log()


def test_a_public_image_is_proxied_when_the_app_asks(server, upstream, tmp_path):
    lic = license_of(server, "Public Fan")
    target = tmp_path / "oci"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", f"{lic}:{lic}",
           proxied(server, f"{PUBLIC_IMAGE}:1.0", slug="publicapp"), f"oci:{target}:1.0")
    top = json.loads((target / "index.json").read_text())["manifests"][0]
    assert top["digest"] == upstream["public_image"].digest
    rows = pull_log_rows(server, "Public Fan", until=lambda rows: any(
        r["kind"] == "blob" and r["method"] == "GET" for r in rows))
    assert rows and all(r["registry"] is None for r in rows)


# --- the API surface ---------------------------------------------------------------------------


def test_v2_asks_for_basic_auth_without_credentials(server):
    response = get(server, "/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Basic realm="')
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_v2_answers_200_with_a_license(server):
    response = get(server, "/v2/", headers=basic(license_of(server, "Big Bank")))
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_manifest_keeps_bytes_media_type_and_digest_and_head_matches(server, upstream):
    index = upstream["index"]
    headers = {**basic(license_of(server, "Big Bank")), "Accept": images.OCI_INDEX}
    path = f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/1.0"
    response = get(server, path, headers=headers)
    assert response.status_code == 200
    assert response.content == index.content
    assert response.headers["content-type"] == images.OCI_INDEX
    assert response.headers["docker-content-digest"] == index.digest
    head = get(server, path, headers=headers, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["docker-content-digest"] == index.digest
    assert head.headers["content-length"] == str(len(index.content))
    by_digest = get(server, f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/{index.digest}",
                    headers=headers)
    assert by_digest.content == index.content


def test_blob_head_and_get(server, upstream):
    blob = upstream["index"].blobs[0]
    path = f"/v2/proxy/{SLUG}/{ECR_IMAGE}/blobs/{blob.digest}"
    headers = basic(license_of(server, "Big Bank"))
    head = get(server, path, headers=headers, method="HEAD")
    assert head.status_code == 200 and head.headers["content-length"] == str(blob.size)
    response = get(server, path, headers=headers)
    assert response.status_code == 200 and images.sha256(response.content) == blob.digest


def test_upstream_404_becomes_oci_errors(server):
    headers = basic(license_of(server, "Big Bank"))
    response = get(server, f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/9.9", headers=headers)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    response = get(server, f"/v2/proxy/{SLUG}/{ECR_IMAGE}/blobs/sha256:{'0' * 64}",
                   headers=headers)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_an_upstream_outage_is_503_with_an_oci_error(server):
    response = get(server, f"/v2/proxy/{SLUG}/{DOWN_IMAGE}/manifests/1.0",
                   headers=basic(license_of(server, "Big Bank")))
    assert response.status_code in (502, 503)
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("who, path, status", [
    ("nobody", f"{ECR_IMAGE}/manifests/1.0", 401),
    ("wrong", f"{ECR_IMAGE}/manifests/1.0", 401),
    ("half", f"{ECR_IMAGE}/manifests/1.0", 401),
    ("Archived Co", f"{ECR_IMAGE}/manifests/1.0", 403),
    ("Expired Inc", f"{ECR_IMAGE}/manifests/1.0", 403),
    ("Other Customer", f"{ECR_IMAGE}/manifests/1.0", 403),  # another app's license
    ("Big Bank", f"{ECR_HOST}/demo/secret/manifests/1.0", 403),  # no release uses it
    ("Big Bank", f"{UNLINKED_IMAGE}/manifests/2.0", 403),  # used, but on an unlinked host
    ("Big Bank", "registry.example.org/any/thing/manifests/1.0", 403),  # another host
    ("Big Bank", "library/nginx/manifests/latest", 403),  # Docker Hub, not proxied
    ("Big Bank", f"{ECR_IMAGE}/blobs/sha256:{'a' * 64}/../../secret", 404),
])
def test_it_refuses(server, who, path, status):
    lic = license_of(server, "Big Bank")
    headers = {"nobody": {}, "wrong": basic("0" * 40), "half": basic(lic, "other")}.get(who)
    if headers is None:
        headers = basic(license_of(server, who))
    response = get(server, f"/v2/proxy/{SLUG}/{path}", headers=headers,
                   address=f"10.2.{len(who)}.{status % 250}")
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["code"] in (
        "UNAUTHORIZED", "DENIED", "NAME_UNKNOWN")
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic ")


def test_it_refuses_another_apps_slug_with_skopeo(server):
    lic = license_of(server, "Big Bank")
    result = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"{lic}:{lic}",
                    proxied(server, f"{ECR_IMAGE}:1.0", slug="otherapp"), check=False)
    assert result.returncode != 0


def test_nothing_else_of_the_registry_api_is_served(server):
    headers = basic(license_of(server, "Big Bank"))
    for path in ("/v2/_catalog", f"/v2/{ECR_IMAGE}/manifests/1.0",
                 f"/v2/proxy/{SLUG}/{ECR_HOST}/demo/secret/tags/list",
                 f"/v2/proxy/{SLUG}/{ECR_IMAGE}/referrers/sha256:{'a' * 64}"):
        response = get(server, path, headers=headers)
        assert response.status_code in (403, 404), path
    push = get(server, f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/2.0", headers=headers,
               method="PUT")
    assert push.status_code == 405


def test_failed_logins_are_throttled_per_address(server):
    address = "10.9.9.9"
    path = f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/1.0"
    for _ in range(THROTTLE_LIMIT):
        assert get(server, path, headers=basic("f" * 40), address=address).status_code == 401
    refused = get(server, path, headers=basic("e" * 40), address=address)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert "try again in 5 minutes" in refused.json()["errors"][0]["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 300
    assert get(server, "/v2/", headers=basic("f" * 40), address=address).status_code == 429
    # Many clusters sit behind one outbound address: a valid license still pulls from it.
    assert get(server, "/v2/", headers=basic(license_of(server, "Big Bank")), address=address).status_code == 200
    ok = get(server, path, headers=basic(license_of(server, "Big Bank")), address=address)
    assert ok.status_code == 200
    # Another address is not affected.
    ok = get(server, path, headers=basic(license_of(server, "Big Bank")), address="10.9.9.10")
    assert ok.status_code == 200


def test_no_license_id_reaches_the_server_log(server):
    log = server.log()
    for lic in server.data["licenses"].values():
        assert lic not in log
    assert Path(server.directory).exists()


def test_a_license_archived_by_another_process_is_refused_within_the_cache_ttl(server):
    """The decision cache (5 s) is bumped by saves in the server's own process; a change made
    elsewhere (here manage.py shell) must still stop the license within the TTL."""
    from releases.proxy.decisions import ACCESS_CACHE_SECONDS

    out = server.shell(
        "from releases.models import App, Customer; app = App.objects.get(slug='" + SLUG + "'); "
        "c = Customer.objects.create(app=app, channel=app.channels.get(slug='unstable'), "
        "name='Short Lived'); print('LICENSE=' + c.license_id)")
    lic = next(x for x in out.splitlines() if x.startswith("LICENSE=")).removeprefix("LICENSE=")
    path = f"/v2/proxy/{SLUG}/{ECR_IMAGE}/manifests/1.0"
    assert get(server, path, headers=basic(lic), address="10.3.0.1").status_code == 200
    server.shell("from django.utils import timezone; from releases.models import Customer; "
                 "Customer.objects.filter(name='Short Lived').update(archived_at=timezone.now())")
    archived = time.monotonic()
    deadline = archived + ACCESS_CACHE_SECONDS + 3
    while True:
        status = get(server, path, headers=basic(lic), address="10.3.0.1").status_code
        if status == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 403
    assert time.monotonic() - archived <= ACCESS_CACHE_SECONDS + 1
