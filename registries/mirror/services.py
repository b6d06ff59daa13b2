"""Mirroring an image into a linked registry: create, run, cancel a MirrorJob.

The Celery task (tasks.py) only calls `image_mirror(job_id=...)`; the copy itself is
copy.py, the network seams oci/ and ecr.py, clients from credentials.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from portal.audit import audit_log
from portal.observability import metrics
from portal.publish import publish

from .. import crypto, ecr
from ..credentials import registry_client
from ..errors import RegistryError
from ..models import ExternalRegistry
from ..oci.client import RegistryClient
from ..reference import Reference, canonical_registry, parse
from . import copy
from .models import MirrorJob, lease_length

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3          # task deliveries that may end in a transient failure before giving up
WRITE_EVERY = 1.0         # seconds between progress writes
LEASE_EVERY = 2.0         # seconds between lease renewals / cancel checks
CLIENT_TIMEOUT = 60.0
TASK = "registries.mirror_tasks.mirror_image"   # by name: the task module imports this one
UNEXPECTED = "The portal failed unexpectedly while copying; see the worker log."


class TransientMirrorError(Exception):
    """The copy failed for a reason a later retry may not meet (5xx, reset, timeout)."""


@dataclass
class MirrorOutcome:
    status: str
    retry_in: float | None = None   # the job is held by a live lease: look again later


# --- defaults for the form ------------------------------------------------------------------

def default_target(source: Reference, *, prefix: str = "") -> tuple[str, str]:
    """`nginx` with prefix `demo-apps` -> ("demo-apps/nginx", "latest"), as in the walkthrough."""
    name = source.path.rsplit("/", 1)[-1]
    prefix = prefix.strip().strip("/")
    return (f"{prefix}/{name}" if prefix else name), (source.tag or "latest")


def linked_registry_for(team, domain: str) -> ExternalRegistry | None:
    """A registry of the team whose endpoint is the source's host (its credentials read it)."""
    return ExternalRegistry.objects.filter(team=team, endpoint=canonical_registry(domain)).first()


# --- creating and canceling -------------------------------------------------------------------

def mirror_create(*, team, registry: ExternalRegistry, source: str, target_repository: str,
                  target_tag: str, platforms: str = "", push_username: str = "",
                  push_password: str = "", user=None, request=None) -> MirrorJob:
    """Record the job and queue it once the transaction commits; the task gets only its id."""
    ref = parse(source)
    job = MirrorJob(
        team=team, registry=registry, source_reference=str(ref),
        source_registry=linked_registry_for(team, ref.domain), platforms=platforms,
        target_repository=target_repository, target_tag=target_tag, created_by=user,
        push_username=push_username if push_password else "",
    )
    job.push_secret = push_password
    job.save()
    audit_log(request=request, team=team, action="mirror", obj=job, actor=user,
              detail={"source": job.source_reference, "target": job.target_reference,
                      "push_credentials": bool(push_password)})
    transaction.on_commit(lambda: _send(job.pk))
    return job


def _send(job_id: int) -> bool:
    """Queue the job's task; when the broker is down the job stays Queued, its page says so,
    and the sweep queues it once the broker answers. True when queued."""
    queued = publish(TASK, job_id)
    MirrorJob(pk=job_id).note_queued(queued)
    return queued


def mirror_cancel(*, job: MirrorJob, request=None) -> None:
    job.request_cancel()
    audit_log(request=request, team=job.team, action="cancel", obj=job)


def mirror_jobs_sweep(*, older_than_seconds: int = 120) -> int:
    """Re-queue jobs whose task was lost (broker down at creation, or a dead worker's message)."""
    now = timezone.now()
    stale = MirrorJob.objects.filter(
        status=MirrorJob.Status.QUEUED,
        updated_at__lt=now - timezone.timedelta(seconds=older_than_seconds),
    ) | MirrorJob.objects.filter(status=MirrorJob.Status.RUNNING, lease_until__lt=now)
    count = 0
    for pk in stale.values_list("pk", flat=True):
        if not _send(pk):
            break  # the broker is down: the next sweep tries again
        count += 1
    return count


# --- the worker's part ------------------------------------------------------------------------

