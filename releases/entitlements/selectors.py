"""What a license may pull, from the database only: no network, no release file read.

A license is entitled to the pins (``ImagePin``) of its *live* releases: every release promoted
on its customer's channel and not demoted there (all of them, not only the newest: customers
upgrade from older versions). On top of those, the pins it already pulled (``PulledImage``)
whose entitlement ended less than ``PORTAL_ENTITLEMENT_GRACE_DAYS`` ago (grace.py keeps
``lost_at``). A promoted release without pins (``Release.pinned_at`` NULL: promoted before pins
existed) is a *legacy* release: the proxy allows its repositories by name, as before pins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Max

from ..models import Customer, Promotion
from . import grace
from .models import ImagePin

MANIFEST_KINDS = ("index", "manifest")


@dataclass(frozen=True)
class TagPin:
    """What a tag resolves to: the pin of the newest live release using it."""

    pin_id: int
    release_id: int
    digest: str  # "" for a pin taken at the first pull (``unresolved``)


@dataclass
class RepositoryEntitlement:
    """One upstream repository as one license may pull it (built once per cold decision; each
    request then asks set and dict lookups only)."""

    tags: dict[str, TagPin] = field(default_factory=dict)  # tag -> pin (resolved or not)
    digests: frozenset[str] = frozenset()  # every manifest and blob digest allowed
    # manifest digest -> the allowed pins whose tree holds it (PulledImage rows to record)
    manifest_pins: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> size, as the manifests say
    legacy: bool = False  # a live legacy release uses the repository: anything in it is allowed

    @property
    def unresolved(self) -> bool:
        return any(not p.digest for p in self.tags.values())

    def tag_pin(self, tag: str) -> TagPin | None:
        return self.tags.get(tag)

    def allows_digest(self, digest: str) -> bool:
        return self.legacy or digest in self.digests


@dataclass
class Entitlement:
    """Everything one license may pull now."""

    live_release_ids: list[int]  # newest promotion on the channel first
    legacy_release_ids: list[int]
    pins: list[ImagePin]  # live first (newest release first), then those in grace
    grace_pin_ids: set[int]

    def repository(self, domain: str, path: str, *, legacy: bool = False) -> RepositoryEntitlement:
        """The shape the proxy needs for ``domain/path``; ``legacy``: the legacy allow-list
        names this repository."""
        tags: dict[str, TagPin] = {}
        digests: set[str] = set()
        manifest_pins: dict[str, list[int]] = {}
        sizes: dict[str, int] = {}
        for pin in self.pins:  # newest live release first: the first pin of a tag wins
            if (pin.domain, pin.path) != (domain, path):
                continue
            if pin.tag and pin.tag not in tags:
                tags[pin.tag] = TagPin(pin_id=pin.pk, release_id=pin.release_id, digest=pin.digest)
            digests |= pin.digests
            for node in pin.tree:
                if node.get("size"):
                    sizes[node["digest"]] = node["size"]
                if node.get("kind") in MANIFEST_KINDS:
                    manifest_pins.setdefault(node["digest"], []).append(pin.pk)
            if pin.digest:
                manifest_pins.setdefault(pin.digest, [])
                if pin.pk not in manifest_pins[pin.digest]:
                    manifest_pins[pin.digest].append(pin.pk)
        return RepositoryEntitlement(
            tags=tags, digests=frozenset(digests), legacy=legacy, sizes=sizes,
            manifest_pins={d: tuple(ids) for d, ids in manifest_pins.items()})

    def has_repository(self, domain: str, path: str) -> bool:
        return any((p.domain, p.path) == (domain, path) for p in self.pins)

    @property
    def digests(self) -> set[str]:
        return set().union(*(p.digests for p in self.pins)) if self.pins else set()


def live_releases(customer: Customer) -> list[tuple[int, bool]]:
    """[(release id, pinned)] of the releases live on the customer's channel, the newest
    promotion first."""
    rows = (Promotion.objects.filter(channel_id=customer.channel_id, demoted_at__isnull=True,
                                     release__app_id=customer.app_id)
            .values("release_id", "release__pinned_at")
            .annotate(newest=Max("channel_sequence")).order_by("-newest"))
    return [(r["release_id"], r["release__pinned_at"] is not None) for r in rows]


def entitlement(customer: Customer, *, domain: str | None = None,
                path: str | None = None) -> Entitlement:
    """What ``customer`` may pull now (only ``domain/path``'s pins when given). Starts or ends
    grace periods that changed elsewhere (``grace.settle``): a write only when one did."""
    releases = live_releases(customer)
    live_ids = [release_id for release_id, _ in releases]
    legacy_ids = [release_id for release_id, pinned in releases if not pinned]
    order = {release_id: i for i, release_id in enumerate(live_ids)}
    pins = ImagePin.objects.filter(release_id__in=[r for r, pinned in releases if pinned])
    if domain is not None:
        pins = pins.filter(domain=domain, path=path)
    live = sorted(pins, key=lambda p: (order[p.release_id], p.reference))
    grace_pins = grace.settle(customer, entitled_pin_ids={p.pk for p in live},
                              domain=domain, path=path)
    return Entitlement(live_release_ids=live_ids, legacy_release_ids=legacy_ids,
                       pins=live + grace_pins, grace_pin_ids={p.pk for p in grace_pins})


def entitled_digests(customer: Customer) -> set[str]:
    """Every manifest and blob digest ``customer``'s license may pull now, all repositories."""
    return entitlement(customer).digests
