"""The ECR token cache shared through Redis (db 15): one fetch for many callers, encrypted,
and process-local without Redis."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from cryptography.fernet import Fernet

from portal import shared
from registries import ecr

KEYS = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cret-key-material",
        "region": "us-east-1", "cache_key": "registry-1-1"}


@pytest.fixture
def in_redis(in_redis):
    """The shared Redis, with no ECR token cached in this process."""
    ecr.clear_token_cache()
    return in_redis
    ecr.clear_token_cache()


class Fetcher:
    """Stands in for GetAuthorizationToken (slow, as a network call is), counting its calls."""

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> ecr.Token:
        with self.lock:
            self.calls += 1
            n = self.calls
        time.sleep(0.2)
        now = dt.datetime.now(dt.UTC)
        return ecr.Token("AWS", f"token-{n}", now + dt.timedelta(hours=12),
                         now + dt.timedelta(hours=11))


def test_callers_without_a_common_process_cache_share_one_fetch(in_redis):
    fetch, results = Fetcher(), []
    key = ecr._key(*KEYS.values())
    # _shared_token directly: each thread is as alone as a process with an empty cache.
    threads = [threading.Thread(target=lambda: results.append(ecr._shared_token(key, fetch)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fetch.calls == 1
    assert {t.password for t in results} == {"token-1"}
    assert in_redis.keys("*lock*") == []  # released


def test_the_token_is_stored_encrypted_and_keyed_without_the_secret(in_redis, settings):
    ecr._shared_token(ecr._key(*KEYS.values()), Fetcher())
    (name,) = in_redis.keys("portal:ecr-token:*")
    assert KEYS["secret_access_key"].encode() not in name
    assert b"token-1" not in in_redis.get(name)
    # Other encryption keys cannot read it: the token is fetched again, not misread.
    settings.PORTAL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    fetch = Fetcher()
    assert ecr._shared_token(ecr._key(*KEYS.values()), fetch).password == "token-1"
    assert fetch.calls == 1


def test_forgetting_a_refused_token_drops_it_from_redis_too(in_redis, monkeypatch):
    monkeypatch.setattr(ecr, "fetch_token", lambda **kwargs: Fetcher()())
    assert ecr.get_registry_credentials(**KEYS) == ("AWS", "token-1")
    ecr.forget_registry_credentials(**KEYS)
    assert in_redis.keys("portal:ecr-token:*") == []


def test_without_redis_the_token_stays_in_this_process(settings):
    settings.REDIS_URL = ""
    shared.reset()
    ecr.clear_token_cache()
    fetch = Fetcher()
    key = ecr._key(*KEYS.values())
    assert ecr._shared_token(key, fetch).password == "token-1"
    assert ecr._shared_token(key, fetch).password == "token-2"  # no shared copy to find
    ecr.clear_token_cache()
