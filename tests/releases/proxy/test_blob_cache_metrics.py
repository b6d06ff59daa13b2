"""The blob cache's metrics on /metrics: lookups by result, fills by outcome, removals by reason,
and the cache's size and entries read when scraped.

Fills and removals are driven through ``BlobCache`` on a temporary directory and read from this
process's /metrics (Django's test client); lookups, which the proxy view counts, through the real
server process with skopeo and httpx as clients, its /metrics read with the token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from releases.proxy import blob_cache
from releases.proxy.blob_cache import BlobCache, Fill
from tests.releases.proxy.test_blob_cache_module import digest_of, fill, pieces
from tests.support import images
from tests.support.proxy_server import start_caching_proxy
from tests.support.registry import start_distribution
from tests.support.servers import poll, require_binary

TOKEN = "blob-cache-metrics-token-0123456789"
USERS = {"vendor": "vendor-secret-pw"}
CUSTOMER = "Zanzibar Cache Customer"
TAG = "v9.4.2-cachemetric"  # distinctive: a label holding it would show in the exposition
FILLS = "portal_proxy_blob_cache_fills_total"
REMOVED = "portal_proxy_blob_cache_removed_total"
LOOKUPS = "portal_proxy_blob_cache_lookups_total"
SIZE, ENTRIES = "portal_proxy_blob_cache_bytes", "portal_proxy_blob_cache_entries"


def parse(text: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def scrape(client, settings, db):
    """This process's /metrics, read with the token: {(sample, labels): value}."""
    settings.PORTAL_METRICS_TOKEN = TOKEN

    def read() -> dict[tuple, float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        return parse(response.content.decode())

    return read


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, path, mode):
        self.file = open(path, mode)

    def write(self, chunk):
        raise OSError(28, "No space left on device")

    def close(self):
        self.file.close()


def test_fills_are_counted_by_how_they_ended(tmp_path, scrape, monkeypatch):
    before = scrape()

    def fills(outcome):
        return value(scrape(), FILLS, outcome=outcome) - value(before, FILLS, outcome=outcome)

    async def claim(cache, data) -> Fill:
        claimed = await cache.claim(digest_of(data))
        assert isinstance(claimed, Fill)
        return claimed

    async def run():
        data = os.urandom(5000)
        await fill(BlobCache(tmp_path / "landed", 1 << 20), data)
        assert fills("landed") == 1

        cut = await claim(BlobCache(tmp_path / "cut", 1 << 20), data)
        stream = cut.tee(pieces(data), str(len(data)))
        await stream.__anext__()
        await stream.aclose()  # the client went away; the writer thread settles the fill
        assert await asyncio.to_thread(poll, lambda: fills("cut"), until=lambda n: n == 1) == 1

        wrong = await claim(BlobCache(tmp_path / "mismatch", 1 << 20), data)
        async for _ in wrong.tee(pieces(data[:-1] + b"x"), str(len(data))):
            pass
        assert fills("mismatch") == 1

        short = await claim(BlobCache(tmp_path / "short", 1 << 20), data)
        async for _ in short.tee(pieces(data), str(len(data) + 1)):  # the length did not check
            pass
        assert fills("mismatch") == 2

        too_big = await claim(BlobCache(tmp_path / "too-big", 1000), data)
        async for _ in too_big.tee(pieces(data), str(len(data))):  # never started writing
            pass

        monkeypatch.setattr(blob_cache, "open", FullDisk, raising=False)
        full = await claim(BlobCache(tmp_path / "full", 1 << 20), data)
        async for _ in full.tee(pieces(data), str(len(data))):
            pass
        assert fills("disk_error") == 1

    asyncio.run(asyncio.wait_for(run(), 20))
    after = scrape()
    assert {outcome: value(after, FILLS, outcome=outcome) - value(before, FILLS, outcome=outcome)
            for outcome in ("landed", "cut", "mismatch", "disk_error")} == \
        {"landed": 1, "cut": 1, "mismatch": 2, "disk_error": 1}


def test_evicted_and_corrupt_entries_are_counted_as_removed(tmp_path, scrape):
    before = scrape()

    def removed(reason):
        return value(scrape(), REMOVED, reason=reason) - value(before, REMOVED, reason=reason)

    cache = BlobCache(tmp_path / "cache", 2500)
    blobs = [os.urandom(1000) for _ in range(3)]

    async def run():
        for data in blobs:  # the third fill evicts the first
            await fill(cache, data)
        assert cache.evict() <= 2500
        assert removed("evicted") == 1
        assert removed("corrupt") == 0

        path = cache.directory / "blobs" / digest_of(blobs[2]).removeprefix("sha256:")
        with open(path, "r+b") as f:  # one byte changed: the next hit's check removes it
            f.seek(10)
            f.write(bytes([blobs[2][10] ^ 1]))
        fresh = BlobCache(cache.directory, 2500)  # another process: it has not hashed this file
        refill = await fresh.claim(digest_of(blobs[2]))
        assert isinstance(refill, Fill) and not path.exists()
        refill.release()
        assert removed("corrupt") == 1
        assert removed("evicted") == 1

    asyncio.run(asyncio.wait_for(run(), 20))


