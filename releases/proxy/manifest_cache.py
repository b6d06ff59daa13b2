"""Manifests by digest, kept in the process's memory: a pull's manifests without the upstream.

A manifest named by its digest never changes (the digest is the SHA-256 of its bytes), and the
proxy fetches every pinned tag by its pinned digest, so after the first pull of a release each
manifest request can be answered here, after the license's entitlement is checked as always.
The upstream request was most of what a proxied manifest request cost the portal
(docs/benchmarks.md, "Proxy registry: the lean lane and manifests from memory"). Entries are
put only after ``manifest_digest`` verified the bytes; the least recently used go first past
``MAX_BYTES``. One cache per process, event loop only (no lock).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_BYTES = 32 << 20  # manifests are a few KB; an index of many platforms tens of KB

_entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
_size = 0


def get(digest: str) -> tuple[str, bytes] | None:
    """(media type, bytes) of a verified manifest, or None."""
    entry = _entries.get(digest)
    if entry is not None:
        _entries.move_to_end(digest)
    return entry


def put(digest: str, media_type: str, body: bytes) -> None:
    global _size
    if digest in _entries or len(body) > MAX_BYTES // 8:
        return
    _entries[digest] = (media_type, body)
    _size += len(body)
    while _size > MAX_BYTES:
        _, (_, dropped) = _entries.popitem(last=False)
        _size -= len(dropped)


def clear() -> None:
    global _size
    _entries.clear()
    _size = 0
