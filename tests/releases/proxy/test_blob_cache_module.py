"""The blob cache's mechanism (releases/proxy/blob_cache.py) on a temporary directory: fills,
verification, eviction and the per-digest lock. The proxy server's use of it, with skopeo as the
client, is tests/releases/proxy/test_blob_cache.py."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import namedtuple

import pytest

from releases.proxy import blob_cache
from releases.proxy.blob_cache import BlobCache, CachedBlob, Fill


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def pieces(data: bytes, size: int = 1000, *, fail_after: int | None = None):
    for n, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and n == fail_after:
            raise ConnectionError("upstream went away")
        yield data[start:start + size]


async def fill(cache: BlobCache, data: bytes) -> None:
    claimed = await cache.claim(digest_of(data))
    assert isinstance(claimed, Fill)
    out = [chunk async for chunk in claimed.tee(pieces(data), str(len(data)))]
    assert b"".join(out) == data  # the client gets every byte, unchanged


async def read(blob: CachedBlob) -> bytes:
    return b"".join([chunk async for chunk in blob.chunks()])


def files(cache: BlobCache, sub: str) -> list[str]:
    path = cache.directory / sub
    return sorted(os.listdir(path)) if path.exists() else []


def test_a_complete_fill_lands_and_the_next_claim_is_served_from_disk(tmp_path):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)

    async def run():
        await fill(cache, data)
        hit = await cache.claim(digest_of(data))
        assert isinstance(hit, CachedBlob) and hit.size == len(data)
        assert await read(hit) == data

    asyncio.run(run())
    assert files(cache, "blobs") == [digest_of(data).removeprefix("sha256:")]
    assert files(cache, "tmp") == []


@pytest.mark.parametrize("how", ["upstream breaks", "client goes away", "wrong bytes"])
def test_a_cut_or_wrong_fill_leaves_nothing_and_frees_the_lock(tmp_path, how):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    digest = digest_of(data)

    async def run():
        claimed = await cache.claim(digest)
        assert isinstance(claimed, Fill)
        if how == "upstream breaks":
            with pytest.raises(ConnectionError):
                async for _ in claimed.tee(pieces(data, fail_after=2), str(len(data))):
                    pass
        elif how == "client goes away":
            stream = claimed.tee(pieces(data), str(len(data)))
            await stream.__anext__()
            assert files(cache, "tmp")  # the fill had started
            await stream.aclose()
        else:
            async for _ in claimed.tee(pieces(data[:-1] + b"x"), str(len(data))):
                pass
        again = await cache.claim(digest)  # the lock is free: no wait
        assert isinstance(again, Fill)
        again.release()

    asyncio.run(asyncio.wait_for(run(), 5))
    assert files(cache, "blobs") == [] and files(cache, "tmp") == []


def test_a_changed_file_is_detected_removed_and_refilled(tmp_path, caplog):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    digest = digest_of(data)
    asyncio.run(fill(cache, data))
    path = cache.directory / "blobs" / digest.removeprefix("sha256:")
    with open(path, "r+b") as f:  # same size, one byte changed: only the hash can tell
        f.seek(100)
        f.write(bytes([data[100] ^ 1]))

    async def run():
        with caplog.at_level(logging.WARNING, logger="releases.proxy.blob_cache"):
            claimed = await cache.claim(digest)
        assert isinstance(claimed, Fill)  # a miss again: this request refills
        assert not path.exists()
        async for _ in claimed.tee(pieces(data), str(len(data))):
            pass
        assert await read(await cache.lookup(digest)) == data

    asyncio.run(run())
    assert "did not match its digest" in caplog.text


def test_a_file_is_hashed_once_per_process_until_it_changes(tmp_path, monkeypatch):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    digest = digest_of(data)
    asyncio.run(fill(cache, data))
    hashed = []
    real = blob_cache._hash_and_close
    monkeypatch.setattr(blob_cache, "_hash_and_close", lambda fd: hashed.append(fd) or real(fd))

    async def lookups(n):
        return await asyncio.gather(*(cache.lookup(digest) for _ in range(n)))

    for blob in asyncio.run(lookups(3)):  # the filler already knows its own file
        blob.close()
    assert hashed == []
    other = BlobCache(tmp_path, 1 << 20)  # another process: hashes once, even for 8 at once
    for blob in asyncio.run(_lookups(other, digest, 8)):
        blob.close()
    assert len(hashed) == 1
    path = cache.directory / "blobs" / digest.removeprefix("sha256:")
    os.utime(path)  # a write of any kind changes ctime: checked again
    asyncio.run(_lookups(other, digest, 1))[0].close()
    assert len(hashed) == 2


async def _lookups(cache, digest, n):
    return await asyncio.gather(*(cache.lookup(digest) for _ in range(n)))


def test_eviction_keeps_the_total_under_the_limit_dropping_the_least_recently_used(tmp_path):
    cache = BlobCache(tmp_path, 3500)
    blobs = [os.urandom(1000) for _ in range(4)]

    async def run():
        for data in blobs[:3]:
            await fill(cache, data)
            time.sleep(0.02)  # file times advance in clock ticks of a few ms: keep them apart
        (await cache.lookup(digest_of(blobs[0]))).close()  # used again: now the most recent
        time.sleep(0.02)
        await fill(cache, blobs[3])

    asyncio.run(run())
    assert cache.evict() <= 3500
    kept = set(files(cache, "blobs"))
    names = [digest_of(d).removeprefix("sha256:") for d in blobs]
    assert kept == {names[0], names[2], names[3]}
    assert names[1] not in files(cache, "locks")


def test_a_blob_larger_than_the_cache_or_the_free_space_floor_is_not_kept(tmp_path, monkeypatch):
    cache = BlobCache(tmp_path, 4000)
    big = os.urandom(5000)
    asyncio.run(_fill_through(cache, big))
    assert files(cache, "blobs") == []
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(blob_cache.shutil, "disk_usage",
                        lambda path: Usage(100 << 30, 0, (2 << 30) + 1000))
    small = os.urandom(2000)  # would leave less than the floor (2 GiB of a 100 GiB disk) free
    asyncio.run(_fill_through(cache, small))
    assert files(cache, "blobs") == []


async def _fill_through(cache, data):
    claimed = await cache.claim(digest_of(data))
    out = [chunk async for chunk in claimed.tee(pieces(data), str(len(data)))]
    assert b"".join(out) == data


def test_with_the_cache_off_nothing_is_written(tmp_path):
    cache = BlobCache(tmp_path / "cache", 0)
    assert asyncio.run(cache.claim(digest_of(b"x"))) is None
    assert not (tmp_path / "cache").exists()


def test_a_waiter_serves_the_fillers_file_or_takes_over_when_it_fails(tmp_path):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    digest = digest_of(data)

    async def run(fail: bool):
        first = await cache.claim(digest)
        assert isinstance(first, Fill)
        waiter = asyncio.ensure_future(cache.claim(digest))
        await asyncio.sleep(0.1)
        assert not waiter.done()  # waits for the fill rather than fetching too
        try:
            async for _ in first.tee(pieces(data, fail_after=2 if fail else None), "5000"):
                pass
        except ConnectionError:
            pass
        got = await asyncio.wait_for(waiter, 5)
        if fail:
            assert isinstance(got, Fill)  # took over
            async for _ in got.tee(pieces(data), "5000"):
                pass
        else:
            assert isinstance(got, CachedBlob) and await read(got) == data

    asyncio.run(run(fail=True))
    (cache.directory / "blobs" / digest.removeprefix("sha256:")).unlink()
    asyncio.run(run(fail=False))


def test_a_waiter_takes_over_from_a_filler_process_that_dies(tmp_path):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    digest = digest_of(data)
    cache._dirs()
    lock = cache.directory / "locks" / digest.removeprefix("sha256:")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"

        async def run():
            waiter = asyncio.ensure_future(cache.claim(digest))
            await asyncio.sleep(0.2)
            assert not waiter.done()
            holder.kill()
            return await asyncio.wait_for(waiter, 5)

        got = asyncio.run(run())
        assert isinstance(got, Fill)
        got.release()
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_fails_the_cache_never_the_pull(tmp_path, monkeypatch, caplog):
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(5000)
    real_open = open

    class Full:
        def __init__(self, path, mode):
            self.file = real_open(path, mode)

        def write(self, chunk):
            raise OSError(28, "No space left on device")

        def close(self):
            self.file.close()

    monkeypatch.setattr(blob_cache, "open", Full, raising=False)

    async def run():
        claimed = await cache.claim(digest_of(data))
        out = [chunk async for chunk in claimed.tee(pieces(data), str(len(data)))]
        assert b"".join(out) == data  # the client got every byte
        # For a while this process goes upstream without the cache (no chain of waiters each
        # taking the lock over and failing in turn), and the lock is free.
        assert await cache.claim(digest_of(data)) is None
        lock = os.open(cache.directory / "locks" / digest_of(data).removeprefix("sha256:"),
                       os.O_RDWR)
        assert blob_cache._try_lock(lock)
        os.close(lock)

    with caplog.at_level(logging.WARNING, logger="releases.proxy.blob_cache"):
        asyncio.run(asyncio.wait_for(run(), 5))
    assert files(cache, "blobs") == [] and files(cache, "tmp") == []
    assert "No space left on device" in caplog.text


@pytest.mark.parametrize("removed", ["cache", "cache/blobs"])
def test_a_cache_directory_removed_under_a_running_process_is_made_again(tmp_path, monkeypatch,
                                                                         removed):
    monkeypatch.setattr(blob_cache, "FAILED_SECONDS", 0)
    cache, data = BlobCache(tmp_path / "cache", 1 << 20), os.urandom(5000)

    async def run():
        claimed = await cache.claim(digest_of(data))
        stream = claimed.tee(pieces(data), str(len(data)))
        out = [await stream.__anext__()]
        shutil.rmtree(tmp_path / removed)  # an operator empties the cache during a fill
        out += [chunk async for chunk in stream]
        assert b"".join(out) == data
        await fill(cache, data)
        assert await read(await cache.lookup(digest_of(data))) == data

    asyncio.run(asyncio.wait_for(run(), 5))


def test_a_slow_disk_makes_the_stream_wait_rather_than_queue_the_blob_in_memory(tmp_path,
                                                                                 monkeypatch):
    """The writer thread may fall behind the stream by WRITER_QUEUE_BYTES, no more."""
    monkeypatch.setattr(blob_cache, "WRITER_QUEUE_BYTES", 4000)
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(50_000)
    real_open = open
    writes = 0

    class Slow:
        def __init__(self, path, mode):
            self.file = real_open(path, mode)

        def write(self, chunk):
            nonlocal writes
            writes += 1
            time.sleep(0.01)  # a disk slower than the upstream
            return self.file.write(chunk)

        def close(self):
            self.file.close()

    monkeypatch.setattr(blob_cache, "open", Slow, raising=False)

    sent = [0]

    async def counted():
        claimed = await cache.claim(digest_of(data))
        out = []
        async for chunk in claimed.tee(pieces(data), str(len(data))):
            sent[0] += len(chunk)
            out.append(chunk)
            # What the stream has passed on and the disk has not taken yet.
            assert sent[0] - writes * 1000 <= 4000
        assert b"".join(out) == data

    asyncio.run(asyncio.wait_for(counted(), 10))
    assert files(cache, "blobs") == [digest_of(data).removeprefix("sha256:")]
    assert files(cache, "tmp") == []


def test_a_stalled_disk_write_does_not_stall_the_event_loop(tmp_path, monkeypatch):
    """The fill's writes happen in its writer thread: other requests' work goes on meanwhile."""
    cache, data = BlobCache(tmp_path, 1 << 20), os.urandom(3000)
    real_open = open

    class Stalling:
        def __init__(self, path, mode):
            self.file = real_open(path, mode)

        def write(self, chunk):
            time.sleep(0.3)  # a disk that stalls on every write
            return self.file.write(chunk)

        def close(self):
            self.file.close()

    monkeypatch.setattr(blob_cache, "open", Stalling, raising=False)

    async def run():
        lags = []

        async def ticker():  # another request's work: how late does the loop run it?
            while True:
                started = time.monotonic()
                await asyncio.sleep(0.01)
                lags.append(time.monotonic() - started - 0.01)

        other = asyncio.ensure_future(ticker())
        await fill(cache, data)  # three pieces: about 0.9 s of writes
        other.cancel()
        return lags

    lags = asyncio.run(asyncio.wait_for(run(), 10))
    assert len(lags) > 20 and max(lags) < 0.2
    assert files(cache, "blobs") == [digest_of(data).removeprefix("sha256:")]
