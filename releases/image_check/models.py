"""The private-image check's verdicts."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

# A verdict is reused this long before the image is checked again.
VERDICT_TTL = timedelta(minutes=30)
# A check queued longer ago than this without a verdict is assumed lost and queued again.
CHECK_LEASE = timedelta(minutes=10)


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
    # What the reference resolved to at the check (public or private; "" when it could not be
    # read): the top manifest's digest, media type and size, and the whole tree under it
    # (``releases.entitlements.trees``). A release's first promotion copies them as its pins.
    digest = models.CharField(max_length=100, blank=True)
    media_type = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(default=0)
    tree = models.JSONField(default=list, blank=True)
    # When the check task was handed to the broker; None while Checking means the broker
    # refused it (down) and beat's sweep queues it (services.verdicts_sweep_pending).
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "releases_imageverdict"  # the table it had as a model of releases
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
