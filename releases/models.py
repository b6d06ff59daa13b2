"""Apps, channels, releases, promotions and customers (with their licenses)."""

import re
import secrets

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from portal.models import Team

DEFAULT_CHANNELS = ("Stable", "Beta", "Unstable")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def slug_from_name(name: str) -> str:
    """`My Sample ECR App` → `my-sample-ecr-app`; only lowercase letters, digits, hyphens."""
    return slugify(name).replace("_", "-").strip("-")[:60]


class App(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="apps")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    proxy_public_images = models.BooleanField(
        default=False, help_text="Send public images through the proxy registry too."
    )
    # The next release sequence. Taken under a row lock so sequences never repeat.
    next_release_sequence = models.PositiveIntegerField(default=1)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "slug"], name="app_slug_unique_per_team")]

    def __str__(self):
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def slug_is_fixed(self) -> bool:
        """The slug is in customers' licenses and image names once a release is promoted."""
        return Promotion.objects.filter(channel__app=self).exists()

    def archive(self) -> None:
        """Hide the app from the lists; its releases and customers are kept."""
        self.archived_at = timezone.now()
        self.save(update_fields=["archived_at"])

    @classmethod
    def create_with_channels(cls, *, team: Team, name: str, slug: str) -> "App":
        with transaction.atomic():
            app = cls.objects.create(team=team, name=name, slug=slug)
            for position, channel_name in enumerate(DEFAULT_CHANNELS):
                Channel.objects.create(app=app, name=channel_name, slug=slug_from_name(channel_name), position=position)
        return app

    def take_release_sequence(self) -> int:
        """Reserve the next release sequence. Call inside a transaction."""
        locked = App.objects.select_for_update().get(pk=self.pk)
        sequence = locked.next_release_sequence
        App.objects.filter(pk=self.pk).update(next_release_sequence=sequence + 1)
        self.next_release_sequence = sequence + 1
        return sequence


class Channel(models.Model):
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    position = models.PositiveIntegerField(default=0)
    next_channel_sequence = models.PositiveIntegerField(default=1)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["app", "slug"], name="channel_slug_unique_per_app")]

    def __str__(self):
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def archive(self) -> None:
        self.archived_at = timezone.now()
        self.save(update_fields=["archived_at"])

    def current_promotion(self) -> "Promotion | None":
        return self.promotions.filter(demoted_at__isnull=True).order_by("-channel_sequence").first()


class Release(models.Model):
    """A set of Kubernetes YAML files. Editable while a draft; frozen once promoted."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="releases")
    sequence = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set at the first promotion; a promoted release is never edited again.
    promoted_at = models.DateTimeField(null=True, blank=True)
    # Set when the digests of the release's images were pinned (releases_entitlements.ImagePin):
    # at its first promotion, or by beat for releases promoted before pins existed. A promoted
    # release without it is allowed through the proxy by repository, as before pins.
    pinned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sequence"]
        constraints = [models.UniqueConstraint(fields=["app", "sequence"], name="release_sequence_unique_per_app")]

    def __str__(self):
        return f"{self.app} release {self.sequence}"

    @property
    def is_draft(self) -> bool:
        return self.promoted_at is None

    @classmethod
    def create_next(cls, *, app: App, user, files: list[tuple[str, str]]) -> "Release":
        """Create the app's next release with ``files`` [(name, content), ...]."""
        with transaction.atomic():
            sequence = app.take_release_sequence()
            release = cls.objects.create(app=app, sequence=sequence, created_by=user)
            ReleaseFile.objects.bulk_create(
                ReleaseFile(release=release, name=name, content=content, position=i)
                for i, (name, content) in enumerate(files)
            )
        return release

    def previous(self) -> "Release | None":
        return self.app.releases.filter(sequence__lt=self.sequence).order_by("-sequence").first()

    def promote_to(self, channel: Channel, *, user, version_label: str, release_notes: str = "",
                   is_required: bool = False) -> "Promotion":
        """Put this release on ``channel`` with the channel's next sequence; freeze it."""
        with transaction.atomic():
            locked = Channel.objects.select_for_update().get(pk=channel.pk)
            channel_sequence = locked.next_channel_sequence
            Channel.objects.filter(pk=channel.pk).update(next_channel_sequence=channel_sequence + 1)
            promotion = Promotion.objects.create(
                channel=channel, release=self, channel_sequence=channel_sequence,
                version_label=version_label, release_notes=release_notes,
                is_required=is_required, promoted_by=user,
            )
            if self.promoted_at is None:
                self.promoted_at = promotion.created_at
                Release.objects.filter(pk=self.pk, promoted_at__isnull=True).update(promoted_at=self.promoted_at)
        return promotion


