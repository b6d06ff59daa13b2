"""State the portal's processes agree on: Redis when ``REDIS_URL`` is set, else this process.

Several web processes and Celery workers serve one installation; what must not differ between
them lives here, behind three small tools that fall back to process-local state when Redis is
not configured (``make run`` on the filesystem broker) or not answering (a request is never
failed because Redis is down):

- ``count(key, window)``: a failure counter over a fixed window (the throttles). In Redis, one
  transaction sets the key to 0 with its expiry if it is missing, increments it and reads its
  time to live; locally, Django's default cache (per process).
- ``Version``: a number bumped when something changes (``bump``) and watched by every process
  (``watch``): a daemon thread reads it every ``WATCH_SECONDS`` and calls the watcher's callback
  when it moved, so a reader on the request path compares local numbers only.
- ``client()``: the Redis connection itself (the ECR token cache keeps encrypted tokens and a
  lock in it), or None.

After a Redis error the connection is left alone for ``DOWN_SECONDS`` so that a Redis outage
costs one short timeout per process now and then, not one per request. Keys are prefixed with
``portal:``; none holds a secret, a license ID or a client address in clear.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

PREFIX = "portal:"
TIMEOUT = 0.5  # seconds for one Redis command: a pull or a sign-in waits at most this
DOWN_SECONDS = 5.0
WATCH_SECONDS = 0.25

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url = ""
_down_until = 0.0


def client() -> redis.Redis | None:
    """The shared Redis connection pool, or None (no REDIS_URL, or Redis failed just now)."""
    global _client, _client_url
    url = settings.REDIS_URL
    if not url or time.monotonic() < _down_until:
        return None
    if _client is None or _client_url != url:
        with _lock:
            if _client is None or _client_url != url:
                _client = redis.Redis.from_url(url, socket_timeout=TIMEOUT,
                                               socket_connect_timeout=TIMEOUT)
                _client_url = url
    return _client


def failed(error: Exception) -> None:
    """Redis did not answer: use process-local state for ``DOWN_SECONDS``."""
    global _down_until
    first = time.monotonic() >= _down_until
    _down_until = time.monotonic() + DOWN_SECONDS
    if first:  # the error's text may hold the URL, which may hold a password
        logger.warning("shared state: Redis unavailable (%s), using this process's state for "
                       "%.0f s", type(error).__name__, DOWN_SECONDS)


def reset() -> None:
    """Forget the connection and any outage (tests, after settings change)."""
    global _client, _client_url, _down_until
    with _lock:
        _client, _client_url, _down_until = None, "", 0.0


# --- counters ---------------------------------------------------------------------------------


def count(key: str, window: int) -> tuple[int, int]:
    """Add one to ``key`` (created with a ``window``-second life on its first count); return
    (the count, seconds until the window ends)."""
    r = client()
    if r is not None:
        try:
            with r.pipeline(transaction=True) as pipe:
                pipe.set(PREFIX + key, 0, ex=window, nx=True)
                pipe.incr(PREFIX + key)
                pipe.ttl(PREFIX + key)
                _, value, ttl = pipe.execute()
            return int(value), max(int(ttl), 1)
        except redis.RedisError as e:
            failed(e)
    return _count_locally(key, window)


def peek(key: str) -> tuple[int, int]:
    """(the count of ``key``, seconds until its window ends); (0, 0) when there is none."""
    r = client()
    if r is not None:
        try:
            with r.pipeline(transaction=True) as pipe:
                pipe.get(PREFIX + key)
                pipe.ttl(PREFIX + key)
                value, ttl = pipe.execute()
            return int(value or 0), max(int(ttl), 0)
        except redis.RedisError as e:
            failed(e)
    until = cache.get(PREFIX + key + ":until")
    return cache.get(PREFIX + key) or 0, max(int(until - time.time()) + 1, 1) if until else 0


def _count_locally(key: str, window: int) -> tuple[int, int]:
    key = PREFIX + key
    if cache.add(key, 1, window):
        cache.set(key + ":until", time.time() + window, window)
        return 1, window
    try:
        value = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window)
        cache.set(key + ":until", time.time() + window, window)
        return 1, window
    until = cache.get(key + ":until")
    return value, max(int(until - time.time()) + 1, 1) if until else window


# --- versions ---------------------------------------------------------------------------------


class Version:
    """A number every process watches; see the module docstring."""

    def __init__(self, name: str):
        self.key = PREFIX + "version:" + name
        self._callbacks: list[Callable[[], None]] = []
        self._seen: bytes | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def bump(self) -> None:
        """Tell the other processes (this one has acted already)."""
        r = client()
        if r is None:
            return
        try:
            r.incr(self.key)
        except redis.RedisError as e:
            failed(e)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in a daemon thread) whenever another process bumps the version.

        The first read happens here, before this returns: a change made after it is seen by
        the watcher within ``WATCH_SECONDS`` (plus one read), one made before it is already in
        the database the caller reads next.
        """
        if not settings.REDIS_URL:
            return  # one process: nothing else bumps it
        if self._thread is not None and self._thread.is_alive() and callback in self._callbacks:
            return
        with self._lock:
            if callback not in self._callbacks:
                self._callbacks.append(callback)
            if self._thread is not None and self._thread.is_alive():
                return
            self._seen = self._read()
            self._thread = threading.Thread(target=self._run, name=f"watch-{self.key}",
                                            daemon=True)
            self._thread.start()

    def _read(self) -> bytes | None:
        r = client()
        if r is None:
            return self._seen
        try:
            return r.get(self.key) or b"0"
        except redis.RedisError as e:
            failed(e)
            return self._seen

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            value = self._read()
            if value != self._seen:
                self._seen = value
                for callback in list(self._callbacks):
                    try:
                        callback()
                    except Exception:  # the watcher must outlive any one callback
                        logger.exception("shared state: a watcher of %s failed", self.key)
