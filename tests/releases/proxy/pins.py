"""Run inside the proxy server's environment (``server.call("tests.releases.proxy.pins.pin", ...)``):
pin a promoted release's image the way its promotion does (the whole manifest tree read from the
upstream registry), demote, and read back pins and pulled images."""

from __future__ import annotations

from django.utils import timezone

from registries.credentials import registry_pull_client
from registries.models import ExternalRegistry
from registries.oci.tree import manifest_tree
from registries.reference import parse as parse_reference
from releases import services
from releases.entitlements.models import ImagePin, PinSource, PulledImage
from releases.models import Release
from releases.proxy.models import PullEvent


def pin(*, app: str, sequence: int, image: str, unresolved: bool = False,
        tree: list[dict] | None = None) -> dict:
    """Pin ``image`` (host/path:tag, as the release writes it) of release ``sequence``: from
    upstream, or with ``tree`` as given, or unresolved (digest "")."""
    release = Release.objects.get(app__slug=app, sequence=sequence)
    ref = parse_reference(image)
    if tree is None and not unresolved:
        registry = ExternalRegistry.objects.filter(endpoint=ref.domain).first()
        client = registry_pull_client(registry=registry, endpoint=ref.domain)
        tree = manifest_tree(client, ref.path, ref.tag)
    tree = tree or []
    top = tree[0] if tree else {"digest": "", "mediaType": "", "size": 0}
    made = ImagePin.objects.create(
        release=release, reference=str(ref), domain=ref.domain, path=ref.path,
        tag=ref.tag, digest=top["digest"], media_type=top["mediaType"], size=top["size"],
        tree=tree, source=PinSource.PROMOTION, pinned_at=timezone.now() if tree else None)
    Release.objects.filter(pk=release.pk).update(pinned_at=timezone.now())
    return {"pin": made.pk, "release": release.pk, "digest": made.digest}


def pin_state(*, pin: int) -> dict:
    row = ImagePin.objects.get(pk=pin)
    return {"digest": row.digest, "source": row.source, "tree": row.tree}


def demote(*, app: str, sequence: int, channel: str = "unstable") -> dict:
    release = Release.objects.get(app__slug=app, sequence=sequence)
    promotion = release.promotions.get(channel__slug=channel)
    services.promotion_demote(promotion=promotion, user=None)
    return {}


def pulled(*, customer: str) -> dict:
    rows = PulledImage.objects.filter(customer__name=customer)
    return {"pins": {str(r.pin_id): {"lost": r.lost_at is not None} for r in rows}}


def pull_log(*, customer: str) -> dict:
    """Manifest rows with the release and the note (the shared helper omits them)."""
    rows = PullEvent.objects.filter(customer__name=customer, kind="manifest").order_by("id")
    return {"rows": [{"reference": r.reference, "status": r.status, "release": r.release_id,
                      "note": r.note, "method": r.method} for r in rows]}
