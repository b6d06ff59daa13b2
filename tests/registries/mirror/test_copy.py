"""The copy engine against real loopback distribution registries."""

import hashlib
import json
import subprocess
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from registries.errors import RegistryError
from registries.mirror import copy
from tests.support.faults import FaultProxy, Proxy, RedirectingRegistry
from tests.support.images import (
    DOCKER_MANIFEST,
    build_index,
    build_single,
    push,
    push_blob,
    schema1_manifest,
)
from tests.support.registry import make_client

KB, MB = 1 << 10, 1 << 20


@pytest.fixture(autouse=True)
def _private_registries(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True


@pytest.fixture
def index(source_registry):
    image = build_index(layer_sizes=[600 * KB, 300 * KB], shared_size=400 * KB)
    push(image, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    return image


def client_for(registry, host=None, auth=None):
    user, password = auth or registry.auth
    return make_client(host or registry.host, user, password)


def skopeo_raw(registry, ref: str) -> bytes:
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
         f"{registry.username}:{registry.password}", f"docker://{registry.host}/{ref}"],
        capture_output=True, check=True)
    return out.stdout


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_it_copies_every_platform_of_an_index_with_identical_digests(
        index, source_registry, target_registry):
    reports = []
    result = copy.copy(client_for(source_registry), "library/app", "1.0",
                           client_for(target_registry), "demo-apps/app", "1.0",
                           progress=lambda p: reports.append((p.blobs_done, p.bytes_done)))

    assert result.digest == index.digest and not result.skipped
    assert result.platforms == ["linux/amd64", "linux/arm64/v8"]
    # one shared layer + 2 own layers + 1 config per platform, the shared layer copied once
    assert len(result.blobs) == 7 == len(index.blobs)
    assert {b.action for b in result.blobs} == {"copied"}
    assert reports[-1] == (7, sum(b.size for b in index.blobs))

    top = skopeo_raw(target_registry, "demo-apps/app:1.0")
    assert top == index.content and digest_of(top) == index.digest
    for image in index.images:
        child = skopeo_raw(target_registry, f"demo-apps/app@{image.digest}")
        assert digest_of(child) == image.digest
        for desc in json.loads(child)["layers"] + [json.loads(child)["config"]]:
            blob = httpx.get(f"{target_registry.url}/v2/demo-apps/app/blobs/{desc['digest']}",
                             auth=target_registry.auth, follow_redirects=True)
            assert digest_of(blob.content) == desc["digest"]


def test_a_repeat_copy_skips_when_the_tag_has_the_digest(index, source_registry, target_registry):
    args = (client_for(source_registry), "library/app", "1.0", client_for(target_registry),
            "demo-apps/app", "1.0")
    copy.copy(*args)
    again = copy.copy(*args)
    assert again.skipped and again.blobs == [] and again.digest == index.digest


def test_a_copy_into_another_repository_of_the_same_registry_mounts(index, source_registry):
    stored = source_registry.storage_bytes()
    client = client_for(source_registry)
    result = copy.copy(client, "library/app", "1.0", client, "demo-apps/app", "latest")
    assert {b.action for b in result.blobs} == {"mounted"}
    assert result.bytes_copied == 0
    assert source_registry.storage_bytes() == stored  # no layer bytes moved or stored twice
    assert digest_of(skopeo_raw(source_registry, "demo-apps/app:latest")) == index.digest


def test_a_second_copy_after_a_partial_one_skips_blobs_already_there(
        source_registry, target_registry):
    image = build_single([200 * KB, 100 * KB], oci=False, seed=7)
    push(image, source_registry.url, "library/single", "v1", auth=source_registry.auth)
    first_layer = image.layers[0]
    with httpx.Client(base_url=target_registry.url, auth=target_registry.auth) as http:
        push_blob(http, "demo-apps/single", first_layer)
    result = copy.copy(client_for(source_registry), "library/single", "v1",
                           client_for(target_registry), "demo-apps/single", "v1")
    actions = {b.digest: b.action for b in result.blobs}
    assert actions[first_layer.digest] == "present"
    assert sorted(actions.values()) == ["copied", "copied", "present"]
    assert result.media_type == DOCKER_MANIFEST
    assert digest_of(skopeo_raw(target_registry, "demo-apps/single:v1")) == image.digest


