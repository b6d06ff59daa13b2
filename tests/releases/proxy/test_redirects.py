# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py)
"""Blob redirects passed on to the client (releases/proxy/redirects.py), with skopeo as the client.

AWS is unreachable here, so each ECR registry is a stand-in: moto's GetAuthorizationToken, and
at the registry's host name (PORTAL_REGISTRY_HOST_MAP) a ``RedirectingRegistry`` in front of
the docker-registry, which answers blob GETs with a 307 to a second loopback server ("S3"). One
stand-in per case, each at its own ECR host name: the option on with S3-style signed addresses,
the option off, the option on with unsigned addresses, the option on with addresses on the
registry's own origin.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time

import httpx
import pytest

from releases.proxy.redirects import aws_signed, presigned_location
from tests.support import images
from tests.support.faults import RedirectingRegistry
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import MOTO_TOKEN_PASSWORD
from tests.support.servers import require_binary

SLUG = "redirectapp"
ACCOUNT = "123456789012"
HOSTS = {  # case -> (ECR host name, direct_downloads, RedirectingRegistry options)
    "on": (f"{ACCOUNT}.dkr.ecr.us-east-2.amazonaws.com", True, {}),
    "off": (f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com", False, {}),
    "unsigned": (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com", True, {"signed": False}),
    "same_origin": (f"{ACCOUNT}.dkr.ecr.eu-central-1.amazonaws.com", True, {"same_origin": True}),
}
REPO = "redirect/app"


# --- the rule, as a table ------------------------------------------------------------------------

SIGNED = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101%2Fus-east-2%2Fs3"
          "%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600"
          "&X-Amz-SignedHeaders=host&X-Amz-Signature=abc123")
ASKED = "https://123456789012.dkr.ecr.us-east-2.amazonaws.com/v2/app/blobs/sha256:" + "a" * 64
S3 = "https://prod-us-east-2-starport-layer-bucket.s3.us-east-2.amazonaws.com/abc/def"


@pytest.mark.parametrize("status, location, asked, passed", [
    (307, f"{S3}?{SIGNED}", ASKED, True),
    (302, f"{S3}?{SIGNED}", ASKED, True),
    (303, f"{S3}?{SIGNED}", ASKED, True),
    (307, f"{S3}?X-Amz-Signature=abc", ASKED, True),
    (307, f"{S3}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA", ASKED, True),
    (307, f"{S3}?x-amz-signature=abc", ASKED, True),  # names compared case-insensitively
    (301, f"{S3}?{SIGNED}", ASKED, False),  # permanent: a client may keep it past expiry
    (308, f"{S3}?{SIGNED}", ASKED, False),
    (200, f"{S3}?{SIGNED}", ASKED, False),
    (307, S3, ASKED, False),  # no signature
    (307, f"{S3}?X-Amz-Signature=", ASKED, False),  # an empty one
    (307, f"{S3}?X-Amz-Algorithm=AWS4-HMAC-SHA256", ASKED, False),  # half of one
    (307, f"{S3}#X-Amz-Signature=abc", ASKED, False),  # not in the query
    (307, f"/v2/app/blobs/elsewhere?{SIGNED}", ASKED, False),  # the registry's own origin
    (307, f"https://123456789012.dkr.ecr.us-east-2.amazonaws.com/x?{SIGNED}", ASKED, False),
    (307, f"https://123456789012.dkr.ecr.us-east-2.amazonaws.com:8443/x?{SIGNED}", ASKED, True),
    (307, f"http://s3.example.com/x?{SIGNED}", ASKED, False),  # HTTPS asked: no downgrade
    (307, f"http://s3.example.com/x?{SIGNED}", "http://127.0.0.1:5000/v2/a/blobs/b", True),
    (307, f"ftp://s3.example.com/x?{SIGNED}", ASKED, False),
    (307, f"https:///x?{SIGNED}", ASKED, False),  # no host
    (307, f"https://s3.example.com:99999/x?{SIGNED}", ASKED, False),  # a bad port
])
def test_the_rule_for_passing_a_location_on(status, location, asked, passed):
    response = httpx.Response(status, headers={"Location": location},
                              request=httpx.Request("GET", asked))
    result = presigned_location(response)
    if passed:
        assert result is not None and aws_signed(result.split("?", 1)[1])
    else:
        assert result is None


# --- against the real server, with skopeo ----------------------------------------------------------

@pytest.fixture(scope="module")
def upstream(ecr_registry):
    """A two-platform image on the docker-registry behind every stand-in; and another image of the
    same repository that no release uses."""
    auth = ("AWS", MOTO_TOKEN_PASSWORD)
    index = images.build_index(layer_sizes=[200_000, 100_000], shared_size=80_000, seed=31)
    images.push(index, ecr_registry.url, REPO, "1.0", auth=auth)
    other = images.build_single([60_000], seed=32)
    images.push(other, ecr_registry.url, REPO, "2.0", auth=auth)
    standins = {case: RedirectingRegistry(ecr_registry.url, auth, **options).start()
                for case, (_, _, options) in HOSTS.items()}
    yield {"index": index, "other": other, "standins": standins}
    for standin in standins.values():
        standin.stop()


@pytest.fixture(scope="module")
def server(upstream, moto_server, aws_users, tmp_path_factory):
    host_map = ",".join(f"{host}=http://{upstream['standins'][case].host}"
                        for case, (host, _, _) in HOSTS.items())
    server = start_proxy_server(tmp_path_factory.mktemp("proxy-redirects"), extra={
        **moto_server.env, "PORTAL_REGISTRY_HOST_MAP": host_map, "LOG_LEVEL": "DEBUG",
        # Every test here is about what the upstream answers: no blob from the cache.
        "PORTAL_BLOB_CACHE_BYTES": "0",
    }, args=("--log-level", "debug"))
    try:
        server.data = server.call("tests.support.proxy_server.seed", registries=[
            {"endpoint": host, "provider": "ecr", "username": aws_users.reader.access_key_id,
             "password": aws_users.reader.secret_access_key, "direct_downloads": on}
            for host, on, _ in HOSTS.values()
        ], apps=[{"slug": SLUG, "pin": True,
                  "releases": [[f"{host}/{REPO}:1.0" for host, _, _ in HOSTS.values()]],
                  "customers": [{"name": f"Customer {case}"} for case in HOSTS]
                  + [{"name": "Archived Co", "archived": True}]},
                 # Promoted unpinned, as before pins existed: no manifest gives blob sizes.
                 {"slug": "legacyapp", "releases": [[f"{HOSTS['on'][0]}/{REPO}:1.0"]],
                  "customers": [{"name": "Customer legacy"}]}])
        yield server
    finally:
        server.stop()


def skopeo(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([require_binary("skopeo"), *args], capture_output=True, text=True,
                            timeout=180)
    if result.returncode:
        raise AssertionError(f"skopeo {args[0]} failed: {result.stderr[-2000:]}")
    return result


def pull(server, case: str, target, *, slug: str = SLUG) -> None:
    lic = server.data["licenses"][f"Customer {case}"]
    host = HOSTS[case if case in HOSTS else "on"][0]
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", f"{lic}:{lic}",
           f"docker://{server.host}/proxy/{slug}/{host}/{REPO}:1.0", f"oci:{target}:1.0")


def assert_same_image(target, index) -> None:
    top = json.loads((target / "index.json").read_text())["manifests"][0]
    assert top["digest"] == index.digest
    for blob in index.blobs:
        data = (target / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")).read_bytes()
        assert images.sha256(data) == blob.digest


def blob_gets(server, case: str, expected: int, seconds: float = 10) -> list[dict]:
    """The customer's blob GET rows once there are ``expected`` (the writer is a thread)."""
    deadline = time.monotonic() + seconds
    while True:
        rows = server.call("tests.support.proxy_server.pull_log", customer=f"Customer {case}")["rows"]
        gets = [r for r in rows if r["kind"] == "blob" and r["method"] == "GET"]
        if len(gets) >= expected or time.monotonic() > deadline:
            return gets


