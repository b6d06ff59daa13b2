"""The proxy registry's rules (sync): who may pull what, and from where.

A customer pulls ``<proxy host>/proxy/<app slug>/<name>``; ``name`` is resolved to an upstream
repository by one rule: its first part is a team registry's Name first, else a host (it has a
dot), else Docker Hub (``nginx`` is ``docker.io/library/nginx``). A request is allowed only when

- HTTP Basic carries a license ID as username and password, and ``check_license`` accepts it
  for this app (exists, not archived, not expired, app not archived, the URL's app);
- ``name`` resolves to the upstream repository of an image the license is entitled to
  (``entitlements.selectors``: the pins of the releases live on the customer's channel, and the
  pins it already pulled that are in their grace period), or, for a live release promoted
  before pins existed (a legacy release), ``name`` is in the allow-list of those releases'
  proxied names (``_legacy_allow_list``, read from their files: nothing is rendered);
- a name that resolves to the portal's own proxy host is refused (never loop back into
  ourselves), and the repository must be on a registry linked to the team and available to the
  app, or on a public registry when the app proxies public images too.

Each request then checks its reference against the decision's ``RepositoryEntitlement``
(``manifest_target``, ``blob_refusal``: set and dict lookups): a digest must be in an entitled
pin's tree, a tag resolves to the pin of the newest live release using it and is fetched by the
pinned digest; anything else in the repository is 403 "not part of a release on your channel".
A legacy release's repository allows any tag or digest, as before pins.

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
from dataclasses import dataclass, field
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
from registries.oci.tree import manifest_tree
from registries.reference import InvalidReference, Reference

from .. import kustomize
from ..customer_portal.access import basic_credentials, check_basic_auth
from ..entitlements.models import ImagePin, PinSource
from ..entitlements.selectors import RepositoryEntitlement, TagPin, entitlement
from ..entitlements.upstream import resolve
from ..image_check.models import ImageVerdict
from ..image_check.selectors import verdict_predicate
from ..licenses import proxy_domain
from ..models import App, Customer, Promotion, ReleaseFile

logger = logging.getLogger(__name__)

ALLOW_LIST_TTL = 300  # seconds; the key changes anyway when releases or registries change
USED_EVERY = timedelta(minutes=1)
NOT_ON_CHANNEL = "not part of a release on your channel"


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
    # What the license may pull of this repository; empty: nothing (tests build bare Accesses).
    entitlement: RepositoryEntitlement = field(default_factory=RepositoryEntitlement)
    # The linked registry lets customers fetch blobs from where it redirects (redirects.py).
    direct_downloads: bool = False


@dataclass(frozen=True)
class ManifestTarget:
    """What to fetch upstream for a manifest request."""

    reference: str  # the pinned digest, or the tag as asked (unresolved pin, legacy release)
    tag: str = ""  # the tag asked for, when it resolved to a pin
    pin: TagPin | None = None


def not_on_channel(reference: str) -> Refusal:
    return Refusal(403, "DENIED", f"{reference} is {NOT_ON_CHANNEL}.")


def manifest_target(access: Access, reference: str) -> ManifestTarget | Refusal:
    """A tag resolves to its pin (fetched by the pinned digest); a digest must be entitled."""
    allowed = access.entitlement
    if reference.startswith("sha256:"):
        if allowed.allows_digest(reference):
            return ManifestTarget(reference=reference)
        return not_on_channel(reference)
    pin = allowed.tag_pin(reference)
    if pin is not None:
        return ManifestTarget(reference=pin.digest or reference, tag=reference, pin=pin)
    if allowed.legacy:
        return ManifestTarget(reference=reference)
    return not_on_channel(f"{access.name}:{reference}")


def blob_refusal(access: Access, digest: str) -> Refusal | None:
    """None when a manifest the license may pull references the blob."""
    return None if access.entitlement.allows_digest(digest) else not_on_channel(digest)


def allowed_tags(access: Access) -> list[str] | None:
    """The tags the license's channel allows; None: a legacy release allows every upstream tag."""
    return None if access.entitlement.legacy else sorted(access.entitlement.tags)


