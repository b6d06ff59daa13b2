"""Template pieces of delivery that other pages include with one line:
``{% pull_log registry=registry %}``, ``{% pull_log customer=customer %}``,
``{% image_checks release %}``."""

from django import template

register = template.Library()

PULL_LOG_ROWS = 25


@register.inclusion_tag("releases/_pull_log.html")
def pull_log(*, registry=None, customer=None):
    from releases.models import PullEvent

    events = PullEvent.objects.select_related("customer")
    if registry is not None:
        events = events.filter(registry=registry)
    if customer is not None:
        events = events.filter(customer=customer)
    return {"events": list(events[:PULL_LOG_ROWS]), "by_registry": registry is not None,
            "limit": PULL_LOG_ROWS}


@register.inclusion_tag("releases/_image_checks.html", takes_context=True)
def image_checks(context, release):
    from releases.image_check import release_image_rows

    return {**release_image_rows(release), "release": release,
            "membership": context.get("membership")}
