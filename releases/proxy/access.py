"""The proxy registry's rules (sync): who may pull what, and from where.

A customer pulls ``<proxy host>/proxy/<app slug>/<name>``; ``name`` is resolved to an upstream
repository by one rule: its first part is a team registry's Name first, else a host (it has a
dot), else Docker Hub (``nginx`` is ``docker.io/library/nginx``). A request is allowed only when

- HTTP Basic carries a license ID as username and password, and ``check_license`` accepts it
  for this app (exists, not archived, not expired, app not archived, the URL's app);
- ``name`` is in the app's allow-list: the proxied names of the images its promoted releases
  use, on any channel (``downstream.proxied_repositories``, read from their files: nothing is
  rendered). We allow every channel's releases, not only the license's channel: a customer
  moved from Beta to Stable keeps running what Beta gave them, and the images are the vendor's
  to hand out to that app's customers either way. Tags and digests are not restricted (KOTS does not either);
- the allow-list and the resolution agree on the upstream repository, and that repository is
  on a registry linked to the team and available to the app, or on a public registry when the
  app proxies public images too.

Nothing else is reachable: no catalog, no other repository of the vendor's registry, no other
host. Failed authentications are counted per client address (``portal.throttle``, shared with
the update API and the customer sign-in); past ``PORTAL_PROXY_AUTH_FAILURE_LIMIT`` in five
minutes the address's failures get 429 until the window ends, while valid licenses still pull. The views (views.py) are async; everything here is sync ORM work that
they call through ``sync_to_async``, in one thread hop per request at most.

Per-request cost (docs/benchmarks.md, "Proxy registry"): an allowed decision is reused for a
few seconds (decisions.py); the pull log is written by one thread in batches (pull_log.py),
off the response path.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.utils import timezone

from portal import throttle
from registries.credentials import registry_pull_client
from registries.errors import RegistryError
from registries.models import ExternalRegistry
from registries.oci.client import RegistryClient
from registries.reference import InvalidReference, Reference

from ..customer_portal.access import basic_credentials, check_basic_auth
from ..downstream import proxied_repositories
from ..entitlements.upstream import resolve
from ..image_check.models import ImageVerdict
from ..models import App, Customer

logger = logging.getLogger(__name__)

ALLOW_LIST_TTL = 300  # seconds; the key changes anyway when releases or registries change
USED_EVERY = timedelta(minutes=1)


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
    seconds = throttle.record_failure(address)
    if seconds is not None:
        return Refusal(429, "TOOMANYREQUESTS", throttle.refusal_message(seconds), retry_after=seconds)
    return refusal


# --- /v2/ ---------------------------------------------------------------------------------


def check_login(*, header: str, address: str) -> Refusal | None:
    """``GET /v2/``: any valid license may log in (which app is decided per repository)."""
    if basic_credentials(header) is None:
        # Every client probes /v2/ without credentials first: a challenge, not a failed login.
        return Refusal(401, "UNAUTHORIZED", "Log in with your license ID as username and password.")
    check = check_basic_auth(header, app_slug=None)
    if not check.ok:
        code = "UNAUTHORIZED" if check.status == 401 else "DENIED"
        return refuse_failure(address, Refusal(check.status, code, check.error))
    return None


# --- repositories ---------------------------------------------------------------------------


def _registries(app: App) -> tuple[list[ExternalRegistry], list[ExternalRegistry]]:
    """The team's registries, and those of them this app may use (``registries_for_app``):
    the one question a decision asks about registries."""
    team_registries = list(ExternalRegistry.objects.filter(team_id=app.team_id).annotate(
        app_links=Count("apps"), this_app=Count("apps", filter=Q(apps__pk=app.pk))))
    available = [r for r in team_registries if r.app_links == 0 or r.this_app]
    return team_registries, available


def _allow_list(app: App, team_registries: list[ExternalRegistry],
                available: list[ExternalRegistry]) -> dict[str, Reference]:
    """``proxied_repositories(app)``, cached under a key that changes with what it reads."""
    promotions = app.releases.filter(promoted_at__isnull=False).aggregate(
        n=Count("id"), last=Max("promoted_at"))
    registries = {"n": len(team_registries),
                  "last": max((r.updated_at for r in team_registries), default=None),
                  "links": sum(r.app_links for r in team_registries)}
    verdicts = ImageVerdict.objects.filter(app=app).aggregate(last=Max("checked_at"))
    fingerprint = repr((app.pk, app.slug, app.proxy_public_images, sorted(promotions.items()),
                        sorted(registries.items()), verdicts["last"], settings.PORTAL_PROXY_HOST))
    key = "proxy-allow:" + hashlib.sha256(fingerprint.encode()).hexdigest()
    allowed = cache.get(key)
    if allowed is None:
        allowed = proxied_repositories(app, registries=available)
        cache.set(key, allowed, ALLOW_LIST_TTL)
    return allowed


def decide(*, header: str, address: str, app_slug: str, name: str) -> Access | Refusal:
    """May this request pull ``name`` of app ``app_slug``? With the upstream client if so.
    From the database; ``decisions.authorize`` remembers what this allows."""
    check = check_basic_auth(header, app_slug=app_slug)
    if not check.ok:
        code = "UNAUTHORIZED" if check.status == 401 else "DENIED"
        return refuse_failure(address, Refusal(check.status, code, check.error))
    customer = check.customer
    app = customer.app
    denied = Refusal(403, "DENIED", f"{name} is not an image of this application.")
    team_registries, available = _registries(app)
    try:
        allowed = _allow_list(app, team_registries, available).get(name)
    except InvalidReference:
        allowed = None
    if allowed is None:
        return denied
    upstream, registry = resolve(app, name, team_registries)
    if (upstream.domain, upstream.path) != (allowed.domain, allowed.path):
        return denied
    if registry is not None:
        if registry.pk not in {r.pk for r in available}:
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
