"""The proxy registry's rules (sync): who may pull what, from where, and the pull log.

A customer pulls ``<proxy host>/proxy/<app slug>/<name>``; ``name`` is resolved to an upstream
repository by one rule: its first part is a team registry's Name first, else a host (it has a
dot), else Docker Hub (``nginx`` is ``docker.io/library/nginx``). A request is allowed only when

- HTTP Basic carries a license ID as username and password, and ``check_license`` accepts it
  for this app (exists, not archived, not expired, app not archived, the URL's app);
- ``name`` is in the app's allow-list: the proxied names of the images its promoted releases
  use, on any channel (``downstream.proxied_repositories``). We allow every channel's
  releases, not only the license's channel: a customer moved from Beta to Stable keeps
  running what Beta gave them, and the images are the vendor's to hand out to that app's
  customers either way. Tags and digests are not restricted (KOTS does not either);
- the allow-list and the resolution agree on the upstream repository, and that repository is
  on a registry linked to the team and available to the app, or on a public registry when the
  app proxies public images too.

Nothing else is reachable: no catalog, no other repository of the vendor's registry, no other
host. Failed authentications are counted per client address (``portal.throttle``, shared with
the update API and the customer sign-in); past ``PORTAL_PROXY_AUTH_FAILURE_LIMIT`` in five
minutes the address's failures get 429 until the window ends, while valid licenses still pull. The views (proxy_views.py) are async; everything here is sync ORM work that
they call through ``sync_to_async``, in one thread hop per request at most.

Per-request cost (docs/benchmarks.md, "Proxy registry"): a pull is ~14 requests with the same
credentials, so an allowed decision is kept in process memory for ``ACCESS_CACHE_SECONDS`` per
(hash of the Authorization header, app slug, name). Saving or deleting a customer, an app or a
registry, or changing a registry's apps, bumps a version that every entry is checked against,
so an archived or regenerated license made in this process stops at once; anything else (another
process, a queryset ``update()``) is bounded by the TTL. Refusals are never cached (failed logins
must be counted). The pull log is written by one
thread in batches (``PullLogWriter``), off the response path.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from portal import throttle
from registries.credentials import registry_pull_client
from registries.errors import RegistryError
from registries.oci.client import RegistryClient
from registries.reference import DOCKER_HUB, InvalidReference, Reference, canonical_registry

from .customer_portal import check_basic_auth
from .downstream import proxied_repositories, registries_for_app
from .models import App, Customer
from .proxy_models import PullEvent

logger = logging.getLogger(__name__)

ALLOW_LIST_TTL = 300  # seconds; the key changes anyway when releases or registries change
USED_EVERY = timedelta(minutes=1)
# How long an allowed decision is reused without the database (see the module docstring).
ACCESS_CACHE_SECONDS = 5.0
MAX_CACHED_DECISIONS = 4096


@dataclass
class Refusal:
    status: int
    code: str
    message: str
    retry_after: int | None = None  # seconds, for 429


@dataclass
class Access:
    customer: Customer
    app: App
    client: RegistryClient
    repository: str  # the upstream repository path
    image: str  # host/path, for the pull log
    name: str  # the path after /proxy/<slug>/
    registry_id: int | None


# --- throttling ---------------------------------------------------------------------------


def refuse_failure(address: str, refusal: Refusal) -> Refusal:
    """A failed login: counted, or 429 once the address is past the limit."""
    if throttle.is_throttled(address):
        seconds = throttle.retry_after(address)
        return Refusal(429, "TOOMANYREQUESTS", throttle.refusal_message(seconds), retry_after=seconds)
    throttle.count_failure(address)
    return refusal


# --- /v2/ ---------------------------------------------------------------------------------


def check_login(*, header: str, address: str) -> Refusal | None:
    """``GET /v2/``: any valid license may log in (which app is decided per repository)."""
    from .customer_portal import basic_credentials, check_license

    credentials = basic_credentials(header)
    if credentials is None:
        return Refusal(401, "UNAUTHORIZED", "Log in with your license ID as username and password.")
    username, password = credentials
    check = check_license(username) if username == password else None
    if check is None or not check.ok:
        status = 401 if check is None or check.status == 401 else 403
        message = check.error if check is not None else "Unknown license: check the license ID."
        return refuse_failure(address, Refusal(status, "UNAUTHORIZED" if status == 401 else "DENIED", message))
    return None


# --- repositories ---------------------------------------------------------------------------


def _allow_list(app: App) -> dict[str, Reference]:
    """``proxied_repositories(app)``, cached under a key that changes with what it reads."""
    from registries.models import ExternalRegistry

    from .proxy_models import ImageVerdict

    promotions = app.releases.filter(promoted_at__isnull=False).aggregate(
        n=Count("id"), last=Max("promoted_at"))
    registries = ExternalRegistry.objects.filter(team_id=app.team_id).aggregate(
        n=Count("id", distinct=True), last=Max("updated_at"), links=Count("apps"))
    verdicts = ImageVerdict.objects.filter(app=app).aggregate(last=Max("checked_at"))
    fingerprint = repr((app.pk, app.slug, app.proxy_public_images, sorted(promotions.items()),
                        sorted(registries.items()), verdicts["last"], settings.PORTAL_PROXY_HOST))
    key = "proxy-allow:" + hashlib.sha256(fingerprint.encode()).hexdigest()
    allowed = cache.get(key)
    if allowed is None:
        from .image_check import verdict_predicate

        allowed = proxied_repositories(app, is_proxied=verdict_predicate(app))
        cache.set(key, allowed, ALLOW_LIST_TTL)
    return allowed


def resolve(app: App, name: str, team_registries) -> tuple[Reference, object | None] | None:
    """The upstream repository of ``name`` (the path after /proxy/<slug>/) and its registry."""
    first, _, rest = name.partition("/")
    by_name = {r.name: r for r in team_registries if r.name}
    if first in by_name and rest:
        registry = by_name[first]
        return Reference(domain=registry.endpoint, path=rest), registry
    if "." in first and rest:
        domain, path = canonical_registry(first.lower()), rest
    else:
        domain, path = DOCKER_HUB, name if "/" in name else f"library/{name}"
    registry = next((r for r in team_registries if r.endpoint == domain), None)
    return Reference(domain=domain, path=path), registry


def authorize(*, header: str, address: str, app_slug: str, name: str) -> Access | Refusal:
    """May this request pull ``name`` of app ``app_slug``? With the upstream client if so.

    An allowed decision is remembered (``cached_access``) for ``ACCESS_CACHE_SECONDS``.
    """
    version = _decisions_version
    result = _authorize(header=header, address=address, app_slug=app_slug, name=name)
    if isinstance(result, Access):
        _remember(header=header, app_slug=app_slug, name=name, access=result, version=version)
    return result


def _authorize(*, header: str, address: str, app_slug: str, name: str) -> Access | Refusal:
    check = check_basic_auth(header, app_slug=app_slug)
    if not check.ok:
        code = "UNAUTHORIZED" if check.status == 401 else "DENIED"
        return refuse_failure(address, Refusal(check.status, code, check.error))
    customer = check.customer
    app = customer.app
    denied = Refusal(403, "DENIED", f"{name} is not an image of this application.")
    try:
        allowed = _allow_list(app).get(name)
    except InvalidReference:
        allowed = None
    if allowed is None:
        return denied
    from registries.models import ExternalRegistry

    team_registries = list(ExternalRegistry.objects.filter(team_id=app.team_id))
    upstream, registry = resolve(app, name, team_registries)
    if (upstream.domain, upstream.path) != (allowed.domain, allowed.path):
        return denied
    if registry is not None:
        available = registries_for_app(app).filter(pk=registry.pk).exists()
        if not available:
            return denied
    elif not app.proxy_public_images:
        return denied  # not linked: only public images, and only when the app proxies them
    try:
        client = registry_pull_client(registry=registry, endpoint=upstream.domain)
    except RegistryError as e:
        logger.warning("proxy: cannot log in to registry %s (%s)", getattr(registry, "pk", None),
                       e.code)
        return Refusal(502, "UNAVAILABLE", "The vendor's registry cannot be reached right now.")
    if registry is not None and (registry.last_used_at is None
                                 or registry.last_used_at < timezone.now() - USED_EVERY):
        registry.mark_used()  # at most once a minute: not one write per blob
    return Access(customer=customer, app=app, client=client, repository=upstream.path,
                  image=upstream.name(), name=name, registry_id=getattr(registry, "pk", None))


# --- the decision cache ----------------------------------------------------------------------

_decisions: dict[tuple, tuple[float, int, Access]] = {}
_decisions_lock = threading.Lock()
_decisions_version = 0


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


def forget_decisions(**kwargs) -> None:
    """Every cached decision is stale: now, and again when the transaction commits (a request
    reading the old rows before the commit cannot store a decision that outlives it)."""

    def bump():
        global _decisions_version
        with _decisions_lock:
            _decisions_version += 1
            _decisions.clear()

    bump()
    transaction.on_commit(bump, robust=True)


def _connect_signals() -> None:
    from registries.models import ExternalRegistry

    for model in (Customer, App, ExternalRegistry):
        post_save.connect(forget_decisions, sender=model, dispatch_uid=f"proxy-forget-{model}")
        post_delete.connect(forget_decisions, sender=model,
                            dispatch_uid=f"proxy-forget-del-{model}")
    m2m_changed.connect(forget_decisions, sender=ExternalRegistry.apps.through,
                        dispatch_uid="proxy-forget-registry-apps")


_connect_signals()


# --- the pull log ---------------------------------------------------------------------------


def pull_event(*, access: Access, reference: str, kind: str, method: str, status: int,
               size: int) -> PullEvent:
    return PullEvent(app_id=access.app.pk, customer_id=access.customer.pk,
                     registry_id=access.registry_id,
                     image=access.image[:512], reference=reference[:200], kind=kind,
                     method=method, status=status, bytes=size)


_STOP = object()


class PullLogWriter:
    """One thread writes the pull log in batches (``bulk_create``), off the response path.

    ``put`` never blocks and never touches the database, so a request neither waits for the
    write nor loses its row when the client hangs up (Django then cancels the response task).
    A single writer means no two pull-log writers ever compete for SQLite's lock. A failed
    batch is retried with back-off; rows that still cannot be written are dropped with a
    warning, never failing a pull. ``flush`` waits until what was put is written: the proxy
    flushes it when the server stops (the ASGI lifespan shutdown, ``proxy_views``), and an
    ``atexit`` handler when the interpreter exits normally.
    """

    BATCH = 500
    RETRIES = 6

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._registered = False

    def put(self, event: PullEvent) -> None:
        self._start()
        self._queue.put(event)

    def flush(self, timeout: float = 30) -> bool:
        """Wait until every row put before this call is written (or dropped)."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="pull-log-writer",
                                            daemon=True)
            self._thread.start()
            if not self._registered:
                atexit.register(self.close)
                self._registered = True

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                item = self._queue.get()
                batch, done = [], []
                while True:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, threading.Event):
                        done.append(item)
                    else:
                        batch.append(item)
                    if len(batch) >= self.BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._write(batch)
                    except Exception:  # the writer must outlive any one batch
                        logger.exception("pull log: %d rows dropped", len(batch))
                for event in done:
                    event.set()
        finally:
            connection.close()

    def _write(self, batch: list[PullEvent]) -> None:
        for attempt in range(self.RETRIES):
            try:
                PullEvent.objects.bulk_create(batch)
                return
            except IntegrityError:
                # A customer or app deleted meanwhile: write the others one by one.
                connection.close()
                self._write_each(batch)
                return
            except DatabaseError as e:
                logger.warning("pull log: writing %d rows failed (%s), attempt %d",
                               len(batch), type(e).__name__, attempt + 1)
                connection.close()
                time.sleep(0.05 * 2 ** attempt)
        logger.error("pull log: %d rows dropped after %d attempts", len(batch), self.RETRIES)

    def _write_each(self, batch: list[PullEvent]) -> None:
        for event in batch:
            try:
                event.save(force_insert=True)
            except DatabaseError:
                connection.close()
                logger.warning("pull log: one row dropped (its customer, app or registry is gone)")


pull_log_writer = PullLogWriter()


def log_pull(*, access: Access, reference: str, kind: str, method: str, status: int,
             size: int) -> None:
    """Queue one pull log row (``PullLogWriter``); never blocks, never fails the pull."""
    pull_log_writer.put(pull_event(access=access, reference=reference, kind=kind, method=method,
                                   status=status, size=size))
