"""The proxy registry's pull log."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
    # The release whose pin a tag resolved to (None: a digest, a blob, a legacy release).
    release = models.ForeignKey("releases.Release", on_delete=models.SET_NULL, null=True,
                                blank=True, related_name="+")
    # Why what was served differs from what upstream holds now (a tag moved upstream).
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        db_table = "releases_pullevent"  # the table it had as a model of releases
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