def test_the_cache_size_and_entries_are_read_when_scraped(tmp_path, scrape, settings,
                                                           monkeypatch):
    directory = tmp_path / "cache"
    settings.PORTAL_BLOB_CACHE_DIR = directory
    settings.PORTAL_BLOB_CACHE_BYTES = 1 << 20
    samples = scrape()
    assert (SIZE, ()) not in samples and (ENTRIES, ()) not in samples  # no directory yet

    cache = BlobCache(directory, 1 << 20)
    blobs = [os.urandom(3000), os.urandom(7000)]

    async def run():
        for data in blobs:
            await fill(cache, data)

    asyncio.run(asyncio.wait_for(run(), 20))
    (directory / "tmp" / ("0" * 64)).write_bytes(b"a fill in progress is not an entry")
    samples = scrape()
    assert value(samples, SIZE) == 10_000
    assert value(samples, ENTRIES) == 2

    monkeypatch.setattr(blob_cache, "USAGE_SCAN_ENTRIES", 1)  # a scrape reads so many, no more
    samples = scrape()
    assert value(samples, ENTRIES) == 1 and value(samples, SIZE) in (3000, 7000)

    settings.PORTAL_BLOB_CACHE_BYTES = 0  # off: whatever is on disk is not the cache's
    samples = scrape()
    assert (SIZE, ()) not in samples and (ENTRIES, ()) not in samples


# --- the server process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("upstream"), users=USERS)
    image = images.build_single([60_000, 40_000], seed=41)
    images.push(image, registry.url, "app", TAG, auth=registry.auth)
    yield registry, image
    registry.stop()


def start(tmp_path_factory, upstream, *, cache_bytes: str | None = None,
          extra: dict[str, str] | None = None):
    registry, _ = upstream
    directory = tmp_path_factory.mktemp("proxy")
    (directory / "metrics").mkdir()
    return start_caching_proxy(
        directory, upstream_host=registry.host, username="vendor",
        password=USERS["vendor"], cache_bytes=cache_bytes,
        extra={"PORTAL_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics"),
               **(extra or {})},
        apps=[{"slug": "cacheapp", "pin": True, "customers": [{"name": CUSTOMER}],
               "releases": [[f"{registry.host}/app:{TAG}"]]}])


def pull(server, target: Path) -> str:
    license_id = server.data["licenses"][CUSTOMER]
    result = subprocess.run(
        [require_binary("skopeo"), "copy", "--src-tls-verify=false", "--src-creds",
         f"{license_id}:{license_id}", f"docker://{server.host}/proxy/cacheapp/upstream/app:{TAG}",
         f"oci:{target}:{TAG}"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((target / "index.json").read_text())["manifests"][0]["digest"]


def server_scrape(server) -> tuple[str, dict[tuple, float]]:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.text, parse(response.text)


@pytest.mark.slow
def test_a_pull_misses_and_fills_then_a_repeat_pull_hits(tmp_path_factory, upstream, tmp_path):
    _, image = upstream
    blobs = [*image.blobs]
    server = start(tmp_path_factory, upstream)
    try:
        assert pull(server, tmp_path / "first") == image.digest
        _, samples = server_scrape(server)
        assert value(samples, LOOKUPS, app="cacheapp", result="miss") == len(blobs)
        assert value(samples, LOOKUPS, app="cacheapp", result="hit") == 0
        assert value(samples, FILLS, outcome="landed") == len(blobs)

        assert pull(server, tmp_path / "second") == image.digest
        license_id = server.data["licenses"][CUSTOMER]
        url = f"{server.url}/v2/proxy/cacheapp/upstream/app/blobs/{blobs[0].digest}"
        assert httpx.head(url, auth=(license_id, license_id), timeout=30).status_code == 200
        text, samples = server_scrape(server)
        assert value(samples, LOOKUPS, app="cacheapp", result="miss") == len(blobs)
        assert value(samples, LOOKUPS, app="cacheapp", result="hit") == len(blobs) + 1
        assert value(samples, FILLS, outcome="landed") == len(blobs)
        for outcome in ("cut", "mismatch", "disk_error"):
            assert value(samples, FILLS, outcome=outcome) == 0

        on_disk = list((server.cache_dir / "blobs").iterdir())
        assert value(samples, ENTRIES) == len(on_disk) == len(blobs)
        assert value(samples, SIZE) == sum(p.stat().st_size for p in on_disk) == \
            sum(b.size for b in blobs)
        # No label names a customer, a license, a digest or a tag.
        for secret in (license_id, CUSTOMER, TAG, *(b.digest.removeprefix("sha256:") for b in blobs)):
            assert secret not in text
    finally:
        server.stop()


@pytest.mark.slow
def test_with_the_cache_off_no_cache_metric_is_recorded(tmp_path_factory, upstream, tmp_path):
    _, image = upstream
    server = start(tmp_path_factory, upstream, cache_bytes="0")
    try:
        assert pull(server, tmp_path / "oci") == image.digest
        text, samples = server_scrape(server)
        assert value(samples, "portal_proxy_pulls_total", app="cacheapp", kind="blob",
                     status="200") == len(image.blobs)
        assert not [key for key in samples if key[0].startswith("portal_proxy_blob_cache")], text
    finally:
        server.stop()


@pytest.mark.slow
def test_a_hit_the_front_server_sends_is_counted_as_a_hit(tmp_path_factory, upstream):
    _, image = upstream
    layer = image.layers[0]
    server = start(tmp_path_factory, upstream, extra={"PORTAL_BLOB_CACHE_X_ACCEL": "true"})
    try:
        license_id = server.data["licenses"][CUSTOMER]
        url = f"{server.url}/v2/proxy/cacheapp/upstream/app/blobs/{layer.digest}"
        first = httpx.get(url, auth=(license_id, license_id), timeout=30)
        assert first.status_code == 200 and len(first.content) == layer.size  # the miss streams
        second = httpx.get(url, auth=(license_id, license_id), timeout=30)
        assert second.headers["X-Accel-Redirect"] == f"/blobs/{layer.digest.removeprefix('sha256:')}"
        _, samples = server_scrape(server)
        assert value(samples, LOOKUPS, app="cacheapp", result="miss") == 1
        assert value(samples, LOOKUPS, app="cacheapp", result="hit") == 1
    finally:
        server.stop()
