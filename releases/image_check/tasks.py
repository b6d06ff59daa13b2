"""Celery tasks of the private-image check: thin, given ids, each calling one service.

They keep the names they were registered under as ``releases.tasks``, so messages queued by a
running installation (and beat's schedule) still find them."""

from celery import shared_task

from . import services


@shared_task(name="releases.tasks.check_release_images", acks_late=True)
def check_release_images(release_id: int, force: bool = False):
    """The private-image check of one release."""
    services.release_check_images(release_id=release_id, force=force)


@shared_task(name="releases.tasks.check_image_verdict", acks_late=True)
def check_image_verdict(verdict_id: int):
    """The private-image check of one image of an app (queued by the sweep)."""
    services.verdict_check(verdict_id=verdict_id)


@shared_task(name="releases.tasks.sweep_image_checks")
def sweep_image_checks():
    """Beat: queue the image checks that the broker refused (or that a dead worker lost)."""
    services.verdicts_sweep_pending()
