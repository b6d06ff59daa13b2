"""The blob cache's size and entries on this host, read from its directory when /metrics is
scraped (a level, not a count: every process of the host answers the same, and nothing is left
behind by a dead one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from .blob_cache import USAGE_SCAN_ENTRIES, BlobCache


def blob_cache_usage() -> Iterator[GaugeMetricFamily]:
    """Nothing when the cache is off or has not made its directory yet."""
    # A new BlobCache (no I/O until asked) rather than the process's store(): the settings as
    # they are now, and nothing of the store's state is needed to list a directory.
    usage = BlobCache(Path(settings.PORTAL_BLOB_CACHE_DIR),
                      settings.PORTAL_BLOB_CACHE_BYTES).usage()
    if usage is None:
        return
    size, entries = usage
    bound = f"at most the first {USAGE_SCAN_ENTRIES} files are read"
    yield GaugeMetricFamily("portal_proxy_blob_cache_bytes",
                            f"Bytes of blobs in this host's blob cache ({bound}).", value=size)
    yield GaugeMetricFamily("portal_proxy_blob_cache_entries",
                            f"Blobs in this host's blob cache ({bound}).", value=entries)