def blob_heads(proxy) -> list[str]:
    return [path for method, path, _ in proxy.log if method == "HEAD" and "/blobs/" in path]


def test_a_first_copy_into_a_repository_without_tags_sends_blobs_without_asking_first(
        index, source_registry, target_registry):
    with Proxy(target_registry.url) as dst:
        result = copy.copy(client_for(source_registry), "library/app", "1.0",
                           client_for(target_registry, host=dst.host), "demo-apps/app", "1.0",
                           fresh_start=True)
    assert blob_heads(dst) == []
    assert {b.action for b in result.blobs} == {"copied"} and len(result.blobs) == 7
    assert digest_of(skopeo_raw(target_registry, "demo-apps/app:1.0")) == index.digest


def test_a_fresh_start_into_a_repository_with_images_still_skips_blobs_it_has(
        index, source_registry, target_registry):
    source, target = client_for(source_registry), client_for(target_registry)
    copy.copy(source, "library/app", "1.0", target, "demo-apps/app", "1.0")
    with Proxy(target_registry.url) as dst:
        result = copy.copy(source, "library/app", "1.0", client_for(target_registry, host=dst.host),
                           "demo-apps/app", "2.0", fresh_start=True)
    assert len(blob_heads(dst)) == 7
    assert {b.action for b in result.blobs} == {"present"} and result.bytes_copied == 0


def test_without_fresh_start_every_blob_is_checked_first(index, source_registry, target_registry):
    with Proxy(target_registry.url) as dst:
        copy.copy(client_for(source_registry), "library/app", "1.0",
                  client_for(target_registry, host=dst.host), "demo-apps/app", "1.0")
    assert len(blob_heads(dst)) == 7


class RefusesReuploads(Proxy):
    """A registry that refuses the upload of a blob it already has, instead of storing it again."""

    def __init__(self, upstream: str, auth: tuple[str, str]):
        super().__init__(upstream)
        self.auth = auth
        self.refused: list[str] = []

    def intercept(self, handler, body: bytes) -> bool:
        parts = urlsplit(handler.path)
        digest = parse_qs(parts.query).get("digest", [""])[0]
        if handler.command != "PUT" or not digest:
            return False
        repository = parts.path[len("/v2/"):].split("/blobs/uploads/")[0]
        known = self.http.head(f"{self.upstream}/v2/{repository}/blobs/{digest}", auth=self.auth)
        if known.status_code != 200:
            return False
        self.refused.append(digest)
        payload = b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob exists"}]}'
        handler.send_response(400)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        return True


def test_a_blob_refused_because_the_target_has_it_counts_as_present(
        source_registry, target_registry):
    # An earlier attempt left a blob in a repository that has no tags yet.
    image = build_single([200 * KB, 100 * KB], oci=False, seed=7)
    push(image, source_registry.url, "library/single", "v1", auth=source_registry.auth)
    left = image.layers[0]
    with httpx.Client(base_url=target_registry.url, auth=target_registry.auth) as http:
        push_blob(http, "demo-apps/single", left)
    with RefusesReuploads(target_registry.url, target_registry.auth) as dst:
        result = copy.copy(client_for(source_registry), "library/single", "v1",
                           client_for(target_registry, host=dst.host), "demo-apps/single", "v1",
                           fresh_start=True)
    assert dst.refused == [left.digest]
    actions = {b.digest: b.action for b in result.blobs}
    assert actions[left.digest] == "present"
    assert sorted(actions.values()) == ["copied", "copied", "present"]
    assert digest_of(skopeo_raw(target_registry, "demo-apps/single:v1")) == image.digest


def test_large_blobs_go_up_in_chunks_and_stay_identical(monkeypatch, source_registry,
                                                        target_registry):
    monkeypatch.setattr(copy, "MONOLITHIC_MAX", 256 * KB)
    monkeypatch.setattr(copy, "PATCH_CHUNK", 300 * KB)
    image = build_single([1 * MB + 12345], seed=3)
    push(image, source_registry.url, "library/big", "v1", auth=source_registry.auth)
    result = copy.copy(client_for(source_registry), "library/big", "v1",
                           client_for(target_registry), "demo-apps/big", "v1")
    assert result.bytes_copied == sum(b.size for b in image.blobs)
    assert digest_of(skopeo_raw(target_registry, "demo-apps/big:v1")) == image.digest