def freeze_first_pull(access: Access, pin: TagPin, digest: str) -> str:
    """Pin an image unresolved at promotion to ``digest``, the first 200 its tag gave, with its
    tree; returns the pin's digest (another pull's if it froze it first: both then agree)."""
    try:
        tree = manifest_tree(access.client, access.repository, digest)
    except RegistryError as e:
        # Served unpinned this once; the next pull tries again.
        logger.warning("proxy: cannot read the tree of a first pull (%s)", e.code)
        return ""
    top = tree[0]
    ImagePin.objects.filter(pk=pin.pin_id, digest="").update(
        digest=digest, media_type=top["mediaType"], size=top["size"], tree=tree,
        source=PinSource.FIRST_PULL, pinned_at=timezone.now())
    return ImagePin.objects.values_list("digest", flat=True).get(pk=pin.pin_id)


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


def _legacy_allow_list(app: App, release_ids: list[int], team_registries: list[ExternalRegistry],
                       available: list[ExternalRegistry]) -> dict[str, Reference]:
    """{proxied name: upstream image} of the live releases promoted before pins existed,
    read from their files (as ``downstream.proxied_repositories``), cached under a key that
    changes with what it reads (which releases are live: promotions and demotions)."""
    promotions = Promotion.objects.filter(channel__app=app).aggregate(
        n=Count("id"), last=Max("created_at"), demoted=Count("demoted_at"),
        last_demoted=Max("demoted_at"))
    registries = {"n": len(team_registries),
                  "last": max((r.updated_at for r in team_registries), default=None),
                  "links": sum(r.app_links for r in team_registries)}
    verdicts = ImageVerdict.objects.filter(app=app).aggregate(last=Max("checked_at"))
    fingerprint = repr((app.pk, app.slug, app.proxy_public_images, sorted(release_ids),
                        sorted(promotions.items()), sorted(registries.items()), verdicts["last"],
                        settings.PORTAL_PROXY_HOST))
    key = "proxy-allow:" + hashlib.sha256(fingerprint.encode()).hexdigest()
    allowed = cache.get(key)
    if allowed is None:
        files = list(ReleaseFile.objects.filter(release_id__in=release_ids)
                     .order_by("release_id", "position", "name").values_list("name", "content"))
        allowed = kustomize.proxied_repositories(
            files, app_slug=app.slug, proxy_host=proxy_domain(),
            is_proxied=verdict_predicate(app, registries=available),
            registry_names={r.endpoint: r.name for r in available if r.name})
        cache.set(key, allowed, ALLOW_LIST_TTL)
    return allowed


def decide(*, header: str, address: str, app_slug: str, name: str) -> Access | Refusal:
    """May this request pull ``name`` of app ``app_slug``? With the upstream client and what
    the license may pull of it if so. From the database only: no network call, no release file
    read unless a legacy release is live. ``decisions.authorize`` remembers what this allows."""
    check = check_basic_auth(header, app_slug=app_slug)
    if not check.ok:
        code = "UNAUTHORIZED" if check.status == 401 else "DENIED"
        return refuse_failure(address, Refusal(check.status, code, check.error))
    customer = check.customer
    app = customer.app
    denied = not_on_channel(name)
    team_registries, available = _registries(app)
    upstream, registry = resolve(app, name, team_registries)
    if upstream.domain == proxy_domain():
        return Refusal(403, "DENIED", f"{name} names this portal's own proxy: pull the image "
                                      "behind it instead.")
    allowed = entitlement(customer, domain=upstream.domain, path=upstream.path)
    legacy = False
    if allowed.legacy_release_ids:
        try:
            listed = _legacy_allow_list(app, allowed.legacy_release_ids, team_registries,
                                        available).get(name)
        except InvalidReference:
            listed = None
        legacy = listed is not None and (listed.domain, listed.path) == (upstream.domain,
                                                                         upstream.path)
    if not legacy and not allowed.pins:
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
                  image=upstream.name(), name=name, registry_id=getattr(registry, "pk", None),
                  entitlement=allowed.repository(upstream.domain, upstream.path, legacy=legacy),
                  direct_downloads=bool(registry is not None and registry.is_ecr
                                        and registry.direct_downloads))
