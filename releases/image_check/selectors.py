"""What the pages and the proxy read of the private-image check (no writes, no network)."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q
from django.utils import timezone

from registries.reference import InvalidReference, Reference, parse

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
    """What the release page shows: each image with its verdict, whether checks are pending,
    and how many fail. Reads only: the views call ``services.release_checks_ensure`` first."""
    rows = release_verdicts(release)
    pending = any(row is None or row.verdict == Verdict.CHECKING for _, row in rows)
    failing = sum(1 for _, row in rows if row is not None and row.fails)
    return {"rows": rows, "pending": pending, "failing": failing}


def release_failing_images(release) -> list[str]:
    """The images of ``release`` whose last verdict says customers will fail to pull them."""
    return [str(ref) for ref, row in release_verdicts(release) if row is not None and row.fails]
