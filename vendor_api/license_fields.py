"""License fields of an app."""

from ninja import Router

router = Router(tags=["license fields"])
