"""portal.shared and the license throttle on it: in Redis (db 15) when REDIS_URL is set, in this
process without it or while Redis is down, never failing the caller."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from portal import shared, throttle
from tests.support.servers import free_port

REDIS_DB = 15



@pytest.fixture
def locally(settings):
    settings.REDIS_URL = ""
    shared.reset()
    yield
    shared.reset()


def test_it_counts_in_this_process_without_redis(locally):
    assert shared.count("k", 60) == (1, 60)
    assert shared.count("k", 60)[0] == 2
    assert shared.peek("k")[0] == 2
    assert 0 < shared.peek("k")[1] <= 60
    assert shared.peek("other") == (0, 0)


def test_it_counts_in_redis_with_the_window_set_once(in_redis):
    assert shared.count("k", 60) == (1, 60)
    in_redis.expire("portal:k", 30)  # a later count must not stretch the window
    shared.reset()  # a new connection, as another process has
    count, seconds = shared.count("k", 60)
    assert count == 2 and 25 <= seconds <= 30
    assert int(in_redis.get("portal:k")) == 2


def test_counts_from_many_threads_are_not_lost(in_redis):
    threads = [threading.Thread(target=lambda: [shared.count("k", 60) for _ in range(20)])
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(in_redis.get("portal:k")) == 100


def test_a_redis_outage_falls_back_to_this_process_and_says_so_once(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/{REDIS_DB}"  # nobody listens
    shared.reset()
    try:
        with caplog.at_level(logging.WARNING, logger="portal.shared"):
            started = time.monotonic()
            assert shared.count("k", 60)[0] == 1
            assert shared.count("k", 60)[0] == 2  # no second connection attempt
            assert time.monotonic() - started < 2
        warnings = [r for r in caplog.records if r.name == "portal.shared"]
        assert len(warnings) == 1 and "127.0.0.1" not in warnings[0].getMessage()
    finally:
        shared.reset()


@pytest.mark.parametrize("where", ["locally", "in_redis"])
def test_the_throttle_refuses_past_the_limit_with_seconds_to_wait(where, request, settings):
    request.getfixturevalue(where)
    settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT = 3
    assert [throttle.record_failure("10.0.0.1") for _ in range(3)] == [None] * 3
    assert throttle.is_throttled("10.0.0.1")
    seconds = throttle.record_failure("10.0.0.1")
    assert seconds is not None and 0 < seconds <= throttle.WINDOW
    assert 0 < throttle.retry_after("10.0.0.1") <= throttle.WINDOW
    assert throttle.record_failure("10.0.0.2") is None


def test_the_throttle_keys_never_hold_the_address(in_redis):
    throttle.record_failure("10.9.8.7")
    assert [k for k in in_redis.keys("*") if b"10.9.8.7" in k] == []


def test_a_watcher_hears_another_process_bump_the_version(in_redis):
    heard = threading.Event()
    version = shared.Version("test-watch")
    version.watch(heard.set)
    assert not heard.wait(shared.WATCH_SECONDS * 2)  # nothing changed yet
    other = shared.Version("test-watch")  # another process's object, same key
    other.bump()
    assert heard.wait(2)


def test_without_redis_nothing_is_watched(locally):
    version = shared.Version("test-local")
    version.watch(lambda: None)
    version.bump()  # no error, no thread
    assert version._thread is None
