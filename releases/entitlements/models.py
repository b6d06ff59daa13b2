"""Pins: the digest (and the whole manifest tree) each image of a promoted release resolved to,
frozen once taken; and which pins each license has pulled."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PinSource(models.TextChoices):
    PROMOTION = "promotion", "At promotion"
    FIRST_PULL = "first_pull", "At the first pull"
    BACKFILL = "backfill", "Pinned after the upgrade"


class ImagePin(models.Model):
    """One image of a promoted release, pinned by digest.

    ``reference`` is the image as the release's files name it, normalised (host/path:tag[@digest],
    the private-image check's key); ``domain``/``path`` is the upstream repository it is pulled
    from (for an image written on the portal's own proxy host, the repository behind it).
    ``digest`` "" means it could not be resolved at promotion: the first successful pull through
    the proxy fills it, and from then on it is frozen like the others.

    ``tree`` lists every manifest and blob under ``digest``: ``[{"digest", "mediaType", "size",
    "kind"}]`` with kind ``index``, ``manifest``, ``config`` or ``layer``; the top manifest is the
    first entry. A license may pull exactly these for its entitled releases.
    """

    release = models.ForeignKey("releases.Release", on_delete=models.CASCADE, related_name="pins")
    reference = models.CharField(max_length=512)
    domain = models.CharField(max_length=255)
    path = models.CharField(max_length=255)
    tag = models.CharField(max_length=128, blank=True)
    digest = models.CharField(max_length=100, blank=True)
    media_type = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(default=0)
    tree = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=12, choices=PinSource.choices, default=PinSource.PROMOTION)
    pinned_at = models.DateTimeField(null=True, blank=True)
    # The periodic re-check found ``digest`` gone upstream (an ECR lifecycle policy expired
    # it, say): customers can no longer pull this release's image. Cleared if it comes back.
    missing_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["release", "reference"]
        constraints = [models.UniqueConstraint(fields=["release", "reference"],
                                               name="image_pin_unique_per_release")]
        indexes = [models.Index(fields=["domain", "path"], name="image_pin_repository")]

    def __str__(self):
        return f"{self.reference} @ {self.digest or 'unresolved'}"

    @property
    def is_resolved(self) -> bool:
        return bool(self.digest)

    @property
    def digests(self) -> set[str]:
        return {node["digest"] for node in self.tree if node.get("digest")} | (
            {self.digest} if self.digest else set())


class PulledImage(models.Model):
    """A license pulled (a manifest of) this pin through the proxy. After the pin stops being
    entitled (demotion, change of channel), the license keeps pulling it for
    ``PORTAL_ENTITLEMENT_GRACE_DAYS`` counted from ``lost_at``; a license that never pulled it
    cannot start."""

    customer = models.ForeignKey("releases.Customer", on_delete=models.CASCADE,
                                 related_name="pulled_images")
    pin = models.ForeignKey(ImagePin, on_delete=models.CASCADE, related_name="pulls")
    first_pulled_at = models.DateTimeField(default=timezone.now)
    last_pulled_at = models.DateTimeField(default=timezone.now)
    # When the pin stopped being entitled for this license; None while it is.
    lost_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "pin"],
                                               name="pulled_image_unique")]

    def __str__(self):
        return f"{self.customer_id} pulled {self.pin_id}"
