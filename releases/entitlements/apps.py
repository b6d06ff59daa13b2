from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    """What each license may pull: the digests pinned per release, and the images a license
    has pulled (kept for a grace period after a demotion or a change of channel)."""

    name = "releases.entitlements"
    label = "releases_entitlements"
    verbose_name = "Entitlements"