def blob_digests_asked(standin: RedirectingRegistry, *, storage: bool) -> set[str]:
    requests = standin.storage.requests if storage else standin.registry_requests
    return {r["path"].split("?")[0].rsplit("/", 1)[-1] for r in requests
            if "/blobs/sha256:" in r["path"]}


def basic(license_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()}


@pytest.mark.slow
def test_with_the_option_on_skopeo_downloads_every_layer_from_s3(server, upstream, tmp_path):
    standin = upstream["standins"]["on"]
    index = upstream["index"]
    pull(server, "on", tmp_path / "oci")
    assert_same_image(tmp_path / "oci", index)
    digests = {b.digest for b in index.blobs}
    # The stand-in S3 served every blob, to skopeo: the license ID never went there.
    assert blob_digests_asked(standin, storage=True) == digests
    assert standin.storage.authorization_seen == []
    # The portal asked the registry once per blob and streamed none: every row is a 307.
    rows = blob_gets(server, "on", len(digests))
    assert {r["reference"] for r in rows} == digests
    assert {r["status"] for r in rows} == {307}
    sizes = {b.digest: b.size for b in index.blobs}
    assert all(r["bytes"] == sizes[r["reference"]] for r in rows)
    assert all(r["note"].startswith("redirected") for r in rows)
    assert standin.redirects == len(rows)


