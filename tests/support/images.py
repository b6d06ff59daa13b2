"""Build and push test images without Docker.

Layers are gzip'd tars of random bytes (gzip level 0: fast, and random data does not compress, so
a layer's size is what the test asked for). Manifests are Docker v2 schema 2 or OCI; an index is a
two-platform OCI index (or Docker manifest list) whose platforms share one layer. Small blobs live
in memory, large ones (`on_disk=True`) in a temporary file, so a 1 GB layer never sits in RAM.

    index = build_index(layer_sizes=[1 << 20, 1 << 20], shared_size=512 << 10)
    push(index, registry.url, "demo/app", "1.0", auth=registry.auth)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

CHUNK = 1 << 20


@dataclass
class Blob:
    media_type: str
    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        if self.data is not None:
            for i in range(0, len(self.data), size):
                yield self.data[i:i + size]
            return
        with open(self.path, "rb") as f:
            while chunk := f.read(size):
                yield chunk

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class Image:
    media_type: str
    content: bytes
    config: Blob
    layers: list[Blob]
    platform: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.content)

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]


@dataclass
class Index:
    media_type: str
    content: bytes
    images: list[Image]

    @property
    def digest(self) -> str:
        return sha256(self.content)

    @property
    def blobs(self) -> list[Blob]:
        seen: dict[str, Blob] = {}
        for image in self.images:
            for blob in image.blobs:
                seen.setdefault(blob.digest, blob)
        return list(seen.values())


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _RandomReader(io.RawIOBase):
    """`size` bytes of seeded random data, read in pieces (never all in memory)."""

    def __init__(self, size: int, rng: random.Random):
        self.left, self.rng = size, rng

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


def make_layer(size: int, *, seed: int, oci: bool = True, on_disk: bool = False,
               directory: Path | None = None) -> Blob:
    """A gzip'd tar holding one file of random bytes; the blob is about `size` bytes."""
    rng = random.Random(seed)
    payload = max(size - 1024, 1)  # tar header + gzip framing
    if on_disk:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix="layer-", suffix=".tar.gz",
                                             delete=False)
        target = handle
    else:
        handle, target = None, io.BytesIO()
    with gzip.GzipFile(fileobj=target, mode="wb", compresslevel=0, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data-{seed}.bin")
            info.size, info.mtime = payload, 0
            tar.addfile(info, _RandomReader(payload, rng))
    media_type = OCI_LAYER if oci else DOCKER_LAYER
    if handle is None:
        data = target.getvalue()
        return Blob(media_type, sha256(data), len(data), data=data)
    handle.close()
    path = Path(handle.name)
    digest, total = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            total += len(chunk)
    return Blob(media_type, "sha256:" + digest.hexdigest(), total, path=path)


def build_image(layers: list[Blob], *, oci: bool = True, os_: str = "linux",
                architecture: str = "amd64", variant: str = "") -> Image:
    platform = {"architecture": architecture, "os": os_}
    if variant:
        platform["variant"] = variant
    config_json = {
        **platform,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{'0' * 63}{i}" for i in range(len(layers))]},
    }
    config_bytes = json.dumps(config_json, sort_keys=True).encode()
    config = Blob(OCI_CONFIG if oci else DOCKER_CONFIG, sha256(config_bytes), len(config_bytes),
                  data=config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    content = json.dumps(manifest, indent=3).encode()  # indent: bytes a re-serialiser would change
    return Image(manifest["mediaType"], content, config, list(layers), platform)


def build_single(layer_sizes: list[int], *, oci: bool = True, seed: int = 1, on_disk: bool = False,
                 directory: Path | None = None) -> Image:
    layers = [make_layer(size, seed=seed * 1000 + i, oci=oci, on_disk=on_disk, directory=directory)
              for i, size in enumerate(layer_sizes)]
    return build_image(layers, oci=oci)


def build_index(*, layer_sizes: list[int], shared_size: int, oci: bool = True, seed: int = 1,
                platforms=(("linux", "amd64", ""), ("linux", "arm64", "v8")),
                on_disk: bool = False, directory: Path | None = None) -> Index:
    """A multi-platform index: per platform its own layers, plus one layer every platform shares."""
    shared = make_layer(shared_size, seed=seed * 1000 + 999, oci=oci, on_disk=on_disk,
                        directory=directory)
    images = []
    for p, (os_, arch, variant) in enumerate(platforms):
        own = [make_layer(size, seed=seed * 1000 + p * 100 + i, oci=oci, on_disk=on_disk,
                          directory=directory)
               for i, size in enumerate(layer_sizes)]
        images.append(build_image([shared, *own], oci=oci, os_=os_, architecture=arch,
                                  variant=variant))
    media_type = OCI_INDEX if oci else DOCKER_LIST
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": image.media_type, "digest": image.digest, "size": len(image.content),
             "platform": image.platform}
            for image in images
        ],
    }
    return Index(media_type, json.dumps(index, indent=3).encode(), images)


def cleanup(image: Image | Index) -> None:
    """Delete the temporary files of on-disk layers."""
    for blob in image.blobs:
        if blob.path:
            blob.path.unlink(missing_ok=True)


# --- pushing over the distribution API -------------------------------------------------------

def push_blob(client: httpx.Client, repo: str, blob: Blob) -> None:
    if client.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 200:
        return
    start = client.post(f"/v2/{repo}/blobs/uploads/")
    start.raise_for_status()
    location = start.headers["location"]
    sep = "&" if "?" in location else "?"
    put = client.put(f"{location}{sep}digest={blob.digest}", content=blob.chunks(),
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(blob.size)})
    put.raise_for_status()


def push_manifest(client: httpx.Client, repo: str, reference: str, media_type: str,
                  content: bytes) -> None:
    response = client.put(f"/v2/{repo}/manifests/{reference}", content=content,
                          headers={"Content-Type": media_type})
    response.raise_for_status()


def push(image: Image | Index, base_url: str, repo: str, tag: str, *, auth=None) -> str:
    """Upload every blob, child manifests by digest, then the top manifest under `tag`."""
    with httpx.Client(base_url=base_url, auth=auth, timeout=120) as client:
        for blob in image.blobs:
            push_blob(client, repo, blob)
        if isinstance(image, Index):
            for child in image.images:
                push_manifest(client, repo, child.digest, child.media_type, child.content)
        push_manifest(client, repo, tag, image.media_type, image.content)
    return image.digest


def schema1_manifest() -> tuple[str, bytes]:
    """A (signed-looking) Docker schema 1 manifest: media type and bytes."""
    body = {"schemaVersion": 1, "name": "old/app", "tag": "v1", "architecture": "amd64",
            "fsLayers": [], "history": []}
    return "application/vnd.docker.distribution.manifest.v1+prettyjws", json.dumps(body).encode()
