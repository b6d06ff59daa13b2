"""Failed license logins per client address: one count for every door that takes a license ID.

The proxy registry's login, the update API and the customer sign-in share it. Past
``PORTAL_PROXY_AUTH_FAILURE_LIMIT`` failures in ``WINDOW`` seconds, an address's further
*failures* are answered 429 until the window ends; a valid license ID from that address still
works, because many installs sit behind one outbound address and one broken install must not
lock the others out (license IDs have 160 bits: the throttle is about load, not guessing).

The counts live in Django's default cache, which is per process today; serving from several
processes only needs a shared cache here. The client address is ``REMOTE_ADDR``, which uvicorn
takes from ``X-Forwarded-For`` only for ``PORTAL_TRUSTED_PROXIES``.

The vendor API counts with the same helpers under scopes of its own: failed token guesses per
address (``TOKEN_FAILURES``, limit ``PORTAL_API_TOKEN_FAILURE_LIMIT``) and calls per token
(``API_CALLS``, ``PORTAL_API_RATE_LIMIT`` a minute).
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache

WINDOW = 300  # seconds
LICENSE_FAILURES = "license-failures"
TOKEN_FAILURES = "token-failures"
API_CALLS = "api-calls"


def _limit(scope: str) -> int:
    return {
        LICENSE_FAILURES: settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT,
        TOKEN_FAILURES: settings.PORTAL_API_TOKEN_FAILURE_LIMIT,
        API_CALLS: settings.PORTAL_API_RATE_LIMIT,
    }[scope]


def _window(scope: str) -> int:
    return 60 if scope == API_CALLS else WINDOW


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(address: str, scope: str = LICENSE_FAILURES) -> str:
    return f"{scope}:" + hashlib.sha256(address.encode()).hexdigest()[:32]


def is_throttled(address: str, scope: str = LICENSE_FAILURES) -> bool:
    return (cache.get(_key(address, scope)) or 0) >= _limit(scope)


def count_failure(address: str, scope: str = LICENSE_FAILURES) -> None:
    key, window = _key(address, scope), _window(scope)
    if cache.add(key, 1, window):
        cache.set(key + ":until", time.time() + window, window)
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, window)
        cache.set(key + ":until", time.time() + window, window)


def record_failure(address: str, scope: str = LICENSE_FAILURES) -> int | None:
    """A failed license login from ``address``: counted, and None; or, once the address is past
    the limit, the seconds until it may fail again (the caller answers 429 with them).

    ``scope`` counts something else the same way (``address`` is then any key: a token's prefix
    for ``API_CALLS``)."""
    if is_throttled(address, scope):
        return retry_after(address, scope)
    count_failure(address, scope)
    return None


def retry_after(address: str, scope: str = LICENSE_FAILURES) -> int:
    """Seconds until the address's window ends (at least 1)."""
    until = cache.get(_key(address, scope) + ":until")
    return max(1, math.ceil(until - time.time())) if until else _window(scope)


def refusal_message(seconds: int) -> str:
    wait = f"{math.ceil(seconds / 60)} minutes" if seconds > 60 else f"{seconds} seconds"
    return f"Too many failed attempts with a license ID from this address: try again in {wait}."
