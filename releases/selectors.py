"""Queries of releases that several rooms share (pages, the proxy, the private-image check),
and the one question registries' pages ask of releases: which release files use a registry."""

from dataclasses import dataclass

from django.db.models import Q

from registries.models import ExternalRegistry
from registries.reference import DOCKER_HUB, InvalidReference, canonical_registry, parse

from .manifests import images_in
from .models import Promotion, ReleaseFile


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
