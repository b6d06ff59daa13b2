"""The proxy registry's decision cache: an allowed decision reused for a few seconds.

A pull is ~14 requests with the same credentials, so an allowed decision is kept in process
memory for ``ACCESS_CACHE_SECONDS`` per (hash of the Authorization header, app slug, name), with
what the license may pull of that repository. Saving or deleting a customer (its channel), an
app, a registry, a promotion (a promotion or a demotion), a release or a pin, changing a
registry's apps, or a grace period starting or ending (``grace_changed``) bumps a version that every entry is checked against (``connect_signals``, from ``ProxyConfig.ready()``),
so an archived or regenerated license made in this process stops at once. On commit the change
is also bumped in the shared version (``portal.shared.Version``: Redis when REDIS_URL is set),
which a thread of every serving process watches: the other processes drop their decisions
within about half a second, while a cache hit still compares local numbers only. Anything else
(a queryset ``update()``, Redis down) is bounded by the TTL. Refusals are never cached
(failed logins must be counted). ``authorize`` is the proxy's way in: ``access.decide`` asks
the database, and what it allows is remembered here.
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from portal.shared import Version
from registries.models import ExternalRegistry
from releases.entitlements.grace import grace_changed
from releases.entitlements.models import ImagePin, PulledImage
from releases.models import App, Customer, Promotion, Release

from .access import Access, Refusal, decide

# How long an allowed decision is reused without the database (see the module docstring).
ACCESS_CACHE_SECONDS = 5.0
MAX_CACHED_DECISIONS = 4096


# --- the decision cache ----------------------------------------------------------------------

_decisions: dict[tuple, tuple[float, int, Access]] = {}
_decisions_lock = threading.Lock()
_decisions_version = 0
# Bumped by every process's invalidations; watched once this process has decided (authorize).
_shared_version = Version("proxy-decisions")


def authorize(*, header: str, address: str, app_slug: str, name: str) -> Access | Refusal:
    """May this request pull ``name`` of app ``app_slug``? With the upstream client if so.

    An allowed decision is remembered (``cached_access``) for ``ACCESS_CACHE_SECONDS``.
    """
    _shared_version.watch(_forget_locally)
    version = _decisions_version
    result = decide(header=header, address=address, app_slug=app_slug, name=name)
    if isinstance(result, Access):
        _remember(header=header, app_slug=app_slug, name=name, access=result, version=version)
    return result


def _decision_key(header: str, app_slug: str, name: str) -> tuple:
    # A hash, not the header: the license ID is a credential.
    return hashlib.sha256(header.encode()).digest(), app_slug, name


def _remember(*, header: str, app_slug: str, name: str, access: Access, version: int) -> None:
    expires = time.monotonic() + ACCESS_CACHE_SECONDS
    with _decisions_lock:
        if len(_decisions) >= MAX_CACHED_DECISIONS:
            now = time.monotonic()
            for key in [k for k, v in _decisions.items() if v[0] <= now]:
                del _decisions[key]
            while len(_decisions) >= MAX_CACHED_DECISIONS:
                del _decisions[next(iter(_decisions))]  # the oldest
        _decisions[_decision_key(header, app_slug, name)] = (expires, version, access)


def cached_access(*, header: str, app_slug: str, name: str) -> Access | None:
    """A decision ``authorize`` allowed less than ``ACCESS_CACHE_SECONDS`` ago, if nothing it
    read has changed since (in this process); no database, no thread."""
    entry = _decisions.get(_decision_key(header, app_slug, name))
    if entry is None:
        return None
    expires, version, access = entry
    if (expires <= time.monotonic() or version != _decisions_version
            or access.customer.is_expired):
        return None
    return access


def _forget_locally() -> None:
    global _decisions_version
    with _decisions_lock:
        _decisions_version += 1
        _decisions.clear()


def _forget_everywhere() -> None:
    _forget_locally()
    _shared_version.bump()


def forget_decisions(**kwargs) -> None:
    """Every cached decision is stale: now, and again when the transaction commits (a request
    reading the old rows before the commit cannot store a decision that outlives it), then in
    the other processes too (they would read the old rows before the commit)."""
    _forget_locally()
    transaction.on_commit(_forget_everywhere, robust=True)


def connect_signals() -> None:
    """Connected in ``ProxyConfig.ready()``."""
    for model in (Customer, App, ExternalRegistry, Promotion, Release, ImagePin, PulledImage):
        post_save.connect(forget_decisions, sender=model, dispatch_uid=f"proxy-forget-{model}")
        post_delete.connect(forget_decisions, sender=model,
                            dispatch_uid=f"proxy-forget-del-{model}")
    m2m_changed.connect(forget_decisions, sender=ExternalRegistry.apps.through,
                        dispatch_uid="proxy-forget-registry-apps")
    grace_changed.connect(forget_decisions, dispatch_uid="proxy-forget-grace")
