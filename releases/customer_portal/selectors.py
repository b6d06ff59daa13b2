"""The releases a license holder's channel offers: the customer page and the update check read them here."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from ..image_check.models import Verdict
from ..image_check.selectors import release_verdicts
from ..kustomize import Downstream
from ..models import Customer, Promotion, Release


def channel_releases(customer: Customer):
    """The live (not demoted) releases on the customer's channel, oldest first."""
    return (
        Promotion.objects.filter(channel=customer.channel, demoted_at__isnull=True)
        .select_related("release")
        .order_by("channel_sequence")
    )


def pending_releases(*, customer: Customer, after: int = 0) -> list[Promotion]:
    return list(channel_releases(customer).filter(channel_sequence__gt=after))


def channel_release(*, customer: Customer, channel_sequence: int | None) -> Promotion | None:
    """One live channel release, or the newest when ``channel_sequence`` is None."""
    releases = channel_releases(customer)
    if channel_sequence is None:
        return releases.last()
    return releases.filter(channel_sequence=channel_sequence).first()


def release_archive_name(promotion: Promotion, app_slug: str) -> str:
    return f"{app_slug}-{promotion.channel_sequence}"


def sign_in_url() -> str:
    """The customer page's address as customers reach it (absolute, from PORTAL_URL)."""
    return settings.PORTAL_URL + reverse("releases-portal-home")


@dataclass(frozen=True)
class ImageStatus:
    """One image of a release as the customer's page shows it: what the cluster pulls and why."""

    written: str
    pulls: str  # the name the cluster pulls (pinned: name:tag@digest); "" = as written
    status: str
    badge: str  # the badge class: ok, info, warn, bad


# Why an image that is not proxied is left as written, by the private-image check's verdict.
# Only a Public verdict means the customer can pull it from where it is published.
_UNPROXIED_STATUS = {
    Verdict.PUBLIC: ("public: pulled directly", "ok"),
    Verdict.UNLINKED: ("cannot be pulled yet: the vendor must link its registry", "bad"),
    Verdict.ERROR: ("could not be checked", "warn"),
    Verdict.CHECKING: ("being checked", "warn"),
}
_PROXIED = "pulled through the portal's proxy"


def image_statuses(*, release: Release, downstream: Downstream, proxy_host: str) -> list[ImageStatus]:
    """Each image of the rendered downstream with the truth about how the customer gets it.

    The rewrite says whether the name points at the proxy; when it does not, the verdict says
    why (a missing verdict is a check not done yet)."""
    verdicts = {str(ref): row.verdict for ref, row in release_verdicts(release) if row is not None}
    statuses = []
    for image in downstream.images:
        if image.proxied:
            statuses.append(ImageStatus(image.written, image.proxied, _PROXIED, "info"))
        elif image.normalised.startswith(proxy_host + "/"):
            statuses.append(ImageStatus(image.written, image.pinned, _PROXIED, "info"))
        elif not image.normalised:  # not an image reference: the note says what is wrong
            statuses.append(ImageStatus(image.written, "", f"cannot be pulled: {image.note}", "bad"))
        elif verdicts.get(image.normalised) == Verdict.PRIVATE:
            # Private but not rewritten: the note says what the vendor must do first.
            statuses.append(ImageStatus(image.written, "", f"cannot be pulled yet: {image.note}", "bad"))
        else:
            status, badge = _UNPROXIED_STATUS[verdicts.get(image.normalised, Verdict.CHECKING)]
            statuses.append(ImageStatus(image.written, image.pinned, status, badge))
    return statuses
