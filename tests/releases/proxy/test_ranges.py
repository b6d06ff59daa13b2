"""Byte ranges of blob GETs through the proxy registry, asked with curl against the real server
process (uvicorn): from the portal's blob cache, and passed to the upstream on a miss or with the
cache off.

Upstream is a loopback docker-registry (it answers ranges itself) behind a forwarder that records
every request the portal makes and the status it got (``Recorder``): a 206 there is a range the
portal passed upstream.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from releases.proxy import ranges
from tests.support import images
from tests.support.faults import HOP, Proxy
from tests.support.proxy_server import start_caching_proxy
from tests.support.registry import start_distribution
from tests.support.servers import poll, require_binary

pytestmark = pytest.mark.slow

USERS = {"vendor": "vendor-secret-pw"}
MB = 1 << 20


@pytest.mark.parametrize("header, digest, expected", [
    ("bytes=0-99", "", ranges.Requested(first=0, last=99)),
    ("bytes=100-", "", ranges.Requested(first=100)),
    ("bytes=-500", "", ranges.Requested(suffix=500)),
    ("BYTES=7-7", "", ranges.Requested(first=7, last=7)),
    ("bytes=5-1", "", None),  # last before first: invalid, ignored
    ("bytes=0-1,5-9", "", None),  # several ranges: the whole blob
    ("items=0-9", "", None),
    ("bytes=abc-", "", None),
    ("bytes=-", "", None),
    ("bytes= 0-9", "", None),
    ("bytes=" + "1" * 200 + "-", "", None),  # longer than MAX_HEADER
])
def test_a_range_header_is_one_range_or_ignored(header, digest, expected):
    assert ranges.requested({"Range": header}, digest) == expected


def test_if_range_honours_only_the_blobs_own_digest():
    digest = "sha256:" + "a" * 64
    asked = {"Range": "bytes=0-9"}
    assert ranges.requested({**asked, "If-Range": f'"{digest}"'}, digest) == \
        ranges.Requested(first=0, last=9)
    assert ranges.requested({**asked, "If-Range": '"sha256:other"'}, digest) is None
    assert ranges.requested({**asked, "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, digest) is None


@pytest.mark.parametrize("requested, size, span", [
    (ranges.Requested(first=0, last=99), 1000, (0, 99)),
    (ranges.Requested(first=990, last=5000), 1000, (990, 999)),  # clamped to the end
    (ranges.Requested(first=999), 1000, (999, 999)),
    (ranges.Requested(first=1000), 1000, None),
    (ranges.Requested(suffix=10), 1000, (990, 999)),
    (ranges.Requested(suffix=5000), 1000, (0, 999)),  # longer than the blob: all of it
    (ranges.Requested(suffix=0), 1000, None),
    (ranges.Requested(first=0), 0, None),
])
def test_a_range_resolves_against_the_blobs_size(requested, size, span):
    assert requested.resolve(size) == span


@pytest.mark.parametrize("value, parsed", [
    ("bytes 0-99/1000", (0, 99, 1000)),
    ("bytes 0-99/*", (0, 99, None)),
    ("bytes 99-0/1000", None),
    ("bytes 0-1000/1000", None),  # past the end of the size it gives
    ("bytes 0-99/1000, bytes 200-299/1000", None),
    ("items 0-99/1000", None),
    ("", None),
])
def test_an_upstream_content_range_is_passed_on_only_when_well_formed(value, parsed):
    assert ranges.content_range(value) == parsed


def test_an_upstream_416_gives_the_size_only_in_its_own_form():
    assert ranges.unsatisfied_size("bytes */1234") == 1234
    assert ranges.unsatisfied_size("bytes 0-1/1234") is None
    assert ranges.unsatisfied_size("") is None


# --- against the server ---------------------------------------------------------------------


class Recorder(Proxy):
    """``Proxy``, but a ranged request's answer is passed on framed as it came: docker-registry's
    416 declares the whole blob's Content-Length and sends one line of text, and the portal has
    to cope with that registry as it is."""

    def forward(self, handler, body: bytes, *, truncate: bool = False) -> None:
        if "Range" not in handler.headers:
            return super().forward(handler, body)
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP]
        headers.append(("Host", self.host))
        with self.http.stream(handler.command, self.upstream + handler.path,
                              headers=headers) as response:
            got = bytearray()
            try:
                for chunk in response.iter_raw():
                    got += chunk
            except httpx.RemoteProtocolError:
                handler.close_connection = True  # short, as the registry sent it
            self.record(handler, response.status_code)
            handler.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length",
                                response.headers.get("content-length", str(len(got))))
            handler.end_headers()
            handler.wfile.write(bytes(got))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("upstream"), users=USERS)
    built = {
        "small": images.build_single([300_000, 200_000, 150_000, 120_000], seed=51),
        "big": images.build_single([25 * MB], seed=52),
    }
    for repo, image in (("small", "small"), ("big", "big")):
        images.push(built[image], registry.url, repo, "1.0", auth=registry.auth)
    counter = Recorder(registry.url).start()
    yield counter, built
    counter.stop()
    registry.stop()


def start(tmp_path_factory, upstream, *, cache_bytes: str | None = None):
    counter, _ = upstream
    host = counter.host
    return start_caching_proxy(
        tmp_path_factory.mktemp("proxy"), upstream_host=host, username="vendor",
        password=USERS["vendor"], cache_bytes=cache_bytes, apps=[
            {"slug": "rangeapp", "pin": True, "customers": [{"name": "Ann"}],
             "releases": [[f"{host}/small:1.0"], [f"{host}/big:1.0"]]},
            {"slug": "otherapp", "pin": True, "customers": [{"name": "Bob"}],
             "releases": [[f"{host}/big:1.0"]]},
        ])


@pytest.fixture(scope="module")
def cached_server(tmp_path_factory, upstream):
    server = start(tmp_path_factory, upstream)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def uncached_server(tmp_path_factory, upstream):
    server = start(tmp_path_factory, upstream, cache_bytes="0")
    yield server
    server.stop()


class Answer:
    def __init__(self, status: int, head: str, body: bytes):
        self.status, self.body, self.head = status, body, head
        # The last header block: curl writes one per response it read.
        lines = head.replace("\r\n", "\n").strip().split("\n\n")[-1].split("\n")[1:]
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self):
        return json.loads(self.body)


def curl(server, who: str, repo: str, digest: str, *args: str, slug: str = "rangeapp",
         tmp_path: Path) -> Answer:
    """One request with curl (the license as user name and password, given on stdin, not in
    the process list); ``args``: curl's own options (``-r``, ``-H``, ``--head``)."""
    license_id = server.data["licenses"].get(who, who)
    tmp_path.mkdir(parents=True, exist_ok=True)
    head, body = tmp_path / "head.txt", tmp_path / "body.bin"
    head.unlink(missing_ok=True)
    body.unlink(missing_ok=True)
    result = subprocess.run(
        [require_binary("curl"), "--silent", "--show-error", "--config", "-",
         "--dump-header", str(head), "--output", str(body), "--write-out", "%{http_code}",
         *args, f"{server.url}/v2/proxy/{slug}/upstream/{repo}/blobs/{digest}"],
        input=f'user = "{license_id}:{license_id}"\n', capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stderr
    return Answer(int(result.stdout), head.read_bytes().decode("latin-1"),
                  body.read_bytes() if body.exists() else b"")


def data(blob: images.Blob) -> bytes:
    return blob.data if blob.data is not None else blob.path.read_bytes()


def upstream_statuses(upstream, digest: str) -> list:
    counter, _ = upstream
    with counter.lock:
        return [status for method, path, status in counter.log
                if method == "GET" and path.endswith(f"/blobs/{digest}")]


def entry(server, digest: str) -> Path:
    return server.cache_dir / "blobs" / digest.removeprefix("sha256:")


def blob_rows(server, who: str, digest: str, count: int) -> list[dict]:
    def rows():
        return [r for r in server.call("tests.support.proxy_server.pull_log", customer=who)["rows"]
                if r["kind"] == "blob" and r["reference"] == digest]
    return poll(rows, until=lambda found: len(found) >= count)


def assert_sent_as(answer: Answer, status: int, body: bytes, size: int, first: int = 0):
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.body == body
    assert answer.headers["content-length"] == str(len(body))  # not chunked framing
    assert "transfer-encoding" not in answer.headers
    if status == 206:
        assert answer.headers["content-range"] == f"bytes {first}-{first + len(body) - 1}/{size}"
        assert answer.headers["accept-ranges"] == "bytes"
    else:
        assert "content-range" not in answer.headers


@pytest.fixture(scope="module")
def cached_layer(cached_server, upstream, tmp_path_factory):
    """A layer in the cache server's cache, filled by a whole GET."""
    _, built = upstream
    layer = built["small"].layers[0]
    whole = curl(cached_server, "Ann", "small", layer.digest,
                 tmp_path=tmp_path_factory.mktemp("fill"))
    assert whole.status == 200 and whole.body == data(layer)
    poll(lambda: entry(cached_server, layer.digest), until=Path.exists)
    assert entry(cached_server, layer.digest).exists()
    return layer


@pytest.mark.parametrize("args, first, last", [
    (("-r", "100-199"), 100, 199),
    (("-H", "Range: bytes=1000-"), 1000, None),
    (("-H", "Range: bytes=-500"), -500, None),
    (("-H", "Range: bytes=299990-999999999"), 299990, None),  # past the end: clamped
])
def test_a_cached_blob_answers_one_range_with_206_and_those_bytes(cached_server, upstream,
                                                                  cached_layer, args, first,
                                                                  last, tmp_path):
    layer = cached_layer
    before = upstream_statuses(upstream, layer.digest)
    answer = curl(cached_server, "Ann", "small", layer.digest, *args, tmp_path=tmp_path)
    whole = data(layer)
    part = whole[first:] if last is None else whole[first:last + 1]
    assert_sent_as(answer, 206, part, layer.size, first % layer.size)
    assert answer.headers["docker-content-digest"] == layer.digest
    assert upstream_statuses(upstream, layer.digest) == before  # from the cache


def test_an_unsatisfiable_range_of_a_cached_blob_is_416_with_the_size(cached_server, upstream,
                                                                      cached_layer, tmp_path):
    layer = cached_layer
    answer = curl(cached_server, "Ann", "small", layer.digest, "-r", f"{layer.size}-",
                  tmp_path=tmp_path)
    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{layer.size}"
    (error,) = answer.json()["errors"]
    assert error["code"] == "RANGE_INVALID"
    assert f"starts past the end of the blob ({layer.size} bytes)" in error["message"]


@pytest.mark.parametrize("header", [
    "Range: bytes=5-1", "Range: bytes=0-1,5-9", "Range: items=0-9", "Range: bytes=zero-",
    "Range: bytes=" + "1" * 300 + "-",
])
def test_a_malformed_or_multiple_range_gets_the_whole_cached_blob(cached_server, cached_layer,
                                                                  header, tmp_path):
    answer = curl(cached_server, "Ann", "small", cached_layer.digest, "-H", header,
                  tmp_path=tmp_path)
    assert_sent_as(answer, 200, data(cached_layer), cached_layer.size)


def test_if_range_with_another_validator_gets_the_whole_cached_blob(cached_server, cached_layer,
                                                                    tmp_path):
    layer = cached_layer
    other = curl(cached_server, "Ann", "small", layer.digest, "-r", "0-9",
                 "-H", 'If-Range: "sha256:something-else"', tmp_path=tmp_path)
    assert_sent_as(other, 200, data(layer), layer.size)
    same = curl(cached_server, "Ann", "small", layer.digest, "-r", "0-9",
                "-H", f"If-Range: {other.headers['etag']}", tmp_path=tmp_path)
    assert_sent_as(same, 206, data(layer)[:10], layer.size)


def test_head_ignores_range(cached_server, uncached_server, upstream, cached_layer, tmp_path):
    _, built = upstream
    for server, layer in ((cached_server, cached_layer),
                          (uncached_server, built["small"].layers[1])):
        answer = curl(server, "Ann", "small", layer.digest, "--head", "-r", "0-9",
                      tmp_path=tmp_path)
        # With --head, curl writes the head to its output too: nothing else arrived.
        assert answer.status == 200 and answer.body.decode("latin-1") == answer.head
        assert answer.headers["content-length"] == str(layer.size)
        assert answer.headers["accept-ranges"] == "bytes"
        assert "content-range" not in answer.headers


@pytest.mark.parametrize("who, status", [("Bob", 403), ("not-a-license", 401)])
def test_a_license_without_the_right_is_refused_before_any_range(cached_server, upstream,
                                                                 cached_layer, who, status,
                                                                 tmp_path):
    # Bob's channel has the big image only: the cached small layer is not his.
    before = upstream_statuses(upstream, cached_layer.digest)
    for asked in ("0-9", f"{cached_layer.size}-"):  # satisfiable or not: the refusal comes first
        answer = curl(cached_server, who, "small", cached_layer.digest, "-r", asked,
                      slug="otherapp" if who == "Bob" else "rangeapp", tmp_path=tmp_path)
        assert answer.status == status
        assert "content-range" not in answer.headers
        assert answer.json()["errors"][0]["code"] == ("DENIED" if status == 403
                                                      else "UNAUTHORIZED")
    assert upstream_statuses(upstream, cached_layer.digest) == before


def test_a_range_of_a_blob_not_cached_is_asked_upstream_and_never_fills_the_cache(
        cached_server, upstream, tmp_path):
    _, built = upstream
    layer = built["small"].layers[2]
    assert not entry(cached_server, layer.digest).exists()
    answer = curl(cached_server, "Ann", "small", layer.digest, "-r", "1000-5999",
                  tmp_path=tmp_path)
    assert_sent_as(answer, 206, data(layer)[1000:6000], layer.size, 1000)
    assert upstream_statuses(upstream, layer.digest) == [206]
    assert list((cached_server.cache_dir / "tmp").iterdir()) == []
    assert not entry(cached_server, layer.digest).exists()
    # The whole blob then fills it, and the next range is read from the file.
    whole = curl(cached_server, "Ann", "small", layer.digest, tmp_path=tmp_path)
    assert_sent_as(whole, 200, data(layer), layer.size)
    poll(lambda: entry(cached_server, layer.digest), until=Path.exists)
    again = curl(cached_server, "Ann", "small", layer.digest, "-r", "0-0", tmp_path=tmp_path)
    assert_sent_as(again, 206, data(layer)[:1], layer.size)
    assert upstream_statuses(upstream, layer.digest) == [206, 200]


@pytest.mark.parametrize("args, first, last", [
    (("-r", "100-199"), 100, 199),
    (("-H", "Range: bytes=1000-"), 1000, None),
    (("-H", "Range: bytes=-500"), -500, None),
])
def test_with_the_cache_off_a_range_is_passed_upstream(uncached_server, upstream, args, first,
                                                       last, tmp_path):
    _, built = upstream
    layer = built["small"].layers[3]
    before = upstream_statuses(upstream, layer.digest)
    answer = curl(uncached_server, "Ann", "small", layer.digest, *args, tmp_path=tmp_path)
    whole = data(layer)
    part = whole[first:] if last is None else whole[first:last + 1]
    assert_sent_as(answer, 206, part, layer.size, first % layer.size)
    assert upstream_statuses(upstream, layer.digest) == [*before, 206]


def test_with_the_cache_off_an_unsatisfiable_range_is_416_and_a_bad_one_ignored(
        uncached_server, upstream, tmp_path):
    _, built = upstream
    layer = built["small"].layers[3]
    answer = curl(uncached_server, "Ann", "small", layer.digest, "-r", f"{layer.size + 10}-",
                  tmp_path=tmp_path)
    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{layer.size}"
    (error,) = answer.json()["errors"]
    assert error["code"] == "RANGE_INVALID" and "starts past the end" in error["message"]
    ignored = curl(uncached_server, "Ann", "small", layer.digest, "-H", "Range: bytes=0-1,5-9",
                   tmp_path=tmp_path)
    assert_sent_as(ignored, 200, data(layer), layer.size)


def test_the_pull_log_records_206_with_the_bytes_sent(cached_server, uncached_server, upstream,
                                                      tmp_path):
    _, built = upstream
    layer = built["small"].config  # never asked by another test
    for server in (uncached_server, cached_server):
        for args in ((), ("-r", "10-19"), ("-r", f"{layer.size}-")):
            curl(server, "Ann", "small", layer.digest, *args, tmp_path=tmp_path)
            if server is cached_server:  # the ranges after the first GET are read from the file
                poll(lambda s=server: entry(s, layer.digest), until=Path.exists)
    for server, note in ((uncached_server, ""), (cached_server, "from cache")):
        rows = blob_rows(server, "Ann", layer.digest, 3)
        assert [(r["status"], r["bytes"]) for r in rows] == [
            (200, layer.size), (206, 10), (416, 0)]
        assert [r["note"] for r in rows[1:]] == [note, note]


@pytest.mark.parametrize("where", ["upstream", "cache"])
def test_a_download_cut_short_resumes_with_an_open_range(cached_server, upstream, where,
                                                         tmp_path):
    _, built = upstream
    (layer,) = built["big"].layers
    if where == "cache":
        curl(cached_server, "Ann", "big", layer.digest, tmp_path=tmp_path)
        poll(lambda: entry(cached_server, layer.digest), until=Path.exists, seconds=60)
        assert entry(cached_server, layer.digest).exists()
    else:
        assert not entry(cached_server, layer.digest).exists()
    cut = 11 * MB + 12345
    first = curl(cached_server, "Ann", "big", layer.digest, "-r", f"0-{cut - 1}",
                 tmp_path=tmp_path / "first")
    rest = curl(cached_server, "Ann", "big", layer.digest, "-H", f"Range: bytes={cut}-",
                tmp_path=tmp_path / "rest")
    assert (first.status, rest.status) == (206, 206)
    assert rest.headers["content-range"] == f"bytes {cut}-{layer.size - 1}/{layer.size}"
    assert "sha256:" + hashlib.sha256(first.body + rest.body).hexdigest() == layer.digest
    if where == "upstream":
        assert upstream_statuses(upstream, layer.digest)[-2:] == [206, 206]
        assert not entry(cached_server, layer.digest).exists()
