"""The proxy registry's pull-through blob cache: blobs kept on the portal's disk by digest.

A blob is content-addressed: once its bytes hash to its sha256 digest it is the same blob
whichever registry or repository it came from, so entries are keyed by digest only. The view
decides entitlement before it asks here; this module never decides who may have a blob.

Layout under ``PORTAL_BLOB_CACHE_DIR`` (one directory per host or pod, shared by its processes):

    blobs/<hex>   a blob whose digest checked, renamed into place after a complete fill
    tmp/<hex>     a fill in progress, written only by the holder of locks/<hex>
    locks/<hex>   flock'ed while a process fills the entry; its mtime is the entry's last use

``BlobCache.claim`` answers a GET with a ``CachedBlob`` (an open, verified file), a ``Fill``
(this request fetches upstream and ``Fill.tee`` copies the stream to tmp/ while hashing), or
``None`` (go upstream without caching: cache off, HEAD on a miss, another fill stalled). A
miss held by another process is waited for with asyncio sleeps: the waiter serves the file once
it lands, or takes the lock over when the filler fails or dies (the kernel drops a dead
process's flock), or goes upstream itself when the fill makes no progress for
``STALL_SECONDS``.

A hit is verified once per process per file: the digest is hashed again unless this process
already hashed this exact file (inode, size, mtime and ctime: any write changes ctime), so a
file changed on disk is caught, removed and fetched again. Recency lives in the lock file's
mtime, not the blob's, because touching the blob would change its ctime and cost a re-hash in
every other process.

Metrics (portal/observability/metrics.py): a fill is counted by how it ended where its writer
thread settles it, a removed file where this process's unlink removed it (two processes evicting
at once count it once); lookups are counted by the view, which knows the app; the size on disk
is listed at scrape time (``usage``, releases/proxy/metrics.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import hashlib
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from portal.observability import metrics

logger = logging.getLogger(__name__)

READ_BYTES = 1 << 20  # a hit is read and sent in pieces of this size
POLL_SECONDS = 0.025  # how often a waiter looks for the file, the lock and the fill's progress
STALL_SECONDS = 10.0  # a fill whose temporary file stops growing this long is not waited for
STALE_TMP_SECONDS = 600.0  # an unlocked temporary file this old is a dead process's: removed
FAILED_SECONDS = 30  # after the disk failed the cache, this process goes upstream for so long
# Never take the disk's last free space: a fill is skipped when the free space after it would
# fall below this share of the file system, or FREE_FLOOR_BYTES, whichever is smaller.
FREE_FLOOR_SHARE = 0.10
FREE_FLOOR_BYTES = 2 << 30
MAX_MEMO = 100_000
# A fill's pieces handed to its writer thread and not yet on disk: the stream waits above this.
WRITER_QUEUE_BYTES = 8 << 20
ABORT_WAIT_SECONDS = 0.05  # how long a cut stream waits for its writer thread to clean up
# A scrape reads the size of at most this many entries (``BlobCache.usage``), so it stays cheap.
USAGE_SCAN_ENTRIES = 200_000
HEX = re.compile(r"^[0-9a-f]{64}$")


def _hex(digest: str) -> str:
    value = digest.removeprefix("sha256:")
    if not digest.startswith("sha256:") or not HEX.match(value):
        raise ValueError("not a sha256 digest")
    return value


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _unlink(path: Path) -> bool:
    """Whether this call removed the file (another process's eviction may have been first)."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _hash_and_close(fd: int) -> str:
    """The digest of an open file, read by its own descriptor (closed here): the request that
    started the check may be cancelled and close its descriptor meanwhile."""
    try:
        h, offset = hashlib.sha256(), 0
        while chunk := os.pread(fd, READ_BYTES, offset):
            h.update(chunk)
            offset += len(chunk)
        return "sha256:" + h.hexdigest()
    finally:
        os.close(fd)


@dataclass
class CachedBlob:
    """A verified cache entry, open: eviction may unlink it meanwhile, the bytes stay readable."""

    fd: int
    size: int
    closed: bool = False

    async def chunks(self, first: int = 0, last: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``first`` to ``last`` (default: the whole file) in pieces of at most
        ``READ_BYTES``; closes the file at the end, or when abandoned."""
        loop = asyncio.get_running_loop()
        offset, end = first, self.size if last is None else last + 1
        try:
            while offset < end:
                # In a thread: a cold read may wait on the disk, and the event loop must not.
                chunk = await loop.run_in_executor(None, os.pread, self.fd,
                                                   min(READ_BYTES, end - offset), offset)
                if not chunk:
                    raise OSError("cached blob shorter than when it was opened")
                offset += len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def __del__(self):  # a response dropped before streaming must not leak the descriptor
        self.close()


class _Writer:
    """A fill's file writes and SHA-256, in a thread of its own (both release the GIL): the
    event loop only hands each piece over, so a slow or stalled disk slows this one stream
    instead of every request the process serves. At most ``WRITER_QUEUE_BYTES`` wait for the
    thread: beyond that the stream waits (rather than the blob piling up in memory)."""

    def __init__(self, fill: Fill, out, size: int):
        self.fill, self.out, self.size = fill, out, size
        self.hash = hashlib.sha256()
        self.written = 0
        self.pending = 0  # bytes handed over and not yet written (the thread alone lowers it)
        self.error: OSError | None = None
        self.aborted = False
        self.done: concurrent.futures.Future = concurrent.futures.Future()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._room = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blob-cache-fill", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        with self._lock:
            self.pending += len(chunk)
        self._queue.put(chunk)

    async def drained(self) -> None:
        """Wait until the thread has caught up to half the queue (only when it falls behind)."""
        while self.pending > WRITER_QUEUE_BYTES // 2 and not self.done.done():
            self._room.clear()
            if self.pending > WRITER_QUEUE_BYTES // 2:
                await asyncio.to_thread(self._room.wait, 1.0)

    def end(self, complete: bool) -> None:
        """No more pieces. A cut stream's pieces still queued are dropped, and its clean-up is
        waited for briefly, so the lock is free when the request ends (else the thread frees it)."""
        if not complete:
            self.aborted = True
        self._queue.put((complete,))
        if not complete:
            self._thread.join(ABORT_WAIT_SECONDS)

    def _run(self) -> None:
        complete = False
        try:
            while True:
                chunk = self._queue.get()
                if isinstance(chunk, tuple):
                    complete = chunk[0]
                    break
                if not self.aborted and self.error is None:  # after a failed write: drained only
                    try:
                        self.out.write(chunk)
                    except OSError as e:
                        self.error = e
                    self.hash.update(chunk)
                    self.written += len(chunk)
                with self._lock:
                    self.pending -= len(chunk)
                self._room.set()
        finally:
            try:
                self.fill.settle(self, complete)
            finally:
                self._room.set()
                self.done.set_result(None)


@dataclass
class Fill:
    """This request fetches the blob upstream while holding the entry's lock; ``tee`` writes
    the stream to tmp/ and renames it into blobs/ once complete and its digest checks.

    The lock lives as long as this object: an answer that never streams (an upstream error, a
    redirect passed through) drops it and the lock with it."""

    cache: BlobCache
    digest: str
    lock_fd: int
    released: bool = False
    _tmp: Path | None = field(default=None, repr=False)

    async def tee(self, chunks: AsyncIterator[bytes], length: str = "") -> AsyncIterator[bytes]:
        """Pass ``chunks`` through unchanged, copying them to the cache when there is room."""
        size = int(length) if length.isdigit() else 0
        try:
            room = self.cache.room_for(size)
        except OSError as e:
            room = self.cache.failed("check the free space", e)
        out = None
        if room:
            tmp = self._tmp = self.cache.directory / "tmp" / _hex(self.digest)
            try:
                # Truncates what a killed filler left behind: only the lock holder writes here.
                out = open(tmp, "wb")
            except OSError as e:
                self.cache.failed("open a file", e)
        if out is None:
            self.release()
            async for chunk in chunks:
                yield chunk
            return
        writer = _Writer(self, out, size)
        complete = False
        try:
            async for chunk in chunks:
                writer.put(chunk)
                if writer.pending > WRITER_QUEUE_BYTES:
                    await writer.drained()
                yield chunk
            complete = True
        finally:
            writer.end(complete)
        # The client has every byte; the fill lands before the answer ends, so the next request
        # for the blob finds it (shielded: a cancellation here leaves the landing to the thread).
        await asyncio.shield(asyncio.wrap_future(writer.done))

    def settle(self, writer: _Writer, complete: bool) -> None:
        """In the writer's thread, after its last write: the file into place if it is whole
        and its digest checks, the temporary file removed, the lock released."""
        tmp = self._tmp
        outcome = "cut"
        try:
            writer.out.close()
        except OSError as e:
            writer.error = writer.error or e
        try:
            if writer.error is not None:
                outcome = "disk_error"
                self.cache.failed("write", writer.error)  # a full disk fails the cache, not the pull
            elif complete and "sha256:" + writer.hash.hexdigest() == self.digest and (
                    not writer.size or writer.written == writer.size):
                self.cache.landed(_hex(self.digest), tmp)
                outcome = "landed"
            elif complete:
                outcome = "mismatch"
                logger.warning("proxy: the upstream's blob did not match its digest; not cached")
            _unlink(tmp)  # after a rename there is nothing here any more
        except OSError as e:
            outcome = "disk_error"
            self.cache.failed("keep a blob", e)
        finally:
            self.release()
        metrics.proxy_blob_cache_fills.labels(outcome).inc()

    def release(self) -> None:
        if not self.released:
            self.released = True
            os.close(self.lock_fd)  # closing the descriptor drops its flock

    def __del__(self):
        if self._tmp is not None and not self.released:
            _unlink(self._tmp)
        self.release()


class BlobCache:
    """The cache in ``directory``, at most ``max_bytes`` of blobs (0: off)."""

    def __init__(self, directory: Path, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # digest -> (inode, size, mtime_ns, ctime_ns) of the file this process hashed and found
        # right; another file under the same name, or any write to this one, is hashed again.
        self._verified: dict[str, tuple[int, int, int, int]] = {}
        self._checks: dict[tuple, asyncio.Future] = {}
        self._evicting = threading.Lock()
        self._ready = False
        self._failed_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _dirs(self) -> None:
        if not self._ready:
            for sub in ("blobs", "tmp", "locks"):
                (self.directory / sub).mkdir(parents=True, exist_ok=True)
            self._ready = True

    # --- lookups -----------------------------------------------------------------------------

    async def claim(self, digest: str, *, method: str = "GET") -> CachedBlob | Fill | None:
        """What a request for ``digest`` should do; see the module docstring. A cache that
        fails (a full or read-only disk) is a miss, never a failed pull."""
        if not self.enabled:
            return None
        if time.monotonic() < self._failed_until:
            return None
        try:
            return await self._claim(digest, method)
        except OSError as e:
            return self.failed("look up a blob", e)

    def failed(self, what: str, error: OSError) -> None:
        """A cache that just failed is skipped for a while: otherwise the waiters for a blob
        would take the lock over one after another, each fetching and failing in turn."""
        logger.warning("proxy: the blob cache could not %s (%s); serving from upstream for "
                       "%d s", what, error.strerror or type(error).__name__, FAILED_SECONDS)
        self._failed_until = time.monotonic() + FAILED_SECONDS
        self._ready = False  # make its directories again (someone may have removed them)
        return None

    async def _claim(self, digest: str, method: str) -> CachedBlob | Fill | None:
        self._dirs()
        hit = await self.lookup(digest)
        if hit is not None or method != "GET":
            return hit
        name = _hex(digest)
        lock_fd = os.open(self.directory / "locks" / name, os.O_RDWR | os.O_CREAT, 0o644)
        handed_over = False
        try:
            loop = asyncio.get_running_loop()
            progress, progress_at = -1, loop.time()
            while True:
                if _try_lock(lock_fd):
                    # The file may have landed between the lookup and the lock.
                    hit = await self.lookup(digest)
                    if hit is not None:
                        return hit
                    handed_over = True
                    return Fill(self, digest, lock_fd)
                await asyncio.sleep(POLL_SECONDS)
                if time.monotonic() < self._failed_until:
                    return None
                hit = await self.lookup(digest)
                if hit is not None:
                    return hit
                try:
                    size = (self.directory / "tmp" / name).stat().st_size
                except FileNotFoundError:
                    size = -1
                if size != progress:
                    progress, progress_at = size, loop.time()
                elif loop.time() - progress_at > STALL_SECONDS:
                    return None  # the filler is stuck (a slow client): fetch without caching
        finally:
            if not handed_over:
                os.close(lock_fd)

    async def lookup(self, digest: str) -> CachedBlob | None:
        """The entry for ``digest``, open and verified, or None (absent, or wrong: removed)."""
        if not self.enabled:
            return None
        name = _hex(digest)
        path = self.directory / "blobs" / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        blob = CachedBlob(fd, 0)
        st = os.fstat(fd)
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        blob.size = st.st_size
        if self._verified.get(digest) != key:
            check = self._checks.get(key)
            if check is None:  # concurrent hits on one new file hash it once
                check = asyncio.ensure_future(asyncio.to_thread(_hash_and_close, os.dup(fd)))
                self._checks[key] = check
                check.add_done_callback(lambda _: self._checks.pop(key, None))
            actual = await asyncio.shield(check)
            if actual != digest:
                blob.close()
                self._discard(path, key)
                return None
            if len(self._verified) > MAX_MEMO:
                self._verified.clear()
            self._verified[digest] = key
        self._touch(name)
        return blob

    def _discard(self, path: Path, key: tuple) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == key:  # not a newer fill
            if _unlink(path):
                metrics.proxy_blob_cache_removed.labels("corrupt").inc()
            logger.warning("proxy: a cached blob did not match its digest; removed, fetching it "
                           "again from upstream")

    def _touch(self, name: str) -> None:
        lock = self.directory / "locks" / name
        try:
            os.utime(lock)
        except FileNotFoundError:
            lock.touch()

    # --- filling and eviction ----------------------------------------------------------------

    def room_for(self, size: int) -> bool:
        """Whether a blob of ``size`` bytes (0: unknown) may be cached: not larger than the cache,
        and the disk keeps its floor of free space."""
        if size > self.max_bytes:
            return False
        usage = shutil.disk_usage(self.directory)
        floor = min(FREE_FLOOR_BYTES, int(usage.total * FREE_FLOOR_SHARE))
        return usage.free - size >= floor

    def landed(self, name: str, tmp: Path) -> None:
        """A complete, checked fill: into place, remembered as verified, then evict."""
        final = self.directory / "blobs" / name
        os.replace(tmp, final)
        st = final.stat()  # after the rename: it changes ctime on some file systems
        self._verified["sha256:" + name] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        self._touch(name)
        try:
            asyncio.get_running_loop().run_in_executor(None, self._evict_quietly)
        except RuntimeError:  # no event loop (a unit test calling in from a thread)
            self._evict_quietly()

    def _evict_quietly(self) -> None:
        try:
            self.evict()
        except OSError as e:
            self.failed("evict", e)

    def evict(self) -> int:
        """Remove the least recently used entries until the cache holds at most ``max_bytes``;
        returns the bytes left. Safe beside readers: an unlinked open file stays readable."""
        if not self._evicting.acquire(blocking=False):
            return -1  # another eviction of this process is running; it sees this fill too
        try:
            entries, total = [], 0
            locks = self.directory / "locks"
            for entry in os.scandir(self.directory / "blobs"):
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:
                    continue
                try:
                    used = (locks / entry.name).stat().st_mtime_ns
                except FileNotFoundError:
                    used = 0
                entries.append((used, entry.name, size))
                total += size
            entries.sort()
            for _, name, size in entries:
                if total <= self.max_bytes:
                    break
                if _unlink(self.directory / "blobs" / name):
                    metrics.proxy_blob_cache_removed.labels("evicted").inc()
                total -= size
                self._forget_lock(name)
            self._sweep_tmp()
            return total
        finally:
            self._evicting.release()

    def usage(self) -> tuple[int, int] | None:
        """(bytes, entries) of the files in blobs/, at most ``USAGE_SCAN_ENTRIES`` of them; None
        when the cache is off or has no directory yet."""
        if not self.enabled:
            return None
        size = entries = 0
        try:
            with os.scandir(self.directory / "blobs") as scan:
                for entry in scan:
                    if entries >= USAGE_SCAN_ENTRIES:
                        break
                    try:
                        size += entry.stat(follow_symlinks=False).st_size
                    except FileNotFoundError:  # evicted meanwhile
                        continue
                    entries += 1
        except OSError:  # absent (nothing cached yet) or unreadable: no figure rather than a wrong one
            return None
        return size, entries

    def _forget_lock(self, name: str) -> None:
        """Remove an evicted entry's lock file unless a fill holds it."""
        path = self.directory / "locks" / name
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if _try_lock(fd) and not (self.directory / "blobs" / name).exists():
                _unlink(path)
        finally:
            os.close(fd)

    def _sweep_tmp(self) -> None:
        """Temporary files of killed fillers (the next filler would truncate them anyway)."""
        now = time.time()
        for entry in os.scandir(self.directory / "tmp"):
            try:
                if now - entry.stat().st_mtime < STALE_TMP_SECONDS:
                    continue
                fd = os.open(self.directory / "locks" / entry.name, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                continue
            try:
                if _try_lock(fd):
                    _unlink(Path(entry.path))
            finally:
                os.close(fd)


_store: BlobCache | None = None


def store() -> BlobCache:
    """This process's cache, as the settings say."""
    global _store
    if _store is None:
        _store = BlobCache(Path(settings.PORTAL_BLOB_CACHE_DIR), settings.PORTAL_BLOB_CACHE_BYTES)
    return _store
