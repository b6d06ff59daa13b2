"""Copy an image between registries with identical digests.

    result = copy(source, "library/nginx", "1.27", target, "demo-apps/nginx", "1.27",
                  progress=on_progress, should_cancel=lambda: job_was_canceled())

Order of work (Harbor's replication worker, skopeo `copy --all --preserve-digests`):
1. fetch the source manifest; stop if the target tag already has the same digest;
2. an index (multi-platform) is copied with every child manifest, by digest, before the index;
3. every blob: HEAD on the target (skip if present) -> cross-repository mount when source and target
   are the same registry -> else streamed source -> target, sha256 checked while streaming;
   up to `parallel` blobs at once, each retried with exponential backoff on transient errors;
4. manifests last, with their original bytes and media type, so every digest equals the source's
   and nothing appears under the tag before all it references is there.

Upload sessions: every session this copier opens is either completed or canceled (DELETE on
its location, as the distribution spec says) before its blob job ends; `Progress.open_uploads`
lists the sessions open right now so the caller can record them, and `cancel_uploads()` lets
whoever takes over from a killed copier close the ones it left.

Memory stays flat: a blob flows chunk by chunk from the source response into the target request
body (a generator), never held whole. Callbacks (`progress`, `should_cancel`) run on the calling
thread only, so they may use the database; worker threads only stream.

Both clients are `registries.oci.RegistryClient`s; this module uses only their low-level
`request(method, path, *, repository, actions, headers, content, stream, follow_redirects)` (path
relative to /v2/) and `endpoint`. Redirected blob downloads (ECR -> S3) are followed by that
client without the registry's Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from .errors import RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

READ_CHUNK = 1 << 20          # bytes read from the source at a time
MONOLITHIC_MAX = 64 << 20     # blobs up to this size: one streamed PUT; larger: PATCH chunks
PATCH_CHUNK = 64 << 20        # bytes per PATCH of a chunked upload
PARALLEL = 4
ATTEMPTS = 5
BACKOFF = 1.0                 # seconds before the 2nd try, doubling (Harbor: 5 tries from 2 s)
TICK = 0.25                   # how often the calling thread reports progress and checks cancel


class Canceled(Exception):
    """The copy stopped because `should_cancel()` said so."""


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    content: bytes

    @property
    def data(self) -> dict:
        return json.loads(self.content)


@dataclass(frozen=True)
class BlobResult:
    digest: str
    size: int
    action: str          # "present" (already there), "mounted", "copied"
    seconds: float
    attempts: int = 1


@dataclass
class Progress:
    blobs_total: int = 0
    bytes_total: int = 0
    blobs_done: int = 0
    bytes_done: int = 0
    finished: list[BlobResult] = field(default_factory=list)   # blobs finished since last report
    open_uploads: list[str] = field(default_factory=list)      # upload locations open right now


@dataclass
class CopyResult:
    digest: str
    media_type: str
    skipped: bool                        # the target tag already had this digest
    blobs: list[BlobResult] = field(default_factory=list)
    manifests: int = 0
    platforms: list[str] = field(default_factory=list)

    @property
    def bytes_copied(self) -> int:
        return sum(b.size for b in self.blobs if b.action == "copied")


# --- errors -----------------------------------------------------------------------------------

def _registry_codes(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return ", ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if e.get("code"))
    except Exception:  # noqa: BLE001 - any non-JSON body
        return ""


def error_for(response: httpx.Response, *, registry: str, what: str) -> RegistryError:
    """A RegistryError a user can act on; 401/403/404 are permanent, 429/5xx transient."""
    status = response.status_code
    detail = _registry_codes(response)
    suffix = f" ({detail})" if detail else f" (HTTP {status})"
    if status == 401:
        return RegistryError(
            f"{registry} rejected the credentials while {what}{suffix}. Check the username and "
            "password (pushing needs credentials with write access).",
            permanent=True, code="unauthorized")
    if status == 403 or "DENIED" in detail:
        return RegistryError(
            f"{registry} denied access while {what}{suffix}: the credentials work but lack "
            "permission for this repository (pushing needs write access).",
            permanent=True, code="denied")
    if status == 404:
        return RegistryError(f"Not found on {registry} while {what}{suffix}.",
                             permanent=True, code="image_not_found")
    if status == 429 or status >= 500:
        return RegistryError(f"{registry} answered HTTP {status} while {what}; will retry.",
                             permanent=False, code="upstream")
    return RegistryError(f"{registry} refused {what}{suffix}.", permanent=True,
                         code="bad_request")


def _expect(response: httpx.Response, statuses: tuple[int, ...], *, registry: str,
            what: str) -> httpx.Response:
    if response.status_code not in statuses:
        raise error_for(response, registry=registry, what=what)
    return response


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RegistryError):
        return not exc.permanent
    return isinstance(exc, httpx.HTTPError)


def _as_registry_error(exc: BaseException, what: str) -> RegistryError:
    if isinstance(exc, RegistryError):
        return exc
    return RegistryError(f"Network error while {what}: {type(exc).__name__}.", permanent=False,
                         code="upstream")


# --- the copier -------------------------------------------------------------------------------

def _name(client) -> str:
    return getattr(client, "endpoint", "the registry")


def _upload_path(location: str) -> str:
    """Turn an upload Location (absolute or /v2/-relative) into a path relative to /v2/."""
    parts = urlsplit(location)
    path = parts.path
    if path.startswith("/v2/"):
        path = path[len("/v2/"):]
    return path + (f"?{parts.query}" if parts.query else "")


def _with_query(path: str, **params: str) -> str:
    sep = "&" if "?" in path else "?"
    return path + sep + "&".join(f"{k}={v}" for k, v in params.items())


def _platform(entry: dict) -> str:
    p = entry.get("platform") or {}
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return f"{text}/{p['variant']}" if p.get("variant") else text


class Copier:
    def __init__(self, source, source_repo: str, target, target_repo: str, *,
                 parallel: int = PARALLEL, attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 progress: Callable[[Progress], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None):
        self.source, self.source_repo = source, source_repo
        self.target, self.target_repo = target, target_repo
        self.parallel, self.attempts, self.backoff = parallel, attempts, backoff
        self.progress_cb = progress or (lambda p: None)
        self.should_cancel = should_cancel or (lambda: False)
        self.same_registry = (getattr(source, "endpoint", None) is not None
                              and getattr(source, "endpoint", None) == getattr(target, "endpoint", None))
        self.canceled = threading.Event()
        self._lock = threading.Lock()
        self._bytes: dict[str, int] = {}
        self._uploads: dict[str, str] = {}     # digest -> its open upload session
        self._finished: list[BlobResult] = []
        self._progress = Progress()

    # manifests ---------------------------------------------------------------------------------

    def get_manifest(self, reference: str) -> Manifest:
        what = f"reading {self.source_repo}:{reference}" if not reference.startswith("sha256:") \
            else f"reading {self.source_repo}@{reference}"
        response = self._retry(lambda: self.source.request(
            "GET", f"{self.source_repo}/manifests/{reference}", repository=self.source_repo,
            actions="pull", headers={"Accept": ACCEPT}), what=what, client=self.source,
            statuses=(200,))
        content = response.content
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep JSON
            raise RegistryError(f"{_name(self.source)} returned a manifest that is not JSON "
                                f"while {what}.", permanent=True, code="bad_manifest") from None
        media_type = body.get("mediaType") or media_type
        if media_type in SCHEMA1 or body.get("schemaVersion") == 1:
            raise RegistryError(
                f"{self.source_repo}:{reference} is a Docker schema 1 image, which cannot be "
                "copied with its digest preserved. Rebuild or re-push it with a current Docker "
                "or buildx (schema 2 / OCI).", permanent=True, code="schema1")
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            raise RegistryError(f"{what}: unsupported manifest type {media_type!r}.",
                                permanent=True, code="bad_manifest")
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(f"{what}: the manifest's content does not match its digest.",
                                permanent=False, code="digest_mismatch")
        return Manifest(digest, media_type, content)

    def target_digest(self, reference: str) -> str | None:
        response = self._retry(lambda: self.target.request(
            "HEAD", f"{self.target_repo}/manifests/{reference}", repository=self.target_repo,
            actions="pull,push", headers={"Accept": ACCEPT}), what=f"checking "
            f"{self.target_repo}:{reference}", client=self.target, statuses=(200, 404))
        return response.headers.get("docker-content-digest") if response.status_code == 200 else None

    def put_manifest(self, reference: str, manifest: Manifest) -> None:
        what = f"pushing the manifest {self.target_repo}:{reference}"
        response = self._retry(lambda: self.target.request(
            "PUT", f"{self.target_repo}/manifests/{reference}", repository=self.target_repo,
            actions="pull,push", headers={"Content-Type": manifest.media_type},
            content=manifest.content), what=what, client=self.target, statuses=(200, 201))
        pushed = response.headers.get("docker-content-digest")
        if pushed and pushed != manifest.digest:
            raise RegistryError(f"{_name(self.target)} stored {what} under {pushed}, not "
                                f"{manifest.digest}.", permanent=True, code="digest_mismatch")

    # blobs ---------------------------------------------------------------------------------------

    def _blob_present(self, digest: str) -> bool:
        response = self.target.request("HEAD", f"{self.target_repo}/blobs/{digest}",
                                       repository=self.target_repo, actions="pull,push")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise error_for(response, registry=_name(self.target), what=f"checking blob {digest[:19]}")

    def _start_upload(self, digest: str) -> tuple[str, bool, str]:
        """Start an upload, trying a mount first on the same registry: (location, mounted, the
        URL the session was asked for)."""
        path = f"{self.target_repo}/blobs/uploads/"
        extra = {}
        if self.same_registry and self.source_repo != self.target_repo:
            path = _with_query(path, mount=digest, **{"from": self.source_repo})
            # A token registry mounts only with pull rights on the source repository too.
            extra = {"extra_scopes": [f"repository:{self.source_repo}:pull"]}
        response = self.target.request("POST", path, repository=self.target_repo,
                                       actions="pull,push", **extra)
        _expect(response, (201, 202), registry=_name(self.target),
                what=f"starting the upload of {digest[:19]} to {self.target_repo}")
        return (response.headers.get("location", ""), response.status_code == 201,
                str(response.url))

    def _track_upload(self, digest: str, location: str | None, *, base: str = "") -> None:
        """Remember (or forget, with None) the open upload session of ``digest``.

        Only a location on the registry itself is kept (a path relative to /v2/ with the
        registry's upload state): a location on another host may be a signed storage URL, a
        credential that must not be recorded; such a session expires on its own.
        """
        with self._lock:
            if location is None:
                self._uploads.pop(digest, None)
                return
            host = urlsplit(location).netloc
            if host and host != urlsplit(base).netloc:
                self._uploads.pop(digest, None)
            else:
                self._uploads[digest] = _upload_path(location)

    def _abandon_upload(self, digest: str) -> None:
        """Cancel ``digest``'s open session after a failed upload; best effort."""
        with self._lock:
            path = self._uploads.pop(digest, None)
        if path:
            cancel_uploads(self.target, self.target_repo, [path])

    def _source_chunks(self, digest: str, size: int) -> Iterator[bytes]:
        """The blob's bytes from the source, sha256 and size checked before the last chunk."""
        what = f"downloading blob {digest[:19]}"
        response = self.source.request("GET", f"{self.source_repo}/blobs/{digest}",
                                       repository=self.source_repo, actions="pull", stream=True,
                                       follow_redirects=True)
        try:
            _expect(response, (200,), registry=_name(self.source), what=what)
            hasher, seen = hashlib.sha256(), 0
            pending = b""
            for chunk in response.iter_raw(READ_CHUNK):
                if self.canceled.is_set():
                    raise Canceled()
                hasher.update(chunk)
                seen += len(chunk)
                self._count(digest, seen)
                if pending:
                    yield pending
                pending = chunk
            # Hold back the last chunk until the digest is proven, so a corrupted blob is never
            # committed by the target.
            if seen != size or "sha256:" + hasher.hexdigest() != digest:
                raise RegistryError(f"{what}: received {seen} bytes whose sha256 does not match "
                                    "(corrupted or truncated); will retry.", permanent=False,
                                    code="digest_mismatch")
            if pending:
                yield pending
        finally:
            response.close()

    def _copy_blob(self, digest: str, size: int) -> str:
        if self._blob_present(digest):
            return "present"
        location, mounted, base = self._start_upload(digest)
        if mounted:
            return "mounted"
        self._track_upload(digest, location, base=base)
        try:
            self._send_blob(digest, size, location, base)
        except BaseException:
            self._abandon_upload(digest)
            raise
        self._track_upload(digest, None)
        return "copied"

    def _send_blob(self, digest: str, size: int, location: str, base: str) -> None:
        target_name = _name(self.target)
        path = _upload_path(location)
        chunks = self._source_chunks(digest, size)
        headers = {"Content-Type": "application/octet-stream"}
        if size <= MONOLITHIC_MAX:
            response = self.target.request(
                "PUT", _with_query(path, digest=digest), repository=self.target_repo,
                actions="pull,push", headers={**headers, "Content-Length": str(size)},
                content=chunks)
            _expect(response, (201, 204), registry=target_name, what=f"uploading {digest[:19]}")
            return
        offset = 0
        buffered = _Reader(chunks)
        while offset < size:
            n = min(PATCH_CHUNK, size - offset)
            response = self.target.request(
                "PATCH", path, repository=self.target_repo, actions="pull,push",
                headers={**headers, "Content-Length": str(n),
                         "Content-Range": f"{offset}-{offset + n - 1}"},
                content=buffered.take(n))
            _expect(response, (202, 204), registry=target_name,
                    what=f"uploading part of {digest[:19]}")
            location = response.headers.get("location", location)
            self._track_upload(digest, location, base=base)
            path = _upload_path(location)
            offset += n
        buffered.finish()
        response = self.target.request("PUT", _with_query(path, digest=digest),
                                       repository=self.target_repo, actions="pull,push",
                                       headers={"Content-Length": "0"}, content=b"")
        _expect(response, (201, 204), registry=target_name, what=f"finishing {digest[:19]}")

    def _blob_job(self, digest: str, size: int) -> BlobResult:
        start = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                action = self._copy_blob(digest, size)
                result = BlobResult(digest, size, action, round(time.monotonic() - start, 3),
                                    attempt)
                with self._lock:
                    self._bytes[digest] = size
                    self._finished.append(result)
                return result
            except Canceled:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted into transient / permanent below
                if self.canceled.is_set():
                    raise Canceled() from exc
                if not isinstance(exc, (RegistryError, httpx.HTTPError)):
                    raise  # a bug, not the network: the caller reports it as such
                if not _transient(exc) or attempt == self.attempts:
                    raise _as_registry_error(exc, f"copying blob {digest[:19]}") from exc
                with self._lock:
                    self._bytes[digest] = 0
                if self.canceled.wait(self.backoff * 2 ** (attempt - 1)):
                    raise Canceled() from exc
        raise AssertionError("unreachable")

    def _count(self, digest: str, seen: int) -> None:
        with self._lock:
            self._bytes[digest] = seen

    # retries on the calling thread ---------------------------------------------------------------

    def _retry(self, call, *, what: str, client, statuses: tuple[int, ...]) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            self._check_cancel()
            try:
                response = call()
                return _expect(response, statuses, registry=_name(client), what=what)
            except Exception as exc:  # noqa: BLE001
                if not _transient(exc) or attempt == self.attempts:
                    raise _as_registry_error(exc, what) from exc
                deadline = time.monotonic() + self.backoff * 2 ** (attempt - 1)
                while time.monotonic() < deadline:
                    self._check_cancel()
                    time.sleep(min(TICK, max(deadline - time.monotonic(), 0)))
        raise AssertionError("unreachable")

    def _check_cancel(self) -> None:
        if self.canceled.is_set() or self.should_cancel():
            self.canceled.set()
            raise Canceled()

    def _report(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
            p = self._progress
            p.finished = finished
            p.blobs_done += len(finished)
            p.bytes_done = sum(self._bytes.values())
            p.open_uploads = sorted(self._uploads.values())
        self.progress_cb(p)

    # the whole image -----------------------------------------------------------------------------

    def plan(self, top: Manifest, platforms: list[str] | None) -> tuple[Manifest, list[Manifest]]:
        """The manifest to push under the tag and the image manifests it needs, children first."""
        if top.media_type not in INDEX_TYPES:
            return top, [top]
        body = top.data
        entries = body.get("manifests", [])
        if platforms:
            wanted = set(platforms)
            chosen = [e for e in entries if _platform(e) in wanted
                      or _platform(e).rsplit("/", 1)[0] in wanted]
            if not chosen:
                available = ", ".join(_platform(e) for e in entries)
                raise RegistryError(f"None of the platforms {', '.join(platforms)} is in this "
                                    f"image (it has {available}).", permanent=True,
                                    code="platform_not_found")
            if len(chosen) != len(entries):
                # A subset needs its own index (new digest), as skopeo does.
                body = {**body, "manifests": chosen}
                content = json.dumps(body, indent=3).encode()
                top = Manifest("sha256:" + hashlib.sha256(content).hexdigest(), top.media_type,
                               content)
                entries = chosen
        children = []
        for entry in entries:
            child = self.get_manifest(entry["digest"])
            if child.media_type in INDEX_TYPES:
                raise RegistryError("Nested indexes are not supported.", permanent=True,
                                    code="bad_manifest")
            children.append(child)
        return top, children

    def copy(self, reference: str, tag: str, *, platforms: list[str] | None = None) -> CopyResult:
        source_top = self.get_manifest(reference)
        top, images = self.plan(source_top, platforms)
        result = CopyResult(top.digest, top.media_type, skipped=False,
                            platforms=[_platform(e) for e in top.data.get("manifests", [])])
        if self.target_digest(tag) == top.digest:
            result.skipped = True
            return result
        blobs: dict[str, int] = {}
        for image in images:
            body = image.data
            for desc in [body["config"], *body.get("layers", [])]:
                if desc.get("urls") or "nondistributable" in desc.get("mediaType", ""):
                    continue  # foreign layers stay where they are
                blobs.setdefault(desc["digest"], int(desc["size"]))
        self._progress = Progress(blobs_total=len(blobs), bytes_total=sum(blobs.values()))
        self._report()
        result.blobs = self._copy_blobs(blobs)
        for image in images:
            if image is not top:
                self.put_manifest(image.digest, image)
                result.manifests += 1
        self._check_cancel()
        self.put_manifest(tag, top)
        result.manifests += 1
        return result

    def _copy_blobs(self, blobs: dict[str, int]) -> list[BlobResult]:
        # Largest first: the long poles start early.
        order = sorted(blobs.items(), key=lambda item: -item[1])
        pool = ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="blob")
        futures: list[Future] = []
        try:
            futures = [pool.submit(self._blob_job, d, s) for d, s in order]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=TICK, return_when=FIRST_EXCEPTION)
                self._report()
                for future in done:
                    if future.exception() is not None:
                        raise future.exception()
                if self.should_cancel():
                    raise Canceled()
            self._report()
            return [f.result() for f in futures]
        except BaseException:
            self.canceled.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class _Reader:
    """Hands out exact-size slices of a chunk iterator without holding more than one chunk."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.rest = chunks, b""

    def take(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self.rest:
                self.rest = next(self.chunks, b"")
                if not self.rest:
                    raise RegistryError("The source blob ended early.", permanent=False,
                                        code="digest_mismatch")
            piece, self.rest = self.rest[:n], self.rest[n:]
            n -= len(piece)
            yield piece

    def finish(self) -> None:
        """Run the source iterator to its end (it verifies the digest there)."""
        for extra in self.chunks:
            if extra:
                raise RegistryError("The source blob is longer than its descriptor says.",
                                    permanent=False, code="digest_mismatch")


def cancel_uploads(target, target_repo: str, locations: list[str]) -> int:
    """Cancel upload sessions (paths relative to /v2/ from `Progress.open_uploads`) with DELETE;
    the number the registry still had. Best effort: a registry that cannot be reached or refuses
    purges abandoned uploads itself, later."""
    canceled = 0
    for location in locations:
        try:
            response = target.request("DELETE", location, repository=target_repo,
                                      actions="pull,push")
            response.close()
        except (RegistryError, httpx.HTTPError):
            continue
        canceled += response.status_code in (200, 202, 204)
    return canceled


def copy(source, source_repo: str, reference: str, target, target_repo: str, tag: str, *,
         platforms: list[str] | None = None, progress: Callable[[Progress], None] | None = None,
         should_cancel: Callable[[], bool] | None = None, parallel: int = PARALLEL,
         attempts: int = ATTEMPTS, backoff: float = BACKOFF) -> CopyResult:
    """Copy `source_repo:reference` (a tag or digest) to `target_repo:tag`; see the module doc."""
    copier = Copier(source, source_repo, target, target_repo, parallel=parallel,
                    attempts=attempts, backoff=backoff, progress=progress,
                    should_cancel=should_cancel)
    return copier.copy(reference, tag, platforms=platforms)
