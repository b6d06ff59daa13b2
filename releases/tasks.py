"""Celery tasks of the releases: thin, given ids, each calling one service."""

from celery import shared_task

from . import image_check


@shared_task(acks_late=True)
def check_release_images(release_id: int, force: bool = False):
    """The private-image check of one release (issue 5)."""
    image_check.release_check_images(release_id=release_id, force=force)