def _target_client(job: MirrorJob) -> RegistryClient:
    registry = job.registry
    if job.has_push_credentials:
        try:
            secret = job.push_secret
        except crypto.DecryptionError:
            raise RegistryError("The push credentials of this job cannot be decrypted: start "
                                "the mirror again.", permanent=True, code="decrypt") from None
        username = job.push_username
        if registry.is_ecr:
            username, secret = ecr.get_registry_credentials(
                access_key_id=job.push_username, secret_access_key=secret,
                region=registry.ecr_region, cache_key=f"mirror-job-{job.pk}")
    else:
        return registry_client(registry, timeout=CLIENT_TIMEOUT)
    return RegistryClient(registry.endpoint, username=username, password=secret,
                              insecure=registry.insecure, timeout=CLIENT_TIMEOUT)


def _source_client(job: MirrorJob, ref: Reference) -> RegistryClient:
    linked = job.source_registry
    if linked is not None and linked.endpoint == canonical_registry(ref.domain):
        return registry_client(linked, timeout=CLIENT_TIMEOUT)
    # Public source: anonymous (Docker Hub hands out anonymous tokens).
    return RegistryClient(ref.domain, timeout=CLIENT_TIMEOUT)


def _ensure_ecr_repository(job: MirrorJob, log: list[dict]) -> None:
    registry = job.registry
    if not registry.is_ecr:
        return
    if job.has_push_credentials:
        keys = {"access_key_id": job.push_username, "secret_access_key": job.push_secret}
    else:
        keys = {"access_key_id": registry.username, "secret_access_key": registry.secret}
    try:
        created = ecr.create_repository(**keys, region=registry.ecr_region,
                                        repository=job.target_repository)
    except RegistryError as e:
        if e.permanent and e.code == "access_denied":
            # Maybe it exists and the keys may push: the push says so if not.
            log.append({"event": "ECR: the keys may not create repositories "
                                 "(ecr:CreateRepository); using the existing one."})
            return
        raise
    if created:
        log.append({"event": f"ECR: created the repository {job.target_repository}."})


class _Tracker:
    """Progress and cancel callbacks for copy.copy, on the task's thread."""

    def __init__(self, job: MirrorJob, log: list[dict]):
        self.job, self.log = job, log
        self.last_write = self.last_lease = 0.0
        self.uploads: list[str] | None = None   # as last written
        self.stop = False

    def on_progress(self, p: copy.Progress) -> None:
        for b in p.finished:
            if b.action == "copied":
                metrics.mirror_bytes.inc(b.size)
            self.log.append({"digest": b.digest, "size": b.size, "action": b.action,
                             "seconds": b.seconds, "attempts": b.attempts})
        now = time.monotonic()
        # A new upload session is written at once, not within WRITE_EVERY: if this worker
        # dies, the one taking over can cancel only the sessions it finds on the row.
        if p.finished or p.open_uploads != self.uploads or now - self.last_write >= WRITE_EVERY:
            self.last_write = self.last_lease = now
            self.uploads = list(p.open_uploads)
            if not self.job.save_progress(blobs_done=p.blobs_done, blobs_total=p.blobs_total,
                                          bytes_done=p.bytes_done, bytes_total=p.bytes_total,
                                          log=self.log, open_uploads=self.uploads):
                self.stop = True

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if not self.stop and now - self.last_lease >= LEASE_EVERY:
            self.last_lease = now
            renewed = MirrorJob.objects.filter(
                pk=self.job.pk, status=MirrorJob.Status.RUNNING, cancel_requested=False,
            ).update(lease_until=timezone.now() + lease_length())
            self.stop = not renewed
        return self.stop


def image_mirror(*, job_id: int) -> MirrorOutcome:
    """Claim the job and copy; records the outcome on the row. Raises TransientMirrorError
    (after re-queuing the row) when the task should retry.

    Whatever else goes wrong ends the job Failed with a message a user can read; the traceback
    goes to the worker log only (it may quote a URL or a response).
    """
    try:
        return _image_mirror(job_id)
    except TransientMirrorError:
        raise
    except Exception:
        logger.exception("mirror job %s: unexpected error", job_id)
        job = MirrorJob.objects.filter(pk=job_id).first()
        if job is not None and not job.is_finished:
            job.mark_failed(UNEXPECTED, code="internal",
                            log=[*job.log, {"event": f"Error: {UNEXPECTED}"}])
        return MirrorOutcome("failed")


