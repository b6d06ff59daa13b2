"""Taking a release's pins, and watching them upstream.

A release is pinned once: its first promotion copies what the private-image check resolved
(the verdict's digest and manifest tree) into one ``ImagePin`` per distinct image, under the
release's row lock, and sets ``Release.pinned_at`` in the same transaction. A promoted release
is frozen, so later promotions to other channels find ``pinned_at`` set and reuse those pins,
whatever the upstream tags did meanwhile. An image the check could not resolve is pinned with
digest "": the proxy fills it at the first successful pull.

Releases promoted before pins existed are pinned by beat on the worker (``releases_pin_backfill``),
never in a migration, which must not wait on registries. ``pins_recheck`` (beat) asks each live
pin's registry whether its digest is still there: lifecycle policies expire untagged images,
and then customers can no longer pull that release.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from registries.credentials import registry_pull_client
from registries.errors import RegistryError
from registries.models import ExternalRegistry

from ..image_check.models import Verdict
from ..image_check.selectors import release_verdicts
from ..image_check.services import release_check_images
from ..models import Release
from ..selectors import registries_for_app
from .models import ImagePin, PinSource
from .upstream import OtherApp, upstream_of

logger = logging.getLogger(__name__)

RESOLVED = (Verdict.PUBLIC, Verdict.PRIVATE)


def release_pin(*, release: Release, source: str) -> list[ImagePin]:
    """Pin each distinct image of ``release`` from its verdicts and set ``pinned_at``.

    Call it inside a transaction holding the release's row lock (``select_for_update``): the
    pins and ``pinned_at`` are written together, and a second caller waiting on the lock finds
    ``pinned_at`` set. Pins that exist are kept as they are (frozen).
    """
    app = release.app
    team_registries = list(ExternalRegistry.objects.filter(team_id=app.team_id))
    now = timezone.now()
    pins = []
    for ref, verdict in release_verdicts(release):
        try:
            upstream = upstream_of(app, ref, team_registries)
        except OtherApp:
            continue  # another app's image on the portal's proxy: never resolved, never allowed
        resolved = verdict is not None and verdict.verdict in RESOLVED and bool(verdict.digest)
        pin, _ = ImagePin.objects.get_or_create(release=release, reference=str(ref), defaults={
            "domain": upstream.domain, "path": upstream.path, "tag": upstream.tag or "",
            "digest": verdict.digest if resolved else "",
            "media_type": verdict.media_type if resolved else "",
            "size": verdict.size if resolved else 0,
            "tree": verdict.tree if resolved else [],
            "source": source, "pinned_at": now if resolved else None,
        })
        pins.append(pin)
    Release.objects.filter(pk=release.pk).update(pinned_at=now)
    release.pinned_at = now
    logger.info("pins: app %s release %s: %d images, %d unresolved", app.pk, release.sequence,
                len(pins), sum(1 for p in pins if not p.digest))
    return pins


def release_pin_locked(*, release_id: int, source: str) -> bool:
    """Pin the release unless someone did meanwhile; True when this call pinned it."""
    with transaction.atomic():
        locked = Release.objects.select_for_update().select_related("app").filter(
            pk=release_id).first()
        if locked is None or locked.pinned_at is not None:
            return False
        release_pin(release=locked, source=source)
    return True


def releases_pin_backfill() -> int:
    """Beat: pin the promoted releases that have no pins yet (promoted before pins existed).
    Checks their images first (on the worker, where the network is allowed); the number pinned."""
    pinned = 0
    ids = Release.objects.filter(promoted_at__isnull=False, pinned_at__isnull=True).values_list(
        "pk", flat=True)
    for release_id in list(ids):
        # Outside the lock: the check talks to registries and can take a while.
        release_check_images(release_id=release_id)
        if release_pin_locked(release_id=release_id, source=PinSource.BACKFILL):
            pinned += 1
    return pinned


def live_pins():
    """The resolved pins of releases some channel has now (a promotion not demoted)."""
    return ImagePin.objects.exclude(digest="").filter(
        release__promotions__demoted_at__isnull=True).distinct().select_related("release__app")


def pins_recheck() -> dict[str, int]:
    """Beat: is each live pin's digest still upstream? Gone (404) marks it missing; there again
    clears the mark; a failure to ask (throttling, 5xx, credentials) changes nothing."""
    counts = {"present": 0, "missing": 0, "unknown": 0}
    registries: dict[int, list] = {}
    for pin in live_pins():
        app = pin.release.app
        if app.pk not in registries:
            registries[app.pk] = list(registries_for_app(app))
        registry = next((r for r in registries[app.pk] if r.endpoint == pin.domain), None)
        try:
            client = (registry_pull_client(registry=registry) if registry is not None
                      else registry_pull_client(registry=None, endpoint=pin.domain))
            found = client.manifest_digest(pin.path, pin.digest)
        except RegistryError as e:
            logger.info("pin re-check: pin %s: could not ask (%s)", pin.pk, e.code or "error")
            counts["unknown"] += 1
            continue
        now = timezone.now()
        if found is None:
            # Only the first time: missing_at says since when customers cannot pull it.
            ImagePin.objects.filter(pk=pin.pk, missing_at__isnull=True).update(missing_at=now)
            ImagePin.objects.filter(pk=pin.pk).update(checked_at=now)
            counts["missing"] += 1
            logger.warning("pin re-check: app %s release %s: %s is gone upstream", app.pk,
                           pin.release.sequence, pin.reference)
        else:
            ImagePin.objects.filter(pk=pin.pk).update(missing_at=None, checked_at=now)
            counts["present"] += 1
    return counts
