"""The proxy registry's pull log, which other pages include with one line:
``{% pull_log registry=registry %}``, ``{% pull_log customer=customer %}``."""

from django import template

from ..models import PullEvent

register = template.Library()

PULL_LOG_ROWS = 25


@register.inclusion_tag("releases/_pull_log.html")
def pull_log(*, registry=None, customer=None):
    events = PullEvent.objects.select_related("customer", "release")
    if registry is not None:
        events = events.filter(registry=registry)
    if customer is not None:
        events = events.filter(customer=customer)
    return {"events": list(events[:PULL_LOG_ROWS]), "by_registry": registry is not None,
            "limit": PULL_LOG_ROWS}
