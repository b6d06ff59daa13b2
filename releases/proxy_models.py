"""The proxy registry's pull log and the private-image check's verdicts."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

# A verdict is reused this long before the image is checked again.
VERDICT_TTL = timedelta(minutes=30)
# A check queued longer ago than this without a verdict is assumed lost and queued again.
CHECK_LEASE = timedelta(minutes=10)


class PullKind(models.TextChoices):
    MANIFEST = "manifest", "Manifest"
    BLOB = "blob", "Blob"


class PullEvent(models.Model):
    """One manifest or blob request through the proxy registry (the pull log)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    app = models.ForeignKey("releases.App", on_delete=models.CASCADE, related_name="pull_events")
    customer = models.ForeignKey("releases.Customer", on_delete=models.CASCADE,
                                 related_name="pull_events")
    # None: a public upstream (the app proxies public images too).
    registry = models.ForeignKey("registries.ExternalRegistry", on_delete=models.SET_NULL,
                                 null=True, blank=True, related_name="pull_events")
    image = models.CharField(max_length=512, help_text="The upstream repository, host/path")
    reference = models.CharField(max_length=200, help_text="Tag or digest asked for")
    kind = models.CharField(max_length=10, choices=PullKind.choices)
    method = models.CharField(max_length=6, default="GET")
    status = models.PositiveSmallIntegerField()
    bytes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["registry", "-created_at"], name="pull_registry_time"),
            models.Index(fields=["customer", "-created_at"], name="pull_customer_time"),
        ]

    def __str__(self):
        return f"{self.image}:{self.reference} {self.kind} {self.status}"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def action(self) -> str:
        return f"{self.method} {self.kind}"


class Verdict(models.TextChoices):
    CHECKING = "checking", "Checking"
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private, proxied"
    UNLINKED = "unlinked", "Private and not linked"
    ERROR = "error", "Could not check"


class ImageVerdict(models.Model):
    """What the private-image check found for one image reference of an app (cached)."""

    app = models.ForeignKey("releases.App", on_delete=models.CASCADE, related_name="image_verdicts")
    reference = models.CharField(max_length=512, help_text="Normalised: host/path:tag[@digest]")
    verdict = models.CharField(max_length=10, choices=Verdict.choices, default=Verdict.CHECKING)
    message = models.TextField(blank=True)
    registry = models.ForeignKey("registries.ExternalRegistry", on_delete=models.SET_NULL,
                                 null=True, blank=True, related_name="+")
    checked_at = models.DateTimeField(null=True, blank=True)
    # When the check task was handed to the broker; None while Checking means the broker
    # refused it (down) and beat's sweep queues it (image_check.verdicts_sweep_pending).
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reference"]
        constraints = [models.UniqueConstraint(fields=["app", "reference"],
                                               name="image_verdict_unique_per_app")]

    def __str__(self):
        return f"{self.reference}: {self.verdict}"

    @property
    def is_fresh(self) -> bool:
        return (self.verdict != Verdict.CHECKING and self.checked_at is not None
                and self.checked_at > timezone.now() - VERDICT_TTL)

    @property
    def fails(self) -> bool:
        return self.verdict == Verdict.UNLINKED

    @property
    def badge_class(self) -> str:
        return {Verdict.PUBLIC: "ok", Verdict.PRIVATE: "info", Verdict.UNLINKED: "bad",
                Verdict.ERROR: "warn"}.get(self.verdict, "")
