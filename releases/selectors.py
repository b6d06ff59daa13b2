"""Queries of releases that several rooms share (pages, the proxy, the private-image check),
and the one question registries' pages ask of releases: which release files use a registry."""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, Subquery
from django.shortcuts import get_object_or_404

from registries.models import ExternalRegistry
from registries.reference import DOCKER_HUB, InvalidReference, canonical_registry, parse

from .manifests import images_in
from .models import App, Channel, Promotion, ReleaseFile


def app_release_count(app: App) -> int:
    """How many releases ``app`` has, without counting them.

    Releases are never deleted and ``App.take_release_sequence`` hands out gapless sequences in
    the transaction that creates the release, so the next sequence less one is the total: the
    history page's paginator needs no COUNT(*), which grows with the app's releases.
    """
    return app.next_release_sequence - 1


def channel_promotion_count(channel: Channel) -> int:
    """How many promotions (demoted ones too) ``channel`` has: its next channel sequence less one,
    for the same reasons as ``app_release_count``."""
    return channel.next_channel_sequence - 1


def channels_with_current(channels):
    """``channels`` annotated with their current (newest, not demoted) promotion, in one query."""
    current = Promotion.objects.filter(channel=OuterRef("pk"), demoted_at__isnull=True).order_by("-channel_sequence")
    return channels.annotate(
        current_label=Subquery(current.values("version_label")[:1]),
        current_release=Subquery(current.values("release__sequence")[:1]),
        current_channel_sequence=Subquery(current.values("channel_sequence")[:1]),
        current_promoted_at=Subquery(current.values("created_at")[:1]),
    )


def team_app(*, team, slug: str | None = None, pk: int | None = None, write: bool = False,
             app_ids=None) -> App:
    """The team's app by slug (or primary key) or 404; ``app_ids`` narrows to those apps (an
    app-scoped API token); with ``write``, an archived app is refused (403)."""
    apps = App.objects.filter(team=team)
    if app_ids is not None:
        apps = apps.filter(pk__in=app_ids)
    app = get_object_or_404(apps, **({"slug": slug} if slug is not None else {"pk": pk}))
    if write and app.is_archived:
        raise PermissionDenied("This app is archived.")
    return app


def registries_for_app(app):
    """The team's registries this app may use (an empty app list means every app)."""
    return ExternalRegistry.objects.filter(team_id=app.team_id).filter(
        Q(apps=app) | Q(apps__isnull=True)
    ).distinct()


@dataclass
class RegistryImageUse:
    image: str
    repository: str
    app: str
    release: int
    promoted: bool


def registry_image_uses(*, team, endpoint: str) -> list[RegistryImageUse]:
    """Images on ``endpoint`` named in the team's release files (promoted or not)."""
    promoted = set(
        Promotion.objects.filter(channel__app__team=team, demoted_at__isnull=True)
        .values_list("release_id", flat=True)
    )
    uses = []
    files = ReleaseFile.objects.filter(release__app__team=team).select_related("release__app")
    if endpoint != DOCKER_HUB:
        # An image on any other registry is written with its host: let the database skip the
        # files that cannot mention it instead of parsing every release of the team.
        files = files.filter(content__icontains=endpoint)
    for f in files:
        for image in (use.image for use in images_in([(f.name, f.content)])):
            try:
                ref = parse(image)
            except InvalidReference:
                continue
            if canonical_registry(ref.domain) == endpoint:
                uses.append(RegistryImageUse(image, ref.path, f.release.app.name, f.release.sequence,
                                             f.release_id in promoted))
    return uses
