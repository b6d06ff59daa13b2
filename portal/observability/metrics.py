"""The portal's Prometheus metrics and the scrape that reads them.

Counters and histograms are recorded where things happen (requests, proxy pulls, tasks, mirror
copies). With ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` and the Procfile's processes set it),
each process writes its values into its own files there and a scrape sums every process's files,
so any web process answers for all of them; without it, the values of this process alone.
There are no per-process gauges: what is a level (registries by status, queue depth) is read
from the database and the broker when scraped (``scrape_collectors``), so a dead process leaves
only counter totals behind, which stay part of the sums as Prometheus counters should.

No label holds a customer, a license ID, a digest or an image tag: views are URL pattern names,
apps are slugs of apps that exist, refusals are OCI error codes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import redis
from django.conf import settings
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

# Seconds; requests of the pages and the proxy's manifests are milliseconds, blob streams are
# timed to their headers only.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
THROUGHPUT_BUCKETS = tuple(float(1 << n) for n in range(16, 32, 2))  # 64 KB/s .. 1 GB/s

http_requests = Counter(
    "portal_http_requests", "HTTP requests answered, by URL pattern name and status.",
    ["view", "method", "status"])
http_latency = Histogram(
    "portal_http_request_duration_seconds",
    "Time to the response's headers, by URL pattern name.", ["view"], buckets=LATENCY_BUCKETS)
proxy_pulls = Counter(
    "portal_proxy_pulls", "Proxy registry manifest and blob requests served or failed upstream.",
    ["app", "kind", "status"])
proxy_bytes = Counter(
    "portal_proxy_pull_bytes", "Bytes sent to customers by the proxy registry.", ["app", "kind"])
proxy_refusals = Counter(
    "portal_proxy_refusals", "Proxy registry requests refused, by app (when it exists) and reason.",
    ["app", "reason"])
# The proxy's blob cache (releases/proxy/blob_cache.py): lookups where the view asks it, fills
# where their writer thread settles them, removals where a file is unlinked.
proxy_blob_cache_lookups = Counter(
    "portal_proxy_blob_cache_lookups",
    "Proxy blob GETs and HEADs the blob cache was asked about (cache on): hit (served from the "
    "cache, or by the front server) or miss (went upstream).", ["app", "result"])
proxy_blob_cache_fills = Counter(
    "portal_proxy_blob_cache_fills",
    "Blob cache fills that started writing, by how they ended: landed, cut (the stream ended "
    "early), mismatch (digest or length wrong), disk_error (a write or rename failed).",
    ["outcome"])
proxy_blob_cache_removed = Counter(
    "portal_proxy_blob_cache_removed",
    "Blob cache files removed: evicted (least recently used) or corrupt (failed its check on a "
    "hit).", ["reason"])
task_runs = Counter(
    "portal_task_runs", "Celery task runs by task name and outcome.", ["task", "outcome"])
task_duration = Histogram(
    "portal_task_duration_seconds", "Celery task run time by task name.", ["task"],
    buckets=TASK_BUCKETS)
mirror_bytes = Counter(
    "portal_mirror_copied_bytes", "Blob bytes copied by mirror jobs (rate() gives bytes/s).")
mirror_throughput = Histogram(
    "portal_mirror_bytes_per_second", "Bytes per second of each finished mirror job that copied.",
    buckets=THROUGHPUT_BUCKETS)

# Functions run at scrape time that yield metric families read from the database: apps
# register theirs in AppConfig.ready() (``portal`` knows no app's models).
_scrape_collectors: list[Callable[[], Iterable[Metric]]] = []


def register_scrape_collector(collect: Callable[[], Iterable[Metric]]) -> None:
    if collect not in _scrape_collectors:
        _scrape_collectors.append(collect)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


class _Sources:
    """The recorded values (every process's, or this one's) and what is read at scrape time."""

    def collect(self):
        if multiprocess_dir():
            yield from MultiProcessCollector(None).collect()
        else:
            yield from PROCESS_REGISTRY.collect()
        yield from queue_depth()
        for collect in _scrape_collectors:
            yield from collect()


def scrape_registry() -> CollectorRegistry:
    """Every metric: what ``/metrics`` and the worker's metrics port serve."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Sources())
    return registry


def exposition() -> bytes:
    """Every metric in Prometheus' text format."""
    return generate_latest(scrape_registry())


def celery_queues() -> list[str]:
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


def queue_depth() -> Iterable[Metric]:
    """Messages waiting in each Celery queue (a Redis list per queue), and whether the broker
    answered; nothing when the broker is not Redis (the filesystem or in-memory transport)."""
    url = settings.CELERY_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        return
    up = GaugeMetricFamily("portal_broker_up", "1 when the Redis broker answered the scrape.")
    depth = GaugeMetricFamily("portal_queue_depth", "Messages waiting in a Celery queue.",
                              labels=["queue"])
    try:
        # Short timeouts: a scrape must answer while Redis is down (pages and pulls keep working).
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            lengths = [(queue, client.llen(queue)) for queue in celery_queues()]
        finally:
            client.close()
    except redis.RedisError:
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    for queue, length in lengths:
        depth.add_metric([queue], length)
    yield up
    yield depth
