"""How the client streams a blob: in the pieces the socket gives, with bounded memory."""

import hashlib
import os
import threading
import tracemalloc

import pytest

from registries.oci.client import RegistryClient
from registries.oci.transport import SOCKET_READ
from tests.support.faults import Proxy

KB, MB = 1 << 10, 1 << 20


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    settings.PORTAL_REGISTRY_HOST_MAP = ""


def client_for(registry, host=None):
    return RegistryClient(host or registry.host, username=registry.username,
                          password=registry.password, insecure=True, timeout=30)


def pushed_blob(registry, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with client_for(registry) as client:
        client.upload_blob(repository, digest, iter([data[i:i + MB] for i in
                                                     range(0, len(data), MB)]), len(data))
    return digest


class PacedBlobs(Proxy):
    """Sends a blob's first ``first`` bytes, then the rest only once the client has seen them
    (``seen`` is set), or after ``patience`` seconds, noting that the client was stalled."""

    def __init__(self, upstream: str, *, first: int, patience: float = 5.0):
        super().__init__(upstream)
        self.first, self.patience = first, patience
        self.seen = threading.Event()
        self.stalled = False

    def intercept(self, handler, body: bytes) -> bool:
        if handler.command != "GET" or "/blobs/sha256:" not in handler.path:
            return False
        headers = {k: v for k, v in handler.headers.items() if k.lower() == "authorization"}
        upstream = self.http.get(self.upstream + handler.path, headers=headers,
                                 follow_redirects=True)
        if upstream.status_code != 200:
            return False  # the challenge: answered as the registry answers it
        data = upstream.content
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[:self.first])
        handler.wfile.flush()
        self.stalled = not self.seen.wait(self.patience)
        handler.wfile.write(data[self.first:])
        handler.wfile.flush()
        return True


def test_a_blob_arrives_as_the_socket_gives_it_not_when_a_fixed_chunk_fills(
        distribution_registry):
    # Progress and the upload to the target follow the source's bytes as they come; a reader
    # that waited for 1 MB would sit on the first 200 KB until the source sent more.
    data = os.urandom(3 * MB + 5)
    digest = pushed_blob(distribution_registry, "stream/paced", data)
    first = 200 * KB
    proxy = PacedBlobs(distribution_registry.url, first=first)

    def on_chunk(seen: int) -> None:
        if seen >= first:
            proxy.seen.set()

    with proxy, client_for(distribution_registry, proxy.host) as client:
        chunks = list(client.blob_chunks("stream/paced", digest, len(data), on_chunk=on_chunk))
    assert not proxy.stalled, "the client held the first bytes back waiting for more"
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= SOCKET_READ


def test_a_large_blob_streams_in_bounded_memory(distribution_registry):
    data = os.urandom(32 * MB)
    digest = pushed_blob(distribution_registry, "stream/large", data)
    hasher, sizes = hashlib.sha256(), []
    with client_for(distribution_registry) as client:
        tracemalloc.start()
        try:
            for chunk in client.blob_chunks("stream/large", digest, len(data)):
                hasher.update(chunk)
                sizes.append(len(chunk))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "sha256:" + hasher.hexdigest() == digest
    # A few socket reads in flight (about 7 MB, the same for an 8 MB and a 64 MB blob), never
    # the blob.
    assert peak < 12 * MB, f"peak {peak / MB:.1f} MB while streaming a 32 MB blob"
    # 1 MB socket reads: loopback hands over far more than httpcore's default 64 KB at a time.
    assert max(sizes) > 64 * KB
