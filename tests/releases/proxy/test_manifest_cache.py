"""Manifests by digest from the proxy's memory (releases/proxy/manifest_cache.py).

Against the real server process, with skopeo as the client. Once a release's manifests were
pulled, the upstream is no longer asked for them: the test stops the upstream registry and
pulls the manifests again. The entitlement is checked first, every time.
"""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest

from releases.proxy import manifest_cache
from tests.support import images
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import start_distribution
from tests.support.servers import require_binary

pytestmark = pytest.mark.slow

USERS = {"mirror": "mirror-secret-pw"}


@pytest.fixture
def stack(tmp_path):
    upstream = start_distribution(tmp_path / "upstream", users=USERS)
    index = images.build_index(layer_sizes=[20_000], shared_size=10_000, seed=41)
    images.push(index, upstream.url, "team/app", "1.0", auth=upstream.auth)
    other = images.build_single([5_000], seed=42)
    images.push(other, upstream.url, "team/other", "1.0", auth=upstream.auth)
    server = start_proxy_server(tmp_path / "portal")
    try:
        data = server.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": upstream.host, "provider": "other", "username": upstream.username,
            "password": upstream.password, "name": "up", "insecure": True,
        }], apps=[
            {"slug": "cached", "pin": True, "releases": [[f"{upstream.host}/team/app:1.0"]],
             "customers": [{"name": "Holder"}]},
            {"slug": "elsewhere", "pin": True, "releases": [[f"{upstream.host}/team/other:1.0"]],
             "customers": [{"name": "Stranger"}]},
        ])
        yield server, upstream, index, data["licenses"]
    finally:
        server.stop()
        upstream.stop()


def basic(license_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()}


def test_a_pulled_manifest_is_served_again_without_the_upstream(stack):
    server, upstream, _index, licenses = stack
    base = f"{server.url}/v2/proxy/cached/up/team/app/manifests"
    holder = basic(licenses["Holder"])
    first = httpx.get(f"{base}/1.0", headers=holder, timeout=30)  # the tag: its pinned digest
    assert first.status_code == 200, first.text
    platform, never_asked = (m["digest"] for m in json.loads(first.content)["manifests"][:2])
    by_digest = httpx.get(f"{base}/{platform}", headers=holder, timeout=30)
    assert by_digest.status_code == 200

    upstream.stop()

    again = httpx.get(f"{base}/1.0", headers=holder, timeout=30)
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["docker-content-digest"] == first.headers["docker-content-digest"]
    assert again.headers["content-type"] == first.headers["content-type"]
    head = httpx.head(f"{base}/{platform}", headers=holder, timeout=30)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(by_digest.content))
    assert head.headers["docker-content-digest"] == platform
    # skopeo, a client nobody here wrote, reads the same bytes.
    raw = subprocess.run(
        [require_binary("skopeo"), "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{licenses['Holder']}:{licenses['Holder']}",
         f"docker://{server.host}/proxy/cached/up/team/app@{platform}"],
        capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == by_digest.content
    # A manifest nobody pulled still needs the upstream, which is down.
    assert httpx.get(f"{base}/{never_asked}", headers=holder, timeout=30).status_code == 503


def test_the_entitlement_is_checked_before_the_cache(stack):
    server, _upstream, _index, licenses = stack
    holder_url = f"{server.url}/v2/proxy/cached/up/team/app/manifests/1.0"
    digest = httpx.get(holder_url, headers=basic(licenses["Holder"]),
                       timeout=30).headers["docker-content-digest"]
    # Another app's license asks for the cached manifest, under its own app and by digest.
    stranger = basic(licenses["Stranger"])
    for path in (f"/v2/proxy/elsewhere/up/team/app/manifests/{digest}",
                 f"/v2/proxy/cached/up/team/app/manifests/{digest}"):
        response = httpx.get(f"{server.url}{path}", headers=stranger, timeout=30)
        assert response.status_code in (401, 403), (path, response.status_code)
        assert response.json()["errors"][0]["code"] in ("DENIED", "UNAUTHORIZED")


def test_the_cache_keeps_within_its_bound():
    manifest_cache.clear()
    try:
        big = b"x" * (manifest_cache.MAX_BYTES // 8)
        for i in range(10):
            manifest_cache.put(f"sha256:{i:064d}", "application/json", big)
        assert manifest_cache.get(f"sha256:{0:064d}") is None  # the oldest went first
        assert manifest_cache.get(f"sha256:{9:064d}") == ("application/json", big)
        assert manifest_cache._size <= manifest_cache.MAX_BYTES
    finally:
        manifest_cache.clear()
