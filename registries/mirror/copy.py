"""Copy an image between registries with identical digests.

    result = copy(source, "library/nginx", "1.27", target, "demo-apps/nginx", "1.27",
                  progress=on_progress, should_cancel=lambda: job_was_canceled())

Order of work (Harbor's replication worker, skopeo `copy --all --preserve-digests`):
1. fetch the source manifest; stop if the target tag already has the same digest;
2. an index (multi-platform) is copied with every child manifest, by digest, before the index;
3. every blob: HEAD on the target (skip if present; not asked on a fresh start into a
   repository without tags, see `copy`) -> cross-repository mount when source and target
   are the same registry -> else streamed source -> target, sha256 checked while streaming;
   `parallel` blobs at once, largest first, and beside them up to SMALL_LANE small blobs,
   smallest first; each retried with exponential backoff on transient errors;
4. manifests last, with their original bytes and media type, so every digest equals the source's
   and nothing appears under the tag before all it references is there.

Upload sessions: every session this copier opens is either completed or canceled (DELETE on
its location, as the distribution spec says) before its blob job ends; `Progress.open_uploads`
lists the sessions open right now so the caller can record them, and `cancel_uploads()` lets
whoever takes over from a killed copier close the ones it left.

Memory stays flat: a blob flows chunk by chunk from the source response into the target request
body (a generator), never held whole. Callbacks (`progress`, `should_cancel`) run on the calling
thread only, so they may use the database; worker threads only stream.

Both clients are `registries.oci.client.RegistryClient`s; this module orchestrates their verbs
(manifests, blob HEAD/GET/upload/mount) and never builds a request itself. Redirected blob
downloads (ECR -> S3) are followed by that client without the registry's Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import RegistryError
from ..oci.client import STREAM_ERRORS, upload_path
from ..oci.media import Manifest, image_manifest

MONOLITHIC_MAX = 64 << 20     # blobs up to this size: one streamed PUT; larger: PATCH chunks
PATCH_CHUNK = 64 << 20        # bytes per PATCH of a chunked upload
PARALLEL = 4
SMALL_LANE = 2                # more workers, for blobs up to SMALL_BLOB, smallest first
SMALL_BLOB = 4 << 20
ATTEMPTS = 5
BACKOFF = 1.0                 # seconds before the 2nd try, doubling (Harbor: 5 tries from 2 s)
TICK = 0.25                   # how often the calling thread reports progress and checks cancel


class Canceled(Exception):
    """The copy stopped because `should_cancel()` said so."""


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

def _transient(exc: BaseException) -> bool:
    if isinstance(exc, RegistryError):
        return not exc.permanent
    return isinstance(exc, STREAM_ERRORS)


def _as_registry_error(exc: BaseException, what: str) -> RegistryError:
    if isinstance(exc, RegistryError):
        return exc
    return RegistryError(f"Network error while {what}: {type(exc).__name__}.", permanent=False,
                         code="upstream")


# --- the copier -------------------------------------------------------------------------------

def _name(client) -> str:
    return getattr(client, "endpoint", "the registry")


def _platform(entry: dict) -> str:
    p = entry.get("platform") or {}
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return f"{text}/{p['variant']}" if p.get("variant") else text


class Copier:
    def __init__(self, source, source_repo: str, target, target_repo: str, *,
                 parallel: int = PARALLEL, attempts: int = ATTEMPTS, backoff: float = BACKOFF,
                 progress: Callable[[Progress], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, fresh_start: bool = False):
        self.source, self.source_repo = source, source_repo
        self.fresh_start = fresh_start
        self.ask_first = True          # HEAD every blob before sending it (see `copy`)
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
        image = f"{self.source_repo}:{reference}" if not reference.startswith("sha256:") \
            else f"{self.source_repo}@{reference}"
        manifest = self._retry(lambda: self.source.get_manifest(self.source_repo, reference),
                               what=f"reading {image}")
        return image_manifest(manifest, image=image)

    def target_digest(self, reference: str) -> str | None:
        return self._retry(lambda: self.target.manifest_digest(
            self.target_repo, reference, actions="pull,push"),
            what=f"checking {self.target_repo}:{reference}")

    def put_manifest(self, reference: str, manifest: Manifest) -> None:
        what = f"pushing the manifest {self.target_repo}:{reference}"
        pushed = self._retry(lambda: self.target.put_manifest(
            self.target_repo, reference, manifest.content, manifest.media_type), what=what)
        if pushed != manifest.digest:
            raise RegistryError(f"{_name(self.target)} stored {what} under {pushed}, not "
                                f"{manifest.digest}.", permanent=True, code="digest_mismatch")

    # blobs ---------------------------------------------------------------------------------------

    def _start_upload(self, digest: str):
        """Start an upload, trying a mount first on the same registry."""
        if self.same_registry and self.source_repo != self.target_repo:
            return self.target.start_upload(self.target_repo, mount=digest,
                                            mount_from=self.source_repo)
        return self.target.start_upload(self.target_repo)

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
                self._uploads[digest] = upload_path(location)

    def _abandon_upload(self, digest: str) -> None:
        """Cancel ``digest``'s open session after a failed upload; best effort."""
        with self._lock:
            path = self._uploads.pop(digest, None)
        if path:
            cancel_uploads(self.target, self.target_repo, [path])

    def _source_chunks(self, digest: str, size: int) -> Iterator[bytes]:
        """The blob's bytes from the source, sha256 and size checked before the last chunk."""

        def on_chunk(seen: int) -> None:
            if self.canceled.is_set():
                raise Canceled()
            self._count(digest, seen)

        return self.source.blob_chunks(self.source_repo, digest, size, on_chunk=on_chunk)

    def _copy_blob(self, digest: str, size: int) -> str:
        if self.ask_first and self._present(digest):
            return "present"
        try:
            upload = self._start_upload(digest)
            if upload.mounted:
                return "mounted"
            self._track_upload(digest, upload.location, base=upload.url)
            try:
                self._send_blob(digest, size, upload.location, upload.url)
            except BaseException:
                self._abandon_upload(digest)
                raise
        except RegistryError as exc:
            # Sent without asking first: a registry may refuse a blob it already has.
            if self.ask_first or not exc.permanent or not self._present(digest):
                raise
            return "present"
        self._track_upload(digest, None)
        return "copied"

    def _present(self, digest: str) -> bool:
        return self.target.blob_exists(self.target_repo, digest, actions="pull,push")

    def _send_blob(self, digest: str, size: int, location: str, base: str) -> None:
        chunks = self._source_chunks(digest, size)
        if size <= MONOLITHIC_MAX:
            self.target.put_blob(location, self.target_repo, digest, chunks, size)
            return
        offset = 0
        buffered = _Reader(chunks)
        while offset < size:
            n = min(PATCH_CHUNK, size - offset)
            location = self.target.patch_blob(location, self.target_repo, buffered.take(n),
                                              offset=offset, size=n)
            self._track_upload(digest, location, base=base)
            offset += n
        buffered.finish()
        self.target.finish_upload(location, self.target_repo, digest)

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
                if not isinstance(exc, STREAM_ERRORS):
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

    def _retry(self, call, *, what: str):
        """``call()``, retried with backoff on transient errors."""
        for attempt in range(1, self.attempts + 1):
            self._check_cancel()
            try:
                return call()
            except STREAM_ERRORS as exc:
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
        if not top.is_index:
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
                               content, len(content))
                entries = chosen
        children = []
        for entry in entries:
            child = self.get_manifest(entry["digest"])
            if child.is_index:
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
        if self.fresh_start:
            # A repository without tags holds no image whose blobs this one could share, and
            # no earlier attempt left any: a HEAD per blob would only cost a round trip (and
            # the registry's authentication of it) each.
            self.ask_first = self._retry(lambda: self.target.has_tags(
                self.target_repo, actions="pull,push"), what=f"listing {self.target_repo}") \
                is not False
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
        # `parallel` workers take the largest blob left, so the long poles start early;
        # SMALL_LANE more take the smallest left while it is at most SMALL_BLOB. A small blob
        # (a config, a thin layer) costs mostly request round trips, not CPU: taken last, those
        # round trips were a tail with the CPUs idle after the large blobs had finished.
        queue = deque(sorted(blobs.items(), key=lambda item: -item[1]))
        lanes = [True] * max(1, self.parallel) + [False] * SMALL_LANE
        pool = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="blob")
        futures: list[Future] = []
        try:
            futures = [pool.submit(self._blob_worker, queue, largest) for largest in lanes]
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
            results = {r.digest: r for future in futures for r in future.result()}
            return [results[digest] for digest in blobs]
        except BaseException:
            self.canceled.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _blob_worker(self, queue: deque, largest: bool) -> list[BlobResult]:
        """Copy blobs from one end of ``queue`` until it is empty (or, for the small lane, until
        what is left is larger than SMALL_BLOB)."""
        results = []
        while not self.canceled.is_set():
            with self._lock:
                if not queue or (not largest and queue[-1][1] > SMALL_BLOB):
                    break
                digest, size = queue.popleft() if largest else queue.pop()
            results.append(self._blob_job(digest, size))
        return results


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
    return sum(target.cancel_upload(target_repo, location) for location in locations)


def copy(source, source_repo: str, reference: str, target, target_repo: str, tag: str, *,
         platforms: list[str] | None = None, progress: Callable[[Progress], None] | None = None,
         should_cancel: Callable[[], bool] | None = None, parallel: int = PARALLEL,
         attempts: int = ATTEMPTS, backoff: float = BACKOFF,
         fresh_start: bool = False) -> CopyResult:
    """Copy `source_repo:reference` (a tag or digest) to `target_repo:tag`; see the module doc.

    ``fresh_start``: no earlier attempt of this copy can have left blobs in the target (a mirror
    job's first delivery). Then, when the target repository has no tag yet, blobs are sent
    without a HEAD first.
    """
    copier = Copier(source, source_repo, target, target_repo, parallel=parallel,
                    attempts=attempts, backoff=backoff, progress=progress,
                    should_cancel=should_cancel, fresh_start=fresh_start)
    return copier.copy(reference, tag, platforms=platforms)
