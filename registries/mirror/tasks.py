"""The mirroring task: thin, given an id, safe to deliver twice.

acks_late + reject_on_worker_lost: a worker killed mid-copy leaves the message unacknowledged,
so Redis redelivers it after the visibility timeout and the next worker claims the job once its
lease has run out, skipping the blobs already copied.

The tasks keep the names they had when this module was registries/mirror_tasks.py: messages
already queued (and beat's schedule) name them so, and must still find them after an upgrade.
"""

from celery import shared_task

from . import services as mirror_services
from .services import TransientMirrorError


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientMirrorError,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=mirror_services.MAX_ATTEMPTS,
    ignore_result=True,
    name="registries.mirror_tasks.mirror_image",
)
def mirror_image(self, job_id: int):
    outcome = mirror_services.image_mirror(job_id=job_id)
    if outcome.retry_in is not None:
        # Another worker's lease is live; look again when it would have run out.
        raise self.retry(countdown=outcome.retry_in, max_retries=None)


@shared_task(ignore_result=True, name="registries.mirror_tasks.sweep_mirror_jobs")
def sweep_mirror_jobs():
    """Beat: queue mirror jobs whose message was lost (broker down, dead worker)."""
    mirror_services.mirror_jobs_sweep()
