"""The proxy registry's entitlement rules against the real server process (uvicorn), with skopeo
as the client and a loopback docker-registry upstream (linked to the team as ``upstream``).

Pins are taken here from the upstream registry (tests/releases/proxy/pins.py), as a promotion
takes them. Each test uses its own repository, so a pinned tag is checked for drift afresh.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.support import images
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import start_distribution
from tests.support.servers import poll, require_binary

pytestmark = pytest.mark.slow

SLUG = "entapp"
USERS = {"vendor": "vendor-secret-pw"}
DENIED = "not part of a release on your channel"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("upstream"), users=USERS)
    built = {
        "index": images.build_index(layer_sizes=[30_000, 20_000], shared_size=10_000, seed=21),
        "other": images.build_single([15_000], seed=22),
        "first": images.build_index(layer_sizes=[12_000], shared_size=5_000, seed=23),
        "later": images.build_single([11_000], seed=24),
        "moved": images.build_single([9_000], seed=25),
        "grace": images.build_single([8_000], seed=26),
    }
    for repo, tag, image in (("app", "1.0", "index"), ("app", "2.0", "other"),
                             ("app", "3.0", "first"), ("moving", "1.0", "index"),
                             ("grace", "1.0", "grace")):
        images.push(built[image], registry.url, repo, tag, auth=registry.auth)
    yield registry, built
    registry.stop()


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    registry, _ = upstream
    server = start_proxy_server(tmp_path_factory.mktemp("proxy"))
    host = registry.host
    try:
        server.data = server.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": host, "provider": "other", "username": registry.username,
            "password": registry.password, "name": "upstream", "insecure": True,
        }], apps=[{"slug": SLUG, "releases": [
            [f"{host}/app:1.0"], [f"{host}/app:3.0"], [f"{host}/moving:1.0"],
            [f"{host}/gone:1.0"], [f"{host}/grace:1.0"],
        ], "customers": [{"name": "Ann"}, {"name": "Bea"}, {"name": "Cid"}]}])
        pin = "tests.releases.proxy.pins.pin"
        server.pins = {
            "app": server.call(pin, app=SLUG, sequence=1, image=f"{host}/app:1.0"),
            "first": server.call(pin, app=SLUG, sequence=2, image=f"{host}/app:3.0",
                                 unresolved=True),
            "moving": server.call(pin, app=SLUG, sequence=3, image=f"{host}/moving:1.0"),
            "gone": server.call(pin, app=SLUG, sequence=4, image=f"{host}/gone:1.0", tree=[
                {"digest": "sha256:" + "1" * 64, "mediaType": images.OCI_INDEX, "size": 9,
                 "kind": "index"},
                {"digest": "sha256:" + "2" * 64, "mediaType": "x", "size": 9, "kind": "layer"}]),
            "grace": server.call(pin, app=SLUG, sequence=5, image=f"{host}/grace:1.0"),
        }
        yield server
    finally:
        server.stop()


def lic(server, name):
    return server.data["licenses"][name]


def url(server, path: str) -> str:
    return f"{server.url}/v2/proxy/{SLUG}/upstream/{path}"


def get(server, who: str, path: str, method="GET") -> httpx.Response:
    key = lic(server, who)
    return httpx.request(method, url(server, path), auth=(key, key), timeout=30,
                         headers={"Accept": ",".join([images.OCI_INDEX, images.OCI_MANIFEST])})


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([require_binary("skopeo"), *args], capture_output=True, text=True,
                            timeout=180)
    if check and result.returncode:
        raise AssertionError(f"skopeo {args[0]} failed: {result.stderr[-2000:]}")
    return result


def image(server, name: str) -> str:
    return f"docker://{server.host}/proxy/{SLUG}/upstream/{name}"


def creds(server, who: str) -> str:
    return f"{lic(server, who)}:{lic(server, who)}"



def test_skopeo_copies_a_pinned_tag_and_the_pull_is_recorded(server, upstream, tmp_path):
    _, built = upstream
    index = built["index"]
    target = tmp_path / "oci"
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", creds(server, "Ann"),
           image(server, "app:1.0"), f"oci:{target}:1.0")
    top = json.loads((target / "index.json").read_text())["manifests"][0]
    assert top["digest"] == index.digest
    pin = str(server.pins["app"]["pin"])
    pulled = poll(lambda: server.call("tests.releases.proxy.pins.pulled", customer="Ann"),
                  until=lambda out: pin in out["pins"])
    assert pulled["pins"][pin] == {"lost": False}
    rows = server.call("tests.releases.proxy.pins.pull_log", customer="Ann")["rows"]
    assert any(r["reference"] == "1.0" and r["release"] == server.pins["app"]["release"]
               for r in rows)


def test_other_tags_and_images_of_the_repository_are_refused(server, upstream):
    _, built = upstream
    other = built["other"]
    for path in ("manifests/2.0", f"manifests/{other.digest}",
                 f"blobs/{other.blobs[-1].digest}", f"blobs/{built['later'].blobs[-1].digest}"):
        response = get(server, "Bea", f"app/{path}")
        assert response.status_code == 403, (path, response.text)
        error = response.json()["errors"][0]
        assert error["code"] == "DENIED" and DENIED in error["message"]
    result = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", creds(server, "Bea"),
                    image(server, "app:2.0"), check=False)
    assert result.returncode != 0
    # Every node of the pinned tree is allowed: the index, each child manifest, each blob.
    index = built["index"]
    for path in [f"manifests/{index.digest}", *(f"manifests/{i.digest}" for i in index.images),
                 *(f"blobs/{b.digest}" for b in index.blobs)]:
        assert get(server, "Bea", f"app/{path}", method="HEAD").status_code == 200, path


def test_the_tags_list_holds_only_the_channels_tags(server):
    response = get(server, "Bea", "app/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": f"proxy/{SLUG}/upstream/app", "tags": ["1.0", "3.0"]}


def test_a_tag_moved_upstream_still_gives_the_promoted_digest(server, upstream):
    registry, built = upstream
    promoted, moved = built["index"], built["moved"]
    images.push(moved, registry.url, "moving", "1.0", auth=registry.auth)
    result = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", creds(server, "Cid"),
                    image(server, "moving:1.0"))
    assert result.stdout.encode() == promoted.content
    refused = get(server, "Cid", f"moving/manifests/{moved.digest}")
    assert refused.status_code == 403 and DENIED in refused.json()["errors"][0]["message"]
    rows = poll(lambda: server.call("tests.releases.proxy.pins.pull_log", customer="Cid")["rows"],
                until=lambda rows: any(r["note"] for r in rows))
    noted = [r for r in rows if r["note"]]
    assert noted, rows
    assert noted[0]["reference"] == "1.0" and noted[0]["status"] == 200
    assert noted[0]["release"] == server.pins["moving"]["release"]
    assert moved.digest in noted[0]["note"] and promoted.digest in noted[0]["note"]


def test_the_first_pull_pins_an_unresolved_image_and_its_blobs_follow(server, upstream,
                                                                     tmp_path):
    registry, built = upstream
    first = built["first"]
    target = tmp_path / "oci"
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", creds(server, "Ann"),
           image(server, "app:3.0"), f"oci:{target}:3.0")
    assert json.loads((target / "index.json").read_text())["manifests"][0]["digest"] == first.digest
    state = server.call("tests.releases.proxy.pins.pin_state", pin=server.pins["first"]["pin"])
    assert (state["digest"], state["source"]) == (first.digest, "first_pull")
    assert {n["digest"] for n in state["tree"]} == {
        first.digest, *(i.digest for i in first.images), *(b.digest for b in first.blobs)}
    # Frozen: the tag moving upstream afterwards changes nothing.
    images.push(built["later"], registry.url, "app", "3.0", auth=registry.auth)
    again = get(server, "Bea", "app/manifests/3.0")
    assert again.status_code == 200 and again.headers["docker-content-digest"] == first.digest


def test_an_allowed_reference_missing_upstream_is_404(server):
    manifest = get(server, "Bea", "gone/manifests/1.0")
    assert manifest.status_code == 404
    assert manifest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    blob = get(server, "Bea", f"gone/blobs/sha256:{'2' * 64}")
    assert blob.status_code == 404 and blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert get(server, "Bea", f"gone/blobs/sha256:{'3' * 64}").status_code == 403


def test_after_a_demotion_only_licenses_that_pulled_keep_pulling(server, upstream):
    _, built = upstream
    grace = built["grace"]
    path = f"grace/manifests/{grace.digest}"
    assert get(server, "Ann", "grace/manifests/1.0").status_code == 200
    pin = str(server.pins["grace"]["pin"])
    poll(lambda: server.call("tests.releases.proxy.pins.pulled", customer="Ann"),
         until=lambda out: pin in out["pins"])
    server.call("tests.releases.proxy.pins.demote", app=SLUG, sequence=5)
    # Another process demoted: the server's cached decisions end within their TTL.
    status = poll(lambda: get(server, "Bea", path).status_code, until=lambda s: s == 403)
    assert status == 403
    assert get(server, "Ann", path).status_code == 200
    assert get(server, "Ann", f"grace/blobs/{grace.blobs[-1].digest}").status_code == 200
    assert server.call("tests.releases.proxy.pins.pulled", customer="Ann")["pins"][pin] == {
        "lost": True}
