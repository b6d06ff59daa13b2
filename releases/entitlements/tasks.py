"""Beat's tasks for pins: thin, each calling one service."""

from celery import shared_task

from . import services


@shared_task(name="releases.entitlements.tasks.backfill_pins")
def backfill_pins():
    """Pin the releases promoted before pins existed."""
    services.releases_pin_backfill()


@shared_task(name="releases.entitlements.tasks.recheck_pins")
def recheck_pins():
    """Warn the vendor when a live release's pinned digest is gone upstream."""
    services.pins_recheck()