@pytest.mark.slow
def test_a_blob_no_pin_lists_is_logged_as_redirected_with_its_size_unknown(server, upstream,
                                                                           tmp_path):
    index = upstream["index"]
    pull(server, "legacy", tmp_path / "oci", slug="legacyapp")
    assert_same_image(tmp_path / "oci", index)
    rows = blob_gets(server, "legacy", len(index.blobs))
    assert {r["status"] for r in rows} == {307}
    assert all(r["bytes"] == 0 and r["note"].endswith("size unknown (no pinned manifest lists "
                                                      "this blob)") for r in rows)


@pytest.mark.slow
def test_with_the_option_off_the_portal_follows_and_streams(server, upstream, tmp_path):
    standin = upstream["standins"]["off"]
    index = upstream["index"]
    pull(server, "off", tmp_path / "oci")
    assert_same_image(tmp_path / "oci", index)
    rows = blob_gets(server, "off", len(index.blobs))
    assert {r["status"] for r in rows} == {200}
    sizes = {b.digest: b.size for b in index.blobs}
    assert all(r["bytes"] == sizes[r["reference"]] for r in rows)
    # The portal fetched from S3 itself (without the registry's Authorization).
    assert blob_digests_asked(standin, storage=True) == {b.digest for b in index.blobs}
    assert standin.storage.authorization_seen == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unsigned", "same_origin"])
def test_a_location_without_a_signature_or_on_the_same_origin_is_followed(server, upstream, case,
                                                                          tmp_path):
    standin = upstream["standins"][case]
    index = upstream["index"]
    pull(server, case, tmp_path / "oci")
    assert_same_image(tmp_path / "oci", index)
    rows = blob_gets(server, case, len(index.blobs))
    assert {r["status"] for r in rows} == {200}
    assert all(r["bytes"] > 0 and not r["note"] for r in rows)
    assert standin.redirects >= len(index.blobs)
    if case == "same_origin":
        assert standin.served_here >= len(index.blobs) and standin.storage.requests == []


