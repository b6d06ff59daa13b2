"""The releases a license holder's channel offers: the customer page and the update check read them here."""

from __future__ import annotations

from ..models import Customer, Promotion


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
