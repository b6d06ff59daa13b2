"""External registries linked by a team.

A row holds where a registry is (``endpoint``, canonical ``host[:port]``), how to log in
(``username`` and the encrypted ``secret``) and what the last validation found (``status``).
Single-row state changes are methods here; the network work is in ``services.py``.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.models import Team

from . import crypto

QUEUED_MESSAGE = "Validation is queued: it runs when the worker is reachable."
# A validation queued longer ago than this is assumed lost (worker or broker died) and re-queued.
VALIDATION_LEASE = timedelta(minutes=10)


class Provider(models.TextChoices):
    ECR = "ecr", "Amazon ECR"
    DOCKERHUB = "dockerhub", "Docker Hub"
    GHCR = "ghcr", "GitHub Container Registry"
    GAR = "gar", "Google Artifact Registry"
    QUAY = "quay", "Quay"
    OTHER = "other", "Other OCI registry"


class Status(models.TextChoices):
    NOT_VALIDATED = "not_validated", "Not validated"
    PENDING = "pending", "Pending"
    VALIDATING = "validating", "Validating"
    CONNECTED = "connected", "Connected"
    FAILED = "failed", "Failed"
    UNHEALTHY = "unhealthy", "Unhealthy"


BUSY_STATUSES = (Status.PENDING, Status.VALIDATING)

# How often a page polls a busy row, by the time since its validation was queued: a validation
# usually ends within half a second, so the page asks often at first (the result shows up at
# most 150 ms late) and backs off when the worker is slow, retrying or not running at all.
POLL_SCHEDULE = ((timedelta(seconds=3), "150ms"), (timedelta(seconds=30), "500ms"))
POLL_SLOW = "2s"


class ExternalRegistry(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="external_registries")
    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.ECR)
    endpoint = models.CharField(max_length=255, help_text="host[:port], canonical")
    name = models.SlugField(max_length=63, blank=True)
    username = models.CharField(max_length=255, blank=True)
    # Fernet token with a version prefix (crypto.py); never rendered, logged or audited.
    secret_encrypted = models.TextField(blank=True)
    insecure = models.BooleanField(default=False, help_text="Speak plain HTTP")
    test_image = models.CharField(max_length=255, blank=True)
    # Empty = every app of the team may use it. A string reference: registries/ never imports releases/.
    apps = models.ManyToManyField("releases.App", blank=True, related_name="external_registries")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NOT_VALIDATED)
    status_message = models.TextField(blank=True)
    warning = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    # Bumped whenever what is validated changes (endpoint, credentials): a validation that
    # started before the change must not record its stale result.
    revision = models.PositiveIntegerField(default=1)

    ecr_account = models.CharField(max_length=12, blank=True)
    ecr_region = models.CharField(max_length=32, blank=True)
    # ECR only: the proxy registry passes ECR's blob redirects (pre-signed S3 URLs) on to the
    # customer instead of streaming the layers itself (releases/proxy/redirects.py).
    direct_downloads = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint"]
        constraints = [
            models.UniqueConstraint(fields=["team", "endpoint"], name="registry_unique_endpoint_per_team"),
            models.UniqueConstraint(
                fields=["team", "name"], condition=~Q(name=""), name="registry_unique_name_per_team"
            ),
        ]
        verbose_name = "external registry"
        verbose_name_plural = "external registries"

    def __str__(self):
        return self.name or self.endpoint

    # --- the secret -------------------------------------------------------------------------

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = crypto.encrypt(value)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    @property
    def is_ecr(self) -> bool:
        return self.provider == Provider.ECR

    @property
    def is_busy(self) -> bool:
        return self.status in BUSY_STATUSES

    def poll_interval(self, now=None) -> str:
        """The htmx ``every`` interval for a page showing this busy row (POLL_SCHEDULE)."""
        if self.queued_at is None:
            return POLL_SCHEDULE[-1][1]
        age = (now or timezone.now()) - self.queued_at
        return next((interval for limit, interval in POLL_SCHEDULE if age < limit), POLL_SLOW)

    @property
    def badge_class(self) -> str:
        return {
            Status.CONNECTED: "ok",
            Status.FAILED: "bad",
            Status.UNHEALTHY: "bad",
            Status.PENDING: "warn",
            Status.VALIDATING: "info",
        }.get(self.status, "")

    # --- single-row state changes -----------------------------------------------------------

    def bump_revision(self) -> None:
        """Call before saving a changed endpoint or credentials (in-memory; saved by the caller)."""
        self.revision += 1

    def mark_not_validated(self) -> None:
        self.status, self.status_message, self.warning = Status.NOT_VALIDATED, "", ""
        self.queued_at = None
        self.save(update_fields=["status", "status_message", "warning", "queued_at", "updated_at"])

    def mark_validating(self) -> None:
        """The validation task is about to be queued."""
        self.status, self.status_message = Status.VALIDATING, ""
        self.queued_at = timezone.now()
        self.save(update_fields=["status", "status_message", "queued_at", "updated_at"])

    def mark_pending(self) -> bool:
        """The broker refused the task: the sweep queues it later. False if the row moved on."""
        updated = ExternalRegistry.objects.filter(
            pk=self.pk, revision=self.revision, status=Status.VALIDATING
        ).update(status=Status.PENDING, status_message=QUEUED_MESSAGE, updated_at=timezone.now())
        if updated:
            self.status, self.status_message = Status.PENDING, QUEUED_MESSAGE
        return bool(updated)

    def mark_result(self, *, ok: bool, message: str, warning: str = "", revision: int,
                    periodic: bool = False) -> bool:
        """Record a validation's outcome unless the row changed since it started.

        A periodic re-check never turns a registry Failed: Connected becomes Unhealthy and
        back to Connected when a check passes.
        """
        now = timezone.now()
        if ok:
            status = Status.CONNECTED
        elif periodic and self.status in (Status.CONNECTED, Status.UNHEALTHY):
            status = Status.UNHEALTHY
        else:
            status = Status.FAILED
        rows = ExternalRegistry.objects.filter(pk=self.pk, revision=revision)
        if periodic:
            # A user's validation queued meanwhile owns the status.
            rows = rows.exclude(status__in=BUSY_STATUSES)
        updated = rows.update(
            status=status, status_message=message, warning=warning, last_checked_at=now,
            queued_at=None, updated_at=now,
        )
        if updated:
            self.status, self.status_message, self.warning = status, message, warning
            self.last_checked_at, self.queued_at = now, None
        return bool(updated)

    def mark_used(self) -> None:
        """Someone pulled through these credentials (proxy, mirror)."""
        now = timezone.now()
        ExternalRegistry.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now

    @classmethod
    def needing_queue(cls, *, now=None):
        """Pending rows, and Validating rows whose task seems lost."""
        now = now or timezone.now()
        return cls.objects.filter(
            Q(status=Status.PENDING)
            | Q(status=Status.VALIDATING, queued_at__lt=now - VALIDATION_LEASE)
            | Q(status=Status.VALIDATING, queued_at__isnull=True)
        )

    @classmethod
    def claim_for_queue(cls, pk: int, *, now=None) -> bool:
        """Move one pending (or lost) row to Validating; False if someone else did."""
        now = now or timezone.now()
        return bool(
            cls.needing_queue(now=now).filter(pk=pk).update(
                status=Status.VALIDATING, status_message="", queued_at=now, updated_at=now
            )
        )