@pytest.mark.slow
def test_a_blob_the_license_may_not_pull_is_refused_never_redirected(server, upstream):
    standin = upstream["standins"]["on"]
    host = HOSTS["on"][0]
    before = standin.redirects
    other_layer = upstream["other"].layers[0].digest
    entitled_layer = upstream["index"].images[0].layers[-1].digest
    base = f"{server.url}/v2/proxy/{SLUG}/{host}/{REPO}/blobs"
    lic = server.data["licenses"]["Customer on"]
    refused = httpx.get(f"{base}/{other_layer}", headers=basic(lic), timeout=30)
    assert refused.status_code == 403 and "location" not in refused.headers
    assert refused.json()["errors"][0]["code"] == "DENIED"
    archived = httpx.get(f"{base}/{entitled_layer}", headers=basic(server.data["licenses"]["Archived Co"]),
                         timeout=30)
    assert archived.status_code in (401, 403) and "location" not in archived.headers
    anonymous = httpx.get(f"{base}/{entitled_layer}", timeout=30)
    assert anonymous.status_code == 401 and "location" not in anonymous.headers
    assert standin.redirects == before  # the registry was never even asked
    # HEAD is answered from upstream, without a redirect.
    head = httpx.head(f"{base}/{entitled_layer}", headers=basic(lic), timeout=30)
    assert head.status_code == 200 and "location" not in head.headers
    assert int(head.headers["content-length"]) == upstream["index"].images[0].layers[-1].size
    allowed = httpx.get(f"{base}/{entitled_layer}", headers=basic(lic), timeout=30)
    assert allowed.status_code == 307 and allowed.content == b""
    assert allowed.headers["location"] == standin.locations[-1]
    assert allowed.headers["docker-distribution-api-version"] == "registry/2.0"
    assert allowed.headers["cache-control"] == "no-store"


@pytest.mark.slow
def test_the_location_is_never_logged(server, upstream, tmp_path):
    pull(server, "on", tmp_path / "oci")  # also when the module's other tests did not run
    locations = upstream["standins"]["on"].locations
    assert locations
    web_log = server.log()
    assert "DEBUG" in web_log  # the log was as talkative as it gets
    rows = [r for case in HOSTS for r in server.call(
        "tests.support.proxy_server.pull_log", customer=f"Customer {case}")["rows"]]
    stored = json.dumps(rows)
    for location in locations:
        signature = location.rsplit("X-Amz-Signature=", 1)[1]
        assert signature not in web_log and signature not in stored
        assert location.split("?")[0] not in web_log


@pytest.mark.slow
def test_a_ranged_get_is_refused_redirected_or_followed_as_a_whole_get_is(server, upstream):
    standin = upstream["standins"]["on"]
    lic = server.data["licenses"]["Customer on"]
    base = f"{server.url}/v2/proxy/{SLUG}/{HOSTS['on'][0]}/{REPO}/blobs"
    ranged = {**basic(lic), "Range": "bytes=0-9"}
    before = standin.redirects
    refused = httpx.get(f"{base}/{upstream['other'].layers[0].digest}", headers=ranged, timeout=30)
    assert refused.status_code == 403 and "content-range" not in refused.headers
    assert standin.redirects == before
    layer = upstream["index"].images[0].layers[-1]
    allowed = httpx.get(f"{base}/{layer.digest}", headers=ranged, timeout=30)
    assert allowed.status_code == 307 and allowed.content == b""
    assert allowed.headers["location"] == standin.locations[-1]
    assert "content-range" not in allowed.headers
    # Asked upstream with the range (a registry that does not redirect answers it); the client
    # follows the Location with its own.
    asked = {k.lower(): v for k, v in standin.registry_requests[-1]["headers"].items()}
    assert asked["range"] == "bytes=0-9"
    # Option off: the portal follows to "S3", which ignores ranges: the whole blob, 200.
    off = server.data["licenses"]["Customer off"]
    whole = httpx.get(f"{server.url}/v2/proxy/{SLUG}/{HOSTS['off'][0]}/{REPO}/blobs/{layer.digest}",
                      headers={**basic(off), "Range": "bytes=0-9"}, timeout=30)
    assert whole.status_code == 200 and "content-range" not in whole.headers
    assert images.sha256(whole.content) == layer.digest
