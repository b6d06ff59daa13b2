# ruff: noqa: F811  (fixtures imported from test_cache.py)
"""The decision cache across processes: a change committed in one process empties the others'
caches through the shared version in Redis (db 15); a cached hit itself never asks Redis."""

from __future__ import annotations

import time

from portal import shared
from releases.proxy import decisions
from tests.releases.proxy.test_cache import cached, registry, remembered  # noqa: F401

KEY = "portal:version:proxy-decisions"



def test_a_change_committed_here_bumps_the_shared_version(in_redis, customer,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        customer.archived_at = customer.created_at
        customer.save()
    assert int(in_redis.get(KEY)) == 1


def test_another_process_bumping_the_version_empties_this_cache(in_redis, customer, remembered):
    decisions._shared_version.watch(decisions._forget_locally)  # as authorize() does
    in_redis.incr(KEY)  # another process committed a change
    deadline = time.monotonic() + 2
    while cached(remembered, customer) is not None:
        assert time.monotonic() < deadline, "the cached decision outlived the shared bump"
        time.sleep(0.01)


def test_a_cache_hit_asks_redis_nothing(in_redis, customer, remembered, monkeypatch):
    def no_redis():
        raise AssertionError("a cache hit reached Redis")

    monkeypatch.setattr(shared, "client", no_redis)
    assert cached(remembered, customer) is not None
