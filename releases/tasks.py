"""Celery tasks of the releases: thin, given ids, each calling one service."""

from celery import shared_task

from . import image_check


@shared_task(acks_late=True)
def check_release_images(release_id: int, force: bool = False):
    """The private-image check of one release."""
    image_check.release_check_images(release_id=release_id, force=force)


@shared_task(acks_late=True)
def check_image_verdict(verdict_id: int):
    """The private-image check of one image of an app (queued by the sweep)."""
    image_check.verdict_check(verdict_id=verdict_id)


@shared_task
def sweep_image_checks():
    """Beat: queue the image checks that the broker refused (or that a dead worker lost)."""
    image_check.verdicts_sweep_pending()
