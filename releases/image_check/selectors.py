"""What the pages and the proxy read of the private-image check (no writes, no network)."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q
from django.utils import timezone

from registries.reference import InvalidReference, Reference, parse

from ..entitlements.models import ImagePin
from ..manifests import images_in
from ..selectors import registries_for_app
from .models import CHECK_LEASE, ImageVerdict, Verdict


def release_references(release) -> list[Reference]:
    """The distinct, valid image references a release uses, in first-use order."""
    seen: dict[str, Reference] = {}
    for use in images_in(release.files.all()):
        try:
            ref = parse(use.image)
        except InvalidReference:
            continue
        seen.setdefault(str(ref), ref)
    return list(seen.values())


def verdict_predicate(app, *, registries=None) -> Callable[[Reference], bool]:
    """Is ``ref`` proxied for ``app``? From the verdicts where there are some.
    ``registries``: the app's registries (``registries_for_app``) when the caller has them."""
    linked = {r.endpoint for r in (registries_for_app(app) if registries is None else registries)}
    verdicts = dict(ImageVerdict.objects.filter(app=app).values_list("reference", "verdict"))
    proxy_public = app.proxy_public_images

    def is_proxied(ref: Reference) -> bool:
        verdict = verdicts.get(str(ref))
        if verdict == Verdict.PRIVATE:
            return True
        if verdict == Verdict.PUBLIC:
            return proxy_public
        if verdict == Verdict.UNLINKED:
            # The proxy could not pull it either; keep the name the vendor wrote.
            return False
        return proxy_public or ref.domain in linked

    return is_proxied


def release_verdicts(release) -> list[tuple[Reference, ImageVerdict | None]]:
    """Each image of the release with its verdict row (None: never checked)."""
    refs = release_references(release)
    rows = {v.reference: v for v in ImageVerdict.objects.filter(
        app_id=release.app_id, reference__in=[str(r) for r in refs])}
    return [(ref, rows.get(str(ref))) for ref in refs]


def verdicts_needing_queue(*, now=None):
    """Checking rows whose check the broker refused, or whose queued check seems lost."""
    now = now or timezone.now()
    return ImageVerdict.objects.filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=now - CHECK_LEASE), verdict=Verdict.CHECKING)


def release_image_rows(release) -> dict:
    """What the release page shows: each image with its verdict and its pin (None before the
    release is pinned), whether checks are pending, how many fail, and the pinned digests gone
    upstream. Reads only: the views call ``services.release_checks_ensure`` first."""
    verdicts = release_verdicts(release)
    pins = {p.reference: p for p in ImagePin.objects.filter(release=release)}
    rows = [(ref, row, pins.get(str(ref))) for ref, row in verdicts]
    pending = any(row is None or row.verdict == Verdict.CHECKING for _, row in verdicts)
    failing = sum(1 for _, row in verdicts if row is not None and row.fails)
    missing = [p for p in pins.values() if p.missing_at is not None]
    return {"rows": rows, "pending": pending, "failing": failing, "missing": missing}


def release_pending_images(release) -> list[str]:
    """The images of ``release`` whose check has not answered yet."""
    return [str(ref) for ref, row in release_verdicts(release)
            if row is None or row.verdict == Verdict.CHECKING]


def app_missing_pins(app) -> list[ImagePin]:
    """Pins of the app's live releases (on a channel now) whose digest is gone upstream:
    customers can no longer pull those releases."""
    return list(ImagePin.objects.filter(
        release__app=app, missing_at__isnull=False, release__promotions__demoted_at__isnull=True,
    ).distinct().select_related("release").order_by("-release__sequence", "reference"))


def release_failing_images(release) -> list[str]:
    """The images of ``release`` whose last verdict says customers will fail to pull them."""
    return [str(ref) for ref, row in release_verdicts(release) if row is not None and row.fails]
