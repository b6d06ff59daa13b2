"""The grace period: a license keeps pulling what it already pulled for a while after the
vendor takes it away (a demotion, a change of the customer's channel), so running installs are
not broken by a later change. ``PulledImage.lost_at`` is when a pulled pin stopped being
entitled; it is set and cleared here only, at the change (services) and lazily whenever the
proxy decides (``settle``), so a change made any other way is caught too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from ..models import Customer
from .models import ImagePin, PulledImage

# Sent after lost_at changed for some rows: the proxy's decision cache listens.
grace_changed = Signal()


def grace_period() -> timedelta:
    return timedelta(days=settings.PORTAL_ENTITLEMENT_GRACE_DAYS)


def in_grace(lost_at: datetime | None, *, now: datetime) -> bool:
    """A pin lost at ``lost_at`` may still be pulled (grace 0: never)."""
    return lost_at is not None and now < lost_at + grace_period()


def entitled_pin_ids(customer) -> set[int]:
    """The pins of the releases live on ``customer``'s channel."""
    return set(ImagePin.objects.filter(
        release__app_id=customer.app_id, release__pinned_at__isnull=False,
        release__promotions__channel_id=customer.channel_id,
        release__promotions__demoted_at__isnull=True).values_list("pk", flat=True))


def settle(customer, *, entitled_pin_ids: set[int], domain: str | None = None,
           path: str | None = None) -> list[ImagePin]:
    """Start the grace of pulled pins no longer entitled, end it for those entitled again;
    return the pulled pins still in grace (of ``domain/path`` only when given)."""
    pulled = PulledImage.objects.filter(customer_id=customer.pk).select_related("pin")
    if domain is not None:
        pulled = pulled.filter(pin__domain=domain, pin__path=path)
    now = timezone.now()
    lost, found, kept = [], [], []
    for row in pulled:
        if row.pin_id in entitled_pin_ids:
            if row.lost_at is not None:
                found.append(row.pk)
        elif row.lost_at is None:
            lost.append(row.pk)
            kept.append(row.pin)  # grace starts now
        elif in_grace(row.lost_at, now=now):
            kept.append(row.pin)
    changed = 0
    if lost:
        changed += PulledImage.objects.filter(pk__in=lost, lost_at__isnull=True).update(lost_at=now)
    if found:
        changed += PulledImage.objects.filter(pk__in=found).update(lost_at=None)
    if changed:
        grace_changed.send(sender=PulledImage)
    if not grace_period():
        kept = []  # grace 0 revokes at once
    return kept


def settle_customers(customers) -> None:
    """``settle`` for each of ``customers`` (after a demotion or a change of channel)."""
    for customer in customers:
        settle(customer, entitled_pin_ids=entitled_pin_ids(customer))


def customers_who_pulled(*, release=None, channel=None):
    """The customers with pulled pins: of ``release``'s on ``channel`` when given."""
    condition = Q(pulled_images__isnull=False)
    if release is not None:
        condition &= Q(pulled_images__pin__release=release)
    customers = Customer.objects.filter(condition)
    if channel is not None:
        customers = customers.filter(channel=channel)
    return customers.distinct()
