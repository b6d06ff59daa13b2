"""The release's image checks, which the release page includes with one line:
``{% image_checks release %}``; the app page's warning about pinned digests gone upstream,
``{% missing_pins app %}``. It reads only: the release views call
``services.release_checks_ensure`` before rendering."""

from django import template

from ..selectors import app_missing_pins, release_image_rows

register = template.Library()


@register.inclusion_tag("releases/_image_checks.html", takes_context=True)
def image_checks(context, release):
    return {**release_image_rows(release), "release": release,
            "membership": context.get("membership")}


@register.inclusion_tag("releases/_missing_pins.html")
def missing_pins(app):
    return {"missing": app_missing_pins(app)}
