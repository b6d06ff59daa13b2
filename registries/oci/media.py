"""Manifests: their media types, the one Manifest, and the one check of a manifest's bytes.

Every manifest the portal reads (validation, mirroring, the proxy registry) goes through
``verify_manifest``: at most 4 MB, its sha256 equal to the digest asked for or announced, a
media type from the answer or from the manifest itself, and never Docker schema 1.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..errors import RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
INDEX_MEDIA_TYPES = {OCI_INDEX, DOCKER_LIST}
MAX_MANIFEST_BYTES = 4 << 20  # distribution refuses larger manifests too


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes
    size: int

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES

    @property
    def data(self) -> dict:
        """The parsed manifest; RegistryError when it is not a JSON object."""
        try:
            body = json.loads(self.content)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep JSON
            body = None
        if not isinstance(body, dict):
            raise RegistryError(f"The manifest {self.digest} is not JSON.", permanent=True,
                                code="bad_manifest")
        return body


def header_media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip()


def sniff_media_type(content: bytes) -> str:
    """The media type written inside a manifest, for registries that answer without one."""
    try:
        value = json.loads(content).get("mediaType", "")
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def schema1_error(image: str) -> RegistryError:
    return RegistryError(
        f"{image} is an old Docker schema 1 image, which the portal does not handle (nor "
        "copy with its digest preserved): push it again with a current Docker, buildx or "
        "skopeo (schema 2 / OCI).", permanent=True, code="schema1")


def manifest_digest(content: bytes, *, reference: str, claimed: str) -> str | None:
    """The digest of ``content`` when it matches what was asked for (``reference``, if a digest)
    or announced (``claimed``, Docker-Content-Digest); None when it does not."""
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    expected = reference if reference.startswith("sha256:") else claimed
    if expected.startswith("sha256:") and expected != digest:
        return None
    if claimed and not claimed.startswith("sha256:"):
        return claimed  # another algorithm: trust the registry's name for it
    return digest


def verify_manifest(content: bytes, *, content_type: str, reference: str, claimed: str,
                    image: str, registry: str) -> Manifest:
    """The manifest ``image`` answered with, checked: size, digest and media type."""
    if len(content) > MAX_MANIFEST_BYTES:
        raise RegistryError(f"The manifest of {image} is larger than 4 MB.", permanent=True,
                            code="upstream")
    digest = manifest_digest(content, reference=reference, claimed=claimed)
    if digest is None:
        raise RegistryError(
            f"The manifest {image} from {registry} does not match its digest: the registry or "
            "something between returned other bytes.", permanent=False, code="digest_mismatch")
    media_type = header_media_type(content_type) or sniff_media_type(content)
    if media_type in SCHEMA1:
        raise schema1_error(image)
    return Manifest(digest=digest, media_type=media_type, content=content, size=len(content))


def image_manifest(manifest: Manifest, *, image: str) -> Manifest:
    """``manifest`` as an image or index that can be copied with its digest: JSON, not schema 1,
    of a known media type (the one written inside it wins over the answer's header)."""
    try:
        body = manifest.data
    except RegistryError:
        raise RegistryError(f"The manifest of {image} is not JSON.", permanent=True,
                            code="bad_manifest") from None
    media_type = body.get("mediaType") or manifest.media_type
    if media_type in SCHEMA1 or body.get("schemaVersion") == 1:
        raise schema1_error(image)
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise RegistryError(f"{image}: unsupported manifest type {media_type!r}.",
                            permanent=True, code="bad_manifest")
    if media_type == manifest.media_type:
        return manifest
    return Manifest(manifest.digest, media_type, manifest.content, manifest.size)
