"""The OCI distribution client: the verbs, on top of the transport.

    with RegistryClient("ghcr.io", username=…, password=…) as client:
        manifest = client.get_manifest("acme/app", "1.0")          # verified: see media.py
        client.blob_exists(repo, digest); client.stream_blob(repo, digest)
        upload = client.start_upload(repo, mount=digest, mount_from=other_repo)
        client.put_blob(upload.location, repo, digest, client.blob_chunks(…), size)
        client.put_manifest(repo, tag, manifest.content, manifest.media_type)

The mirror's copier and the proxy registry use these verbs and never build a request
themselves. Blobs stream chunk by chunk; ``blob_chunks`` holds back a blob's last chunk until
its sha256 and size are proven, so a target never commits a corrupted blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..errors import RegistryError
from .errors import manifest_error, status_error, unauthorized
from .media import (
    ACCEPT_MANIFESTS,
    SCHEMA1,
    Manifest,
    header_media_type,
    schema1_error,
    verify_manifest,
)
from .transport import STREAM_ERRORS, Transport, stream_error


@dataclass(frozen=True)
class Upload:
    location: str   # where the session goes on, as the registry sent it
    mounted: bool   # the registry mounted the blob from another repository: nothing to send
    url: str        # the address the session was opened at (tells the registry's own locations)


def upload_path(location: str) -> str:
    """An upload location (absolute or /v2/-relative) as a path relative to /v2/."""
    parts = urlsplit(location)
    path = parts.path
    if path.startswith("/v2/"):
        path = path[len("/v2/"):]
    return path + (f"?{parts.query}" if parts.query else "")


def _with_query(path: str, **params: str) -> str:
    sep = "&" if "?" in path else "?"
    return path + sep + "&".join(f"{k}={v}" for k, v in params.items())


class RegistryClient(Transport):
    """One registry, one set of credentials. Thread-safe; close it (or use ``with``)."""

    # Advice about the credentials found while logging in (registries/credentials.py).
    account_warning = ""

    # --- checks -------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` following the challenge; RegistryError unless the credentials are good."""
        self._challenge = None
        response = self.request("GET", "", repository="")
        if response.status_code == 200:
            return
        if response.status_code == 401:
            raise unauthorized(self.endpoint, has_credentials=self.has_credentials)
        if response.status_code == 404:
            raise RegistryError(
                f"{self.endpoint} does not serve the registry API at /v2/: check the endpoint "
                "(it is the registry's host, not a web page's address).",
                permanent=True, code="bad_endpoint",
            )
        raise self._status_error(response, f"The registry check of {self.endpoint}")

    # --- manifests ------------------------------------------------------------------------------

    def head_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest's digest, media type and size without its body (falls back to GET)."""
        response = self.request("HEAD", f"{repository}/manifests/{reference}",
                                repository=repository, headers={"Accept": ACCEPT_MANIFESTS})
        self._check_manifest(response, repository, reference)
        media_type = header_media_type(response.headers.get("content-type", ""))
        digest = response.headers.get("docker-content-digest", "")
        if not digest or not media_type:
            return self.get_manifest(repository, reference)
        size = int(response.headers.get("content-length") or 0)
        return Manifest(digest=digest, media_type=media_type, content=b"", size=size)

    def get_manifest(self, repository: str, reference: str, *, actions: str = "pull") -> Manifest:
        """The manifest with its exact bytes; the digest is checked against the content."""
        response = self.request("GET", f"{repository}/manifests/{reference}",
                                repository=repository, actions=actions,
                                headers={"Accept": ACCEPT_MANIFESTS})
        self._check_manifest(response, repository, reference)
        return verify_manifest(response.content,
                               content_type=response.headers.get("content-type", ""),
                               reference=reference,
                               claimed=response.headers.get("docker-content-digest", ""),
                               image=_image(repository, reference), registry=self.endpoint)

    def manifest_digest(self, repository: str, reference: str, *,
                        actions: str = "pull") -> str | None:
        """The digest ``reference`` names in ``repository`` now, None when there is none."""
        response = self.request("HEAD", f"{repository}/manifests/{reference}",
                                repository=repository, actions=actions,
                                headers={"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._status_error(response, f"Checking {repository}:{reference}")
        return response.headers.get("docker-content-digest")

    def has_tags(self, repository: str, *, actions: str = "pull") -> bool | None:
        """Whether ``repository`` has any tag: False for an unknown or empty repository, None
        when the registry will not say (no right to list tags, or another answer)."""
        response = self.request("GET", f"{repository}/tags/list?n=1", repository=repository,
                                actions=actions)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            return None
        try:
            return bool(response.json().get("tags"))
        except ValueError:
            return None

    def put_manifest(self, repository: str, reference: str, content: bytes, media_type: str) -> str:
        """Push a manifest with its original bytes and media type; returns its digest."""
        response = self.request("PUT", f"{repository}/manifests/{reference}",
                                repository=repository, actions="pull,push",
                                headers={"Content-Type": media_type}, content=content)
        if response.status_code not in (200, 201, 202):
            raise self._status_error(response, f"Pushing the manifest {repository}:{reference}")
        return (response.headers.get("docker-content-digest")
                or "sha256:" + hashlib.sha256(content).hexdigest())

    # --- blobs ----------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str, *, actions: str = "pull") -> bool:
        response = self.request("HEAD", f"{repository}/blobs/{digest}", repository=repository,
                                actions=actions)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._status_error(response, f"Checking blob {digest} in {repository}")

    @contextmanager
    def stream_blob(self, repository: str, digest: str) -> Iterator[httpx.Response]:
        """``with client.stream_blob(repo, digest) as r: for chunk in r.iter_bytes(): …``"""
        response = self.request("GET", f"{repository}/blobs/{digest}", repository=repository,
                                stream=True)
        try:
            if response.status_code != 200:
                response.read()
                if response.status_code == 404:
                    raise RegistryError(f"Blob {digest} is missing from {repository} on "
                                        f"{self.endpoint}.", permanent=True, code="image_not_found")
                raise self._status_error(response, f"Downloading blob {digest} from {repository}")
            yield response
        finally:
            response.close()

    def blob_chunks(self, repository: str, digest: str, size: int, *,
                    on_chunk: Callable[[int], None] = lambda seen: None) -> Iterator[bytes]:
        """A blob's bytes as they arrive, its sha256 and size checked before the last chunk.

        Chunks are what one socket read gives (up to transport.SOCKET_READ): asking httpx for a
        fixed chunk size makes it copy every read into a buffer and slice it again, which
        cost a third of the copier's CPU.
        ``on_chunk(bytes seen so far)`` runs for every chunk (progress; it may raise to stop).
        The last chunk is held back until the digest is proven, so an upload fed by this
        generator fails instead of committing a corrupted or truncated blob.
        """
        what = f"Downloading blob {digest[:19]}"
        with self.stream_blob(repository, digest) as response:
            hasher, seen = hashlib.sha256(), 0
            pending = b""
            try:
                for chunk in response.iter_raw():
                    hasher.update(chunk)
                    seen += len(chunk)
                    on_chunk(seen)
                    if pending:
                        yield pending
                    pending = chunk
            except STREAM_ERRORS as e:
                raise stream_error(e) from None
            if seen != size or "sha256:" + hasher.hexdigest() != digest:
                raise RegistryError(f"{what}: received {seen} bytes whose sha256 does not match "
                                    "(corrupted or truncated); will retry.", permanent=False,
                                    code="digest_mismatch")
            if pending:
                yield pending

    def start_upload(self, repository: str, *, mount: str = "", mount_from: str = "") -> Upload:
        """Open an upload session; with ``mount`` and ``mount_from``, ask for a cross-repository
        mount first (``Upload.mounted``: the registry has the blob, no session is open)."""
        path = f"{repository}/blobs/uploads/"
        extra = {}
        if mount and mount_from:
            path = _with_query(path, mount=mount, **{"from": mount_from})
            # A token registry mounts only with pull rights on the source repository too.
            extra = {"extra_scopes": [f"repository:{mount_from}:pull"]}
        response = self.request("POST", path, repository=repository, actions="pull,push",
                                headers={"Content-Length": "0"}, content=b"", **extra)
        if response.status_code == 201 and mount:
            return Upload(response.headers.get("location", ""), True, str(response.url))
        if response.status_code != 202 or not response.headers.get("location"):
            raise self._status_error(response, f"Starting an upload to {repository}")
        return Upload(response.headers["location"], False, str(response.url))

    def put_blob(self, location: str, repository: str, digest: str, chunks: Iterable[bytes],
                 size: int) -> None:
        """Send a whole blob into an open session and close it (one streamed PUT ?digest=)."""
        response = self.request(
            "PUT", _with_query(upload_path(location), digest=digest), repository=repository,
            actions="pull,push", content=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        if response.status_code not in (201, 204):
            raise self._status_error(response, f"Uploading {digest[:19]}")

    def patch_blob(self, location: str, repository: str, chunks: Iterable[bytes], *,
                   offset: int, size: int) -> str:
        """Send ``size`` bytes at ``offset`` into an open session; where the session goes on."""
        response = self.request(
            "PATCH", upload_path(location), repository=repository, actions="pull,push",
            content=chunks, headers={"Content-Type": "application/octet-stream",
                                     "Content-Length": str(size),
                                     "Content-Range": f"{offset}-{offset + size - 1}"})
        if response.status_code not in (202, 204):
            raise self._status_error(response, "Uploading part of a blob")
        return response.headers.get("location", location)

    def finish_upload(self, location: str, repository: str, digest: str) -> None:
        """Close a session whose bytes were all sent: the registry checks ``digest``."""
        response = self.request("PUT", _with_query(upload_path(location), digest=digest),
                                repository=repository, actions="pull,push",
                                headers={"Content-Length": "0"}, content=b"")
        if response.status_code not in (201, 204):
            raise self._status_error(response, f"Finishing {digest[:19]}")

    def cancel_upload(self, repository: str, location: str) -> bool:
        """Cancel an upload session (DELETE on its location); True when the registry still had
        it. Best effort: a registry purges abandoned uploads itself, later."""
        if not location:
            return False
        try:
            response = self.request("DELETE", location, repository=repository,
                                    actions="pull,push")
            response.close()
        except STREAM_ERRORS:
            return False
        return response.status_code in (200, 202, 204)

    def upload_blob(self, repository: str, digest: str, chunks: Iterable[bytes], size: int) -> None:
        """Stream a blob into ``repository`` (POST, one PATCH, PUT ?digest=), checking its sha256."""
        location = self.start_upload(repository).location
        hasher = hashlib.sha256()
        counted = 0

        def body() -> Iterator[bytes]:
            nonlocal counted
            for chunk in chunks:
                hasher.update(chunk)
                counted += len(chunk)
                yield chunk

        if size:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size),
                       "Content-Range": f"0-{size - 1}"}
            response = self.request("PATCH", location, repository=repository,
                                    actions="pull,push", headers=headers, content=body())
            if response.status_code != 202:
                raise self._status_error(response, f"Uploading blob {digest} to {repository}")
            location = response.headers.get("location") or location
        actual = "sha256:" + hasher.hexdigest()
        if digest.startswith("sha256:") and (actual != digest or counted != size):
            self.cancel_upload(repository, location)
            raise RegistryError(
                f"Blob {digest} arrived with other content ({actual}, {counted} of {size} "
                "bytes); it was not stored.", permanent=False, code="digest_mismatch")
        url = httpx.URL(self._url(location)).copy_merge_params({"digest": digest})
        response = self.request("PUT", str(url), repository=repository, actions="pull,push",
                                headers={"Content-Length": "0"}, content=b"")
        if response.status_code not in (201, 204):
            raise self._status_error(response, f"Completing the upload of blob {digest}")

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry would rather have the bytes."""
        upload = self.start_upload(repository, mount=digest, mount_from=from_repository)
        if not upload.mounted:
            self.cancel_upload(repository, upload.location)
        return upload.mounted

    # --- internals ------------------------------------------------------------------------------

    def _check_manifest(self, response: httpx.Response, repository: str, reference: str) -> None:
        if response.status_code == 200:
            if header_media_type(response.headers.get("content-type", "")) in SCHEMA1:
                raise schema1_error(_image(repository, reference))
            return
        error = manifest_error(response, image=_image(repository, reference),
                               registry=self.endpoint, has_credentials=self.has_credentials,
                               bearer=self._challenge is not None
                               and self._challenge.scheme == "bearer")
        if error is not None:
            raise error

    def _status_error(self, response: httpx.Response, what: str) -> RegistryError:
        return status_error(response, registry=self.endpoint, what=what,
                            has_credentials=self.has_credentials)


def _image(repository: str, reference: str) -> str:
    return f"{repository}@{reference}" if reference.startswith("sha") \
        else f"{repository}:{reference}"