def _image_mirror(job_id: int) -> MirrorOutcome:
    job = MirrorJob.claim(job_id)
    if job is None:
        return _not_claimed(job_id)
    log = list(job.log)
    if job.attempts > 1:
        log.append({"event": f"Resumed (delivery {job.attempts}): blobs already in the target "
                             "are skipped."})
    try:
        ref = parse(job.source_reference)
        with _source_client(job, ref) as source, _target_client(job) as target:
            _cancel_abandoned_uploads(job, target, log)
            _ensure_ecr_repository(job, log)
            tracker = _Tracker(job, log)
            platforms = [p.strip() for p in job.platforms.split(",") if p.strip()] or None
            copy_started = time.monotonic()
            result = copy.copy(
                source, ref.repository, ref.reference, target, job.target_repository,
                job.target_tag, platforms=platforms, progress=tracker.on_progress,
                should_cancel=tracker.should_cancel, fresh_start=job.attempts == 1)
    except copy.Canceled:
        log.append({"event": "Canceled."})
        job.mark_canceled(log=log)
        return MirrorOutcome("canceled")
    except RegistryError as e:
        message = _explain(job, e)
        log.append({"event": f"Error: {message}"})
        if e.permanent or job.attempts >= MAX_ATTEMPTS:
            job.mark_failed(message, code=e.code, log=log)
            return MirrorOutcome("failed")
        job.requeue(message)
        raise TransientMirrorError(message) from None
    except Exception:
        # As image_mirror does, keeping this attempt's log.
        logger.exception("mirror job %s: unexpected error", job_id)
        log.append({"event": f"Error: {UNEXPECTED}"})
        job.mark_failed(UNEXPECTED, code="internal", log=log)
        return MirrorOutcome("failed")
    if result.skipped:
        log.append({"event": f"The target already has {result.digest}: nothing to copy."})
    else:
        log.append({"event": f"Pushed {result.manifests} manifest(s); digest {result.digest}."})
    job.mark_succeeded(digest=result.digest, skipped=result.skipped, log=log)
    if result.bytes_copied:
        seconds = max(time.monotonic() - copy_started, 1e-3)
        metrics.mirror_throughput.observe(result.bytes_copied / seconds)
    job.registry.mark_used()
    if job.source_registry_id:
        job.source_registry.mark_used()
    return MirrorOutcome("succeeded")


def _cancel_abandoned_uploads(job: MirrorJob, target: RegistryClient,
                              log: list[dict]) -> None:
    """Close the upload sessions a dead worker left open in the target registry.

    Its blobs are copied again from the start (a session's received bytes cannot be trusted
    without the hash state the dead worker held), so the sessions are canceled, not reused.
    """
    if not job.open_uploads:
        return
    canceled = copy.cancel_uploads(target, job.target_repository, job.open_uploads)
    if canceled:  # the others had finished, or the registry had purged them
        log.append({"event": f"Closed {canceled} upload(s) the interrupted attempt left open."})


def _not_claimed(job_id: int) -> MirrorOutcome:
    job = MirrorJob.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return MirrorOutcome(job.status if job else "missing")
    if job.cancel_requested and (job.lease_until is None or job.lease_until < timezone.now()):
        job.mark_canceled()
        return MirrorOutcome("canceled")
    # Another worker holds a live lease (a duplicate delivery, or the dead worker's lease has
    # not run out yet): look again when it would expire.
    wait = (job.lease_until - timezone.now()).total_seconds() if job.lease_until else 5
    return MirrorOutcome(job.status, retry_in=max(1.0, wait + 1))


def _explain(job: MirrorJob, e: RegistryError) -> str:
    """Add what to do for the common ECR case: the repository is missing."""
    if job.registry.is_ecr and e.code == "image_not_found" and "NAME_UNKNOWN" in e.message:
        return (f"The repository {job.target_repository} does not exist in ECR and the keys may "
                "not create it: grant ecr:CreateRepository, or create it in the ECR console.")
    return e.message


__all__ = ["image_mirror", "mirror_cancel", "mirror_create", "default_target"]
