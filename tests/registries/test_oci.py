"""The OCI distribution client against real loopback registries."""

import hashlib

import pytest

from registries.errors import RegistryError
from registries.oci.client import RegistryClient
from registries.oci.media import DOCKER_MANIFEST
from registries.oci.transport import parse_challenge
from tests.support.registry import push_test_image
from tests.support.servers import free_port


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    settings.PORTAL_REGISTRY_HOST_MAP = ""


@pytest.fixture(scope="module")
def basic_image(distribution_registry):
    return push_test_image(distribution_registry, "demo-apps/nginx", "latest")


@pytest.fixture(scope="module")
def bearer_image(bearer_registry):
    return push_test_image(bearer_registry, "demo-apps/private", "1.0")


def client_for(registry, username=None, password=None):
    return RegistryClient(
        registry.host,
        username=registry.username if username is None else username,
        password=registry.password if password is None else password,
        insecure=True,
    )


def test_it_parses_challenges():
    c = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                        'scope="repository:library/nginx:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/nginx:pull"}
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    assert parse_challenge(None).scheme == ""


def test_it_pings_a_basic_auth_registry(distribution_registry):
    with client_for(distribution_registry) as client:
        client.ping()


def test_it_reads_a_manifest_with_basic_auth(distribution_registry, basic_image):
    with client_for(distribution_registry) as client:
        head = client.head_manifest("demo-apps/nginx", "latest")
        got = client.get_manifest("demo-apps/nginx", "latest")
        by_digest = client.get_manifest("demo-apps/nginx", basic_image)
    assert head.digest == got.digest == by_digest.digest == basic_image
    assert head.media_type == got.media_type == DOCKER_MANIFEST
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() == basic_image
    assert head.size == got.size == len(got.content)


def test_it_reports_wrong_basic_credentials_as_unauthorized(distribution_registry):
    with client_for(distribution_registry, password="wrong-password") as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "unauthorized" and e.value.permanent
    assert "wrong-password" not in e.value.message


def test_it_says_when_credentials_are_missing(distribution_registry):
    with client_for(distribution_registry, username="", password="") as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "unauthorized"
    assert "requires a username and password" in e.value.message


def test_it_reports_a_missing_image(distribution_registry, basic_image):
    with client_for(distribution_registry) as client:
        for repository, tag in [("demo-apps/nginx", "no-such-tag"), ("nope/missing", "latest")]:
            with pytest.raises(RegistryError) as e:
                client.head_manifest(repository, tag)
            assert e.value.code == "image_not_found", e.value
            assert repository in e.value.message


def test_it_follows_the_bearer_token_flow(bearer_registry, bearer_image):
    with client_for(bearer_registry) as client:
        client.ping()
        manifest = client.head_manifest("demo-apps/private", "1.0")
    assert manifest.digest == bearer_image
    scopes = [r["query"].get("scope") for r in bearer_registry.token_server.requests]
    assert ["repository:demo-apps/private:pull"] in scopes
    assert all(r["authorization"].startswith("Basic ")
               for r in bearer_registry.token_server.requests if r["query"].get("scope"))


def test_it_reports_wrong_bearer_credentials_as_unauthorized(bearer_registry):
    with client_for(bearer_registry, password="not-the-password") as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "unauthorized"
    assert "not-the-password" not in e.value.message


def test_an_anonymous_bearer_token_cannot_read_a_private_image(bearer_registry, bearer_image):
    with client_for(bearer_registry, username="", password="") as client:
        client.ping()  # the anonymous token is enough for /v2/
        with pytest.raises(RegistryError) as e:
            client.head_manifest("demo-apps/private", "1.0")
    assert e.value.code == "unauthorized"
    assert "anonymously" in e.value.message


def test_it_reports_a_refused_port():
    with RegistryClient(f"127.0.0.1:{free_port()}", insecure=True, timeout=3) as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "refused" and not e.value.permanent


def test_it_reports_tls_when_a_plain_http_registry_is_not_marked_insecure(distribution_registry):
    with RegistryClient(distribution_registry.host, insecure=False, timeout=3) as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "tls"
    assert "insecure" in e.value.message


def test_it_reports_an_unknown_host():
    with RegistryClient("no-such-host.invalid", timeout=3) as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "dns"