def test_wrong_target_credentials_fail_at_once_with_a_permanent_error(
        index, source_registry, target_registry):
    with pytest.raises(RegistryError) as exc:
        copy.copy(client_for(source_registry), "library/app", "1.0",
                      client_for(target_registry, auth=("pusher", "wrong")), "demo-apps/app",
                      "1.0", backoff=5)
    assert exc.value.permanent and exc.value.code == "unauthorized"
    assert "wrong" not in exc.value.message
    assert "credentials" in exc.value.message


def test_a_missing_source_tag_fails_at_once(index, source_registry, target_registry):
    with pytest.raises(RegistryError) as exc:
        copy.copy(client_for(source_registry), "library/app", "9.9",
                      client_for(target_registry), "demo-apps/app", "9.9", backoff=5)
    assert exc.value.permanent and exc.value.code == "image_not_found"
    assert "library/app:9.9" in exc.value.message


class Schema1Source(Proxy):
    """A registry that still serves a Docker schema 1 manifest."""

    def intercept(self, handler, body):
        if "/manifests/" not in handler.path:
            return False
        media_type, content = schema1_manifest()
        handler.send_response(200)
        handler.send_header("Content-Type", media_type)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(content)
        return True


def test_schema1_images_get_a_clear_error(source_registry, target_registry):
    with Schema1Source(source_registry.url) as proxy, pytest.raises(RegistryError) as exc:
        copy.copy(client_for(source_registry, host=proxy.host), "old/app", "v1",
                      client_for(target_registry), "old/app", "v1")
    assert exc.value.code == "schema1" and "schema 1" in exc.value.message
    assert exc.value.permanent


def test_a_platform_filter_copies_only_that_platform(index, source_registry, target_registry):
    result = copy.copy(client_for(source_registry), "library/app", "1.0",
                           client_for(target_registry), "demo-apps/app", "amd64",
                           platforms=["linux/amd64"])
    assert result.platforms == ["linux/amd64"] and result.digest != index.digest
    assert len(result.blobs) == 4
    raw = json.loads(skopeo_raw(target_registry, "demo-apps/app:amd64"))
    assert [m["digest"] for m in raw["manifests"]] == [index.images[0].digest]


def test_blob_redirects_are_followed_without_the_authorization_header(
        index, source_registry, target_registry):
    with RedirectingRegistry(source_registry.url, source_registry.auth) as proxy:
        result = copy.copy(client_for(source_registry, host=proxy.host), "library/app",
                               "1.0", client_for(target_registry), "demo-apps/app", "1.0")
    assert proxy.redirects == 7 and proxy.storage.served == 7
    assert proxy.storage.authorization_seen == []
    assert digest_of(skopeo_raw(target_registry, "demo-apps/app:1.0")) == index.digest == result.digest


def test_it_survives_dropped_connections_and_500s_on_both_sides(
        index, source_registry, target_registry):
    with FaultProxy(source_registry.url) as src, FaultProxy(target_registry.url) as dst:
        result = copy.copy(client_for(source_registry, host=src.host), "library/app", "1.0",
                               client_for(target_registry, host=dst.host), "demo-apps/app", "1.0",
                               backoff=0.05)
        outcomes = [o for _, _, o in src.log + dst.log]
    assert {"dropped", 500, "truncated"} <= set(outcomes)
    assert result.digest == index.digest
    assert digest_of(skopeo_raw(target_registry, "demo-apps/app:1.0")) == index.digest


def test_cancel_stops_the_copy_before_the_manifest(index, source_registry, target_registry):
    with pytest.raises(copy.Canceled):
        copy.copy(client_for(source_registry), "library/app", "1.0",
                      client_for(target_registry), "demo-apps/app", "1.0",
                      should_cancel=lambda: True)
    missing = httpx.head(f"{target_registry.url}/v2/demo-apps/app/manifests/1.0",
                         auth=target_registry.auth)
    assert missing.status_code == 404
