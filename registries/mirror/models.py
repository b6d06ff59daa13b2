"""MirrorJob: one copy of an image into a linked registry.

The model of the registries_mirror app (table registries_mirrorjob, kept from when it lived in
registries). Single-row state changes are methods here (claim with a lease, progress, finish,
cancel); the copying is services.py.

Push credentials typed for one job are stored encrypted on the row (never in a task argument)
and wiped by every transition that ends the job.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from portal.models import Team

from .. import crypto

LOG_LIMIT = 500  # per-blob log lines kept on the row

QUEUE_UNREACHABLE = ("The worker queue is unreachable: the copy starts on its own when the queue "
                     "is back.")


def lease_length() -> timedelta:
    # Shorter than the broker's visibility timeout: when a killed worker's task is redelivered,
    # its lease has run out and the new worker may take over.
    return timedelta(seconds=settings.PORTAL_MIRROR_LEASE_SECONDS)


class MirrorJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="mirror_jobs")
    registry = models.ForeignKey("registries.ExternalRegistry", on_delete=models.CASCADE,
                                 related_name="mirror_jobs", help_text="The target registry")
    source_reference = models.CharField(max_length=512, help_text="Normalised, e.g. docker.io/library/nginx:latest")
    source_registry = models.ForeignKey("registries.ExternalRegistry", null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+",
                                        help_text="A linked registry whose credentials read the source")
    platforms = models.CharField(max_length=255, blank=True, help_text="Comma-separated; empty = all")
    target_repository = models.CharField(max_length=255)
    target_tag = models.CharField(max_length=128)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    blobs_done = models.PositiveIntegerField(default=0)
    blobs_total = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    log = models.JSONField(default=list, blank=True)
    # Upload sessions open in the target registry (their Location as the registry gave it: a
    # path with the registry's upload state, never a credential), so that the worker taking
    # over from a dead one can cancel them. Never shown on a page or logged.
    open_uploads = models.JSONField(default=list, blank=True)

    result_digest = models.CharField(max_length=100, blank=True)
    result_skipped = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)

    # Typed for this job only; Fernet via crypto.py; wiped when the job ends.
    push_username = models.CharField(max_length=255, blank=True)
    push_secret_encrypted = models.TextField(blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        db_table = "registries_mirrorjob"
        indexes = [models.Index(fields=["team", "status"], name="mirrorjob_team_status")]

    def __str__(self):
        return f"{self.source_reference} -> {self.target_reference}"

    # --- reading --------------------------------------------------------------------------------

    @property
    def target_reference(self) -> str:
        return f"{self.registry.endpoint}/{self.target_repository}:{self.target_tag}"

    @property
    def mirrored_reference(self) -> str:
        """The image to put in a release: pinned to the digest."""
        if not self.result_digest:
            return self.target_reference
        return f"{self.target_reference}@{self.result_digest}"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if self.bytes_total:
            return min(99, int(self.bytes_done * 100 / self.bytes_total))
        return 0

    @property
    def badge_class(self) -> str:
        return {"succeeded": "ok", "failed": "bad", "canceled": "warn", "running": "info"}.get(
            self.status, "")

    @property
    def has_push_credentials(self) -> bool:
        return bool(self.push_secret_encrypted)

    @property
    def push_secret(self) -> str:
        return crypto.decrypt(self.push_secret_encrypted) if self.push_secret_encrypted else ""

    @push_secret.setter
    def push_secret(self, value: str) -> None:
        self.push_secret_encrypted = crypto.encrypt(value) if value else ""

    # --- claiming ---------------------------------------------------------------------------------

    @classmethod
    def claim(cls, pk: int) -> MirrorJob | None:
        """Take the job for this worker: queued, or running with an expired lease (a dead worker).

        A conditional update, so two deliveries of one task never both run it (STYLE.md).
        """
        now = timezone.now()
        claimed = cls.objects.filter(
            Q(status=cls.Status.QUEUED) | Q(status=cls.Status.RUNNING, lease_until__lt=now),
            pk=pk, cancel_requested=False,
        ).update(status=cls.Status.RUNNING, lease_until=now + lease_length(),
                 attempts=models.F("attempts") + 1, updated_at=now)
        if not claimed:
            return None
        job = cls.objects.select_related("registry", "source_registry").get(pk=pk)
        if job.started_at is None:
            job.started_at = now
            job.save(update_fields=["started_at"])
        return job

    def save_progress(self, *, blobs_done: int, blobs_total: int, bytes_done: int,
                      bytes_total: int, log: list[dict] | None = None,
                      open_uploads: list[str] | None = None) -> bool:
        """Record progress and renew the lease; False when the job should stop (canceled, lost).

        The counts never go down: a worker taking over starts counting again and the bytes a
        dead worker had in flight are sent again, but the page must not jump backwards.
        """
        now = timezone.now()
        fields = dict(blobs_total=blobs_total, bytes_total=bytes_total,
                      lease_until=now + lease_length(), updated_at=now)
        if log is not None:
            fields["log"] = log[-LOG_LIMIT:]
        if open_uploads is not None:
            fields["open_uploads"] = list(open_uploads)
        updated = MirrorJob.objects.filter(
            pk=self.pk, status=self.Status.RUNNING, cancel_requested=False).update(
            blobs_done=Greatest("blobs_done", Value(blobs_done)),
            bytes_done=Greatest("bytes_done", Value(bytes_done)), **fields)
        for key, value in fields.items():
            setattr(self, key, value)
        self.blobs_done = max(self.blobs_done, blobs_done)
        self.bytes_done = max(self.bytes_done, bytes_done)
        return bool(updated)

    def note_queued(self, queued: bool) -> None:
        """Say on the page whether the worker queue took the job (a queued job only)."""
        if queued:
            MirrorJob.objects.filter(pk=self.pk, error_code="queue_unreachable").update(
                error="", error_code="")
        else:
            MirrorJob.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
                error=QUEUE_UNREACHABLE, error_code="queue_unreachable")

    def requeue(self, error: str) -> None:
        """A transient failure: the task retries later; the lease is released."""
        MirrorJob.objects.filter(pk=self.pk, status=self.Status.RUNNING).update(
            status=self.Status.QUEUED, lease_until=None, error=error, updated_at=timezone.now())
        self.status, self.error = self.Status.QUEUED, error

    # --- ending (each wipes the push credentials) -------------------------------------------------

    def _finish(self, status: str, **fields) -> bool:
        now = timezone.now()
        values = dict(status=status, lease_until=None, finished_at=now, updated_at=now,
                      push_username="", push_secret_encrypted="", open_uploads=[], **fields)
        with transaction.atomic():
            updated = MirrorJob.objects.filter(
                pk=self.pk, status__in=self.ACTIVE).update(**values)
        if updated:
            for key, value in values.items():
                setattr(self, key, value)
        return bool(updated)

    def mark_succeeded(self, *, digest: str, skipped: bool = False, log: list[dict] | None = None) -> bool:
        fields = dict(result_digest=digest, result_skipped=skipped, error="", error_code="")
        if self.bytes_total:
            fields.update(bytes_done=self.bytes_total, blobs_done=self.blobs_total)
        if log is not None:
            fields["log"] = log[-LOG_LIMIT:]
        return self._finish(self.Status.SUCCEEDED, **fields)

    def mark_failed(self, error: str, *, code: str = "", log: list[dict] | None = None) -> bool:
        fields = dict(error=error, error_code=code)
        if log is not None:
            fields["log"] = log[-LOG_LIMIT:]
        return self._finish(self.Status.FAILED, **fields)

    def mark_canceled(self, *, log: list[dict] | None = None) -> bool:
        fields = {"log": log[-LOG_LIMIT:]} if log is not None else {}
        return self._finish(self.Status.CANCELED, **fields)

    def request_cancel(self) -> None:
        """A queued job ends now; a running one is flagged and its worker stops within seconds."""
        with transaction.atomic():
            job = MirrorJob.objects.select_for_update().get(pk=self.pk)
            if job.status == self.Status.QUEUED:
                job.mark_canceled()
            elif job.status == self.Status.RUNNING and job.lease_until and job.lease_until < timezone.now():
                job.mark_canceled()  # its worker is gone
            elif job.status == self.Status.RUNNING:
                MirrorJob.objects.filter(pk=self.pk).update(cancel_requested=True,
                                                            updated_at=timezone.now())
        self.refresh_from_db()
