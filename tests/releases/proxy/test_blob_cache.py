"""The proxy registry's pull-through blob cache, against the real server process (uvicorn) with
skopeo as the client.

Upstream is a loopback docker-registry behind a forwarder that records every request the portal
makes (``tests.support.faults.Proxy``), so "served without the upstream" is a count of upstream
blob GETs. The server's cache directory is the test's own (PORTAL_BLOB_CACHE_DIR).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.faults import Proxy
from tests.support.proxy_server import start_caching_proxy
from tests.support.registry import start_distribution
from tests.support.servers import poll, require_binary

pytestmark = pytest.mark.slow

USERS = {"vendor": "vendor-secret-pw"}
MB = 1 << 20


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("upstream"), users=USERS)
    built = {
        "app": images.build_index(layer_sizes=[300_000, 200_000], shared_size=100_000, seed=31),
        "other": images.build_single([60_000], seed=32),
        "crowd": images.build_index(layer_sizes=[400_000, 300_000], shared_size=100_000, seed=33),
        "corrupt": images.build_single([120_000, 80_000], seed=34),
        "cut": images.build_single([48 * MB], seed=35),
    }
    for repo, tag, image in (("app", "1.0", "app"), ("app", "2.0", "other"),
                             ("crowd", "1.0", "crowd"), ("corrupt", "1.0", "corrupt"),
                             ("cut", "1.0", "cut")):
        images.push(built[image], registry.url, repo, tag, auth=registry.auth)
    counter = Proxy(registry.url).start()  # every request of the portal to the upstream
    yield counter, built
    counter.stop()
    registry.stop()


def start(tmp_path_factory, upstream, *, cache_bytes: str | None = None):
    counter, _ = upstream
    host = counter.host
    return start_caching_proxy(
        tmp_path_factory.mktemp("proxy"), upstream_host=host, username="vendor",
        password=USERS["vendor"], cache_bytes=cache_bytes, apps=[
            {"slug": "cacheapp", "pin": True, "customers": [{"name": "Ann"}], "releases": [
                [f"{host}/app:1.0"], [f"{host}/crowd:1.0"], [f"{host}/corrupt:1.0"],
                [f"{host}/cut:1.0"]]},
            {"slug": "otherapp", "pin": True, "customers": [{"name": "Bob"}],
             "releases": [[f"{host}/app:2.0"]]},
        ])


@pytest.fixture(scope="module")
def server(tmp_path_factory, upstream):
    server = start(tmp_path_factory, upstream)
    yield server
    server.stop()


def lic(server, who: str) -> str:
    return server.data["licenses"][who]


def creds(server, who: str) -> str:
    return f"{lic(server, who)}:{lic(server, who)}"


def skopeo(*args: str) -> None:
    result = subprocess.run([require_binary("skopeo"), *args], capture_output=True, text=True,
                            timeout=180)
    if result.returncode:
        raise AssertionError(f"skopeo {args[0]} failed: {result.stderr[-2000:]}")


def pull(server, who: str, slug: str, name: str, target: Path) -> str:
    """``skopeo copy --all`` through the proxy; the top digest it wrote."""
    skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", creds(server, who),
           f"docker://{server.host}/proxy/{slug}/upstream/{name}", f"oci:{target}:1.0")
    return json.loads((target / "index.json").read_text())["manifests"][0]["digest"]


def upstream_blob_gets(upstream) -> collections.Counter:
    counter, _ = upstream
    with counter.lock:
        log = list(counter.log)
    return collections.Counter(path.rsplit("/", 1)[1] for method, path, _ in log
                               if method == "GET" and "/blobs/sha256:" in path)


def blob_url(server, slug: str, repo: str, digest: str) -> str:
    return f"{server.url}/v2/proxy/{slug}/upstream/{repo}/blobs/{digest}"


def entry(server, digest: str) -> Path:
    return server.cache_dir / "blobs" / digest.removeprefix("sha256:")



def test_a_second_pull_is_served_from_disk_without_asking_the_upstream(server, upstream,
                                                                         tmp_path):
    _, built = upstream
    index = built["app"]
    digests = {b.digest for b in index.blobs}
    before = upstream_blob_gets(upstream)
    assert pull(server, "Ann", "cacheapp", "app:1.0", tmp_path / "first") == index.digest
    after_first = upstream_blob_gets(upstream)
    assert {d: after_first[d] - before[d] for d in digests} == dict.fromkeys(digests, 1)
    assert pull(server, "Ann", "cacheapp", "app:1.0", tmp_path / "second") == index.digest
    assert upstream_blob_gets(upstream) == after_first  # not one blob GET more
    for blob in index.blobs:
        stored = tmp_path / "second" / "blobs" / "sha256" / blob.digest.removeprefix("sha256:")
        assert images.sha256(stored.read_bytes()) == blob.digest
    # HEAD of a cached blob: answered from the file's size, upstream not asked either.
    blob = index.blobs[0]
    head = httpx.head(blob_url(server, "cacheapp", "app", blob.digest),
                      auth=(lic(server, "Ann"),) * 2, timeout=30)
    assert head.status_code == 200 and head.headers["content-length"] == str(blob.size)
    assert head.headers["docker-content-digest"] == blob.digest
    assert upstream_blob_gets(upstream) == after_first

    def cached_rows(rows):
        return [r for r in rows if r["kind"] == "blob" and r["note"] == "from cache"]

    rows = poll(lambda: server.call("tests.support.proxy_server.pull_log", customer="Ann")["rows"],
                until=lambda rows: len(cached_rows(rows)) >= len(digests) + 1)
    sizes = {b.digest: b.size for b in index.blobs}
    gets = [r for r in cached_rows(rows) if r["method"] == "GET"]
    assert {r["reference"] for r in gets} == digests
    assert all(r["status"] == 200 and r["bytes"] == sizes[r["reference"]] for r in gets)


def test_a_license_that_may_not_have_a_cached_blob_gets_403(server, upstream):
    _, built = upstream
    blob = built["app"].blobs[0]
    ann, bob = (lic(server, "Ann"),) * 2, (lic(server, "Bob"),) * 2
    got = httpx.get(blob_url(server, "cacheapp", "app", blob.digest), auth=ann, timeout=30)
    assert got.status_code == 200 and entry(server, blob.digest).exists()
    before = upstream_blob_gets(upstream)
    # Bob's release is app:2.0 in the same repository: app:1.0's blobs are not his.
    for method in ("GET", "HEAD"):
        refused = httpx.request(method, blob_url(server, "otherapp", "app", blob.digest),
                                auth=bob, timeout=30)
        assert refused.status_code == 403
    refused = httpx.get(blob_url(server, "otherapp", "app", blob.digest), auth=bob, timeout=30)
    assert refused.json()["errors"][0]["code"] == "DENIED"
    assert "not part of a release on your channel" in refused.json()["errors"][0]["message"]
    assert upstream_blob_gets(upstream) == before


def test_a_cached_blob_corrupted_on_disk_is_detected_and_fetched_again(server, upstream,
                                                                       tmp_path):
    _, built = upstream
    image = built["corrupt"]
    assert pull(server, "Ann", "cacheapp", "corrupt:1.0", tmp_path / "first") == image.digest
    layer = image.layers[0]
    path = poll(lambda: entry(server, layer.digest), until=Path.exists)
    with open(path, "r+b") as f:  # same size, one byte flipped
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = upstream_blob_gets(upstream)
    assert pull(server, "Ann", "cacheapp", "corrupt:1.0", tmp_path / "second") == image.digest
    stored = tmp_path / "second" / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
    assert images.sha256(stored.read_bytes()) == layer.digest
    assert upstream_blob_gets(upstream)[layer.digest] == before[layer.digest] + 1
    refilled = poll(lambda: entry(server, layer.digest), until=Path.exists)
    assert "sha256:" + hashlib.sha256(refilled.read_bytes()).hexdigest() == layer.digest
    assert "a cached blob did not match its digest" in server.log()


def test_16_concurrent_pulls_cost_the_upstream_one_get_per_blob(server, upstream, tmp_path):
    _, built = upstream
    index = built["crowd"]
    # The test images' config blobs repeat across images: those may be cached already.
    cached = {b.digest for b in index.blobs if entry(server, b.digest).exists()}
    assert len(cached) < len(index.blobs)
    before = upstream_blob_gets(upstream)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        tops = list(pool.map(
            lambda i: pull(server, "Ann", "cacheapp", "crowd:1.0", tmp_path / f"oci-{i}"),
            range(16)))
    assert tops == [index.digest] * 16
    after = upstream_blob_gets(upstream)
    assert {b.digest: after[b.digest] - before[b.digest] for b in index.blobs} == \
        {b.digest: 0 if b.digest in cached else 1 for b in index.blobs}


def test_a_fill_the_client_cuts_short_leaves_no_file(server, upstream):
    _, built = upstream
    (layer,) = [b for b in built["cut"].layers]
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", blob_url(server, "cacheapp", "cut", layer.digest),
                           auth=(lic(server, "Ann"),) * 2) as response:
            assert response.status_code == 200
            next(response.iter_raw())  # the fill has begun; then the client hangs up
    tmp = server.cache_dir / "tmp"
    assert poll(lambda: list(tmp.iterdir()), until=lambda left: not left) == []
    assert not entry(server, layer.digest).exists()


def test_with_the_cache_off_nothing_is_written(tmp_path_factory, upstream, tmp_path):
    _, built = upstream
    index = built["app"]
    server = start(tmp_path_factory, upstream, cache_bytes="0")
    try:
        before = upstream_blob_gets(upstream)
        for n in range(2):
            assert pull(server, "Ann", "cacheapp", "app:1.0", tmp_path / f"oci-{n}") == index.digest
        after = upstream_blob_gets(upstream)
        assert {b.digest: after[b.digest] - before[b.digest] for b in index.blobs} == \
            {b.digest: 2 for b in index.blobs}
        assert not server.cache_dir.exists()
    finally:
        server.stop()
