"""External registries."""

from ninja import Router

router = Router(tags=["registries"])