def test_it_follows_redirects_without_sending_credentials_to_the_other_host(redirecting_registry):
    r, proxy = redirecting_registry, redirecting_registry.proxy
    with RegistryClient(proxy.host, username=proxy.username, password=proxy.password, insecure=True) as client:
        client.ping()
        manifest = client.get_manifest("demo/app", "latest")
        with client.stream_blob("demo/app", r.config_digest) as response:
            body = b"".join(response.iter_bytes())
    assert manifest.digest == r.manifest_digest
    assert body == r.config
    assert len(proxy.storage.requests) == 2
    for request in proxy.storage.requests:
        assert "Authorization" not in request["headers"]
    assert any("Authorization" in q["headers"] for q in proxy.registry_requests)


def test_it_sends_credentials_only_to_the_mapped_address_of_the_endpoint(
        settings, distribution_registry, basic_image):
    settings.PORTAL_REGISTRY_HOST_MAP = f"registry.example.com={distribution_registry.url}"
    with RegistryClient("registry.example.com", username=distribution_registry.username,
                        password=distribution_registry.password) as client:
        assert client.base_url == distribution_registry.url
        assert client.head_manifest("demo-apps/nginx", "latest").digest == basic_image


def test_the_guard_refuses_loopback_unless_allowed(settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    with client_for(distribution_registry) as client:
        with pytest.raises(RegistryError) as e:
            client.ping()
    assert e.value.code == "forbidden_address"
    assert "PORTAL_ALLOW_PRIVATE_REGISTRIES" in e.value.message


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def test_it_copies_an_image_blob_by_blob_with_identical_digests(distribution_factory, basic_image,
                                                                 distribution_registry):
    target = distribution_factory({"pusher": "pusher-pw-1"})
    with client_for(distribution_registry) as source, client_for(target) as dest:
        manifest = source.get_manifest("demo-apps/nginx", "latest")
        import json

        body = json.loads(manifest.content)
        for descriptor in [body["config"], *body["layers"]]:
            digest = descriptor["digest"]
            assert not dest.blob_exists("copy/nginx", digest)
            with source.stream_blob("demo-apps/nginx", digest) as response:
                dest.upload_blob("copy/nginx", digest, response.iter_bytes(), descriptor["size"])
            assert dest.blob_exists("copy/nginx", digest)
        pushed = dest.put_manifest("copy/nginx", "latest", manifest.content, manifest.media_type)
        assert pushed == manifest.digest == basic_image
        assert dest.get_manifest("copy/nginx", basic_image).content == manifest.content
        # Same registry, another repository: a mount moves no bytes.
        layer = body["layers"][0]["digest"]
        assert dest.mount_blob("other/nginx", layer, "copy/nginx") is True
        assert dest.blob_exists("other/nginx", layer)
        assert dest.mount_blob("third/nginx", "sha256:" + "0" * 64, "copy/nginx") is False


def test_an_upload_with_other_bytes_than_its_digest_is_not_stored(distribution_registry):
    digest, _ = _blob(b"the real content")
    with client_for(distribution_registry) as client:
        with pytest.raises(RegistryError) as e:
            client.upload_blob("corrupt/app", digest, iter([b"other content!!!"]), 16)
        assert e.value.code == "digest_mismatch"
        assert not client.blob_exists("corrupt/app", digest)


def test_it_pushes_through_the_bearer_flow(bearer_registry):
    digest, data = _blob(b"x" * 3000)
    with client_for(bearer_registry) as client:
        client.upload_blob("pushed/app", digest, iter([data[:1000], data[1000:]]), len(data))
        assert client.blob_exists("pushed/app", digest)
    scopes = [r["query"].get("scope") for r in bearer_registry.token_server.requests]
    assert ["repository:pushed/app:pull,push"] in scopes


def test_request_is_the_low_level_door(distribution_registry, basic_image):
    with client_for(distribution_registry) as client:
        response = client.request("GET", "demo-apps/nginx/tags/list", repository="demo-apps/nginx")
    assert response.status_code == 200
    assert "latest" in response.json()["tags"]


def test_it_reports_a_silent_server_as_a_timeout():
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP handshake, never answers
        with RegistryClient(f"127.0.0.1:{listener.getsockname()[1]}", insecure=True,
                            timeout=0.5) as client:
            with pytest.raises(RegistryError) as e:
                client.ping()
    assert e.value.code == "timeout" and not e.value.permanent


def test_it_reports_server_errors_as_transient_upstream_errors():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Broken(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with RegistryClient(f"127.0.0.1:{server.server_address[1]}", insecure=True) as client:
            for call in (client.ping, lambda: client.head_manifest("a/b", "latest")):
                with pytest.raises(RegistryError) as e:
                    call()
                assert e.value.code == "upstream" and not e.value.permanent
                assert "503" in e.value.message
    finally:
        server.shutdown()
        server.server_close()
