"""Queue the private-image check when a release is created, edited or promoted.

After the commit: the files of a new release are written after its row (bulk_create sends no
signal), and a failing check must never break the save.
"""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from releases.models import Promotion, Release, ReleaseFile

from .services import release_queue_image_check


def _queue(release_id: int) -> None:
    def run():
        release = Release.objects.filter(pk=release_id).first()
        if release is not None:
            release_queue_image_check(release=release)

    transaction.on_commit(run)


@receiver(post_save, sender=Release, dispatch_uid="releases-image-check-release")
def _release_created(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        _queue(instance.pk)


@receiver(post_save, sender=ReleaseFile, dispatch_uid="releases-image-check-file")
def _file_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _queue(instance.release_id)


@receiver(post_save, sender=Promotion, dispatch_uid="releases-image-check-promotion")
def _promoted(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        _queue(instance.release_id)