class ReleaseFile(models.Model):
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    content = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(fields=["release", "name"], name="release_file_name_unique")]

    def __str__(self):
        return self.name


class Promotion(models.Model):
    """A release on a channel (a "channel release"), with its channel sequence."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="promotions")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="promotions")
    channel_sequence = models.PositiveIntegerField()
    version_label = models.CharField(max_length=100)
    release_notes = models.TextField(blank=True)
    is_required = models.BooleanField(default=False)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    demoted_at = models.DateTimeField(null=True, blank=True)
    demoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "channel_sequence"], name="channel_sequence_unique")
        ]

    def __str__(self):
        return f"{self.version_label} on {self.channel}"

    @property
    def is_demoted(self) -> bool:
        return self.demoted_at is not None

    def demote(self, *, user) -> None:
        self.demoted_at = timezone.now()
        self.demoted_by = user
        self.save(update_fields=["demoted_at", "demoted_by"])


class LicenseFieldType(models.TextChoices):
    # KOTS's valueType spellings: a license carries strings, int64 and booleans.
    STRING = "String", "String"
    INTEGER = "Integer", "Integer"
    BOOLEAN = "Boolean", "Boolean"
    TEXT = "Text", "Text (several lines)"


class LicenseField(models.Model):
    """A field every license of the app carries under ``spec.entitlements`` (Replicated's
    "custom license fields"): each customer has a value, else the default."""

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="license_fields")
    name = models.CharField(max_length=64, help_text="The key in the license: seat_count")
    title = models.CharField(max_length=100)
    field_type = models.CharField(max_length=10, choices=LicenseFieldType.choices,
                                  default=LicenseFieldType.STRING)
    # The default value, typed as field_type says (text, int64 or boolean).
    default = models.JSONField(null=True, blank=True)
    is_hidden = models.BooleanField(default=False, help_text="Not shown on the customer's page.")
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["app", "name"],
                                               name="license_field_name_unique_per_app")]

    def __str__(self):
        return self.name


def new_license_id() -> str:
    """An unguessable license ID (about 160 bits), URL- and Basic-auth-safe."""
    return secrets.token_hex(20)


class LicenseType(models.TextChoices):
    DEV = "dev", "Development"
    TRIAL = "trial", "Trial"
    PAID = "paid", "Paid"
    COMMUNITY = "community", "Community"


class Customer(models.Model):
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="customers")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="customers")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    license_type = models.CharField(max_length=20, choices=LicenseType.choices, default=LicenseType.DEV)
    expires_at = models.DateTimeField(null=True, blank=True)
    license_id = models.CharField(max_length=64, unique=True, default=new_license_id)
    # +1 at every change of what the license says, as the vendor portal's licenseSequence.
    license_sequence = models.PositiveIntegerField(default=1)
    # The values of the app's license fields ({field name: value}), signed into the license.
    entitlements = models.JSONField(default=dict, blank=True)
    # Signed into the license now (``isAirgapSupported``); air-gap bundles come later.
    is_airgap_supported = models.BooleanField(
        default=False, help_text="The customer may download air-gap bundles.")
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["app", "name"])]

    def __str__(self):
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def archive(self) -> bool:
        """Archive the customer: the license stops working. False if it already was."""
        with transaction.atomic():
            locked = Customer.objects.select_for_update().get(pk=self.pk)
            if locked.archived_at is not None:
                self.archived_at = locked.archived_at
                return False
            self.archived_at = timezone.now()
            self.save(update_fields=["archived_at", "updated_at"])
        return True

    def restore(self) -> bool:
        """Undo ``archive``: the license works again. False if the customer was not archived."""
        with transaction.atomic():
            locked = Customer.objects.select_for_update().get(pk=self.pk)
            if locked.archived_at is None:
                self.archived_at = None
                return False
            self.archived_at = None
            self.save(update_fields=["archived_at", "updated_at"])
        return True

    def regenerate_license_id(self) -> None:
        """A new license ID; the old one stops working at once."""
        with transaction.atomic():
            locked = Customer.objects.select_for_update().get(pk=self.pk)
            self.license_id = new_license_id()
            self.license_sequence = locked.license_sequence + 1
            self.save(update_fields=["license_id", "license_sequence", "updated_at"])

