"""What every part of the portal shares: teams, memberships with roles, the audit log."""

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    DEVELOPER = "developer", "Developer"
    SUPPORT = "support", "Support"


class Team(models.Model):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class Membership(models.Model):
    """A user's place in a team. A user belongs to one team."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.DEVELOPER)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.user} ({self.get_role_display()}, {self.team})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_edit_releases(self) -> bool:
        """Developers and Admins edit releases, promote and manage registries."""
        return self.role in (Role.ADMIN, Role.DEVELOPER)

    can_manage_registries = can_edit_releases

    @property
    def can_manage_customers(self) -> bool:
        return self.role == Role.ADMIN

    can_manage_team = can_manage_customers
    can_read_audit = can_manage_customers


class AuditEvent(models.Model):
    """One change, with who made it, from where and when. Never holds a secret."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_events", null=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=50, db_index=True)
    object_type = models.CharField(max_length=50, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return f"{self.actor_name} {self.action} {self.object_type} {self.object_repr}"


class Installation(models.Model):
    """What this installation saw last: the keys' identity and its public host names.

    One row (pk=1). The fingerprint and the canary let a restore with the wrong keys fail its
    readiness check at once instead of signing licenses no cluster accepts or failing on every
    registry secret later. The hosts let a change of PORTAL_URL or PORTAL_PROXY_HOST reissue
    every license (they name the old host).
    """

    signing_key_fingerprint = models.CharField(max_length=100, blank=True)
    encryption_canary = models.TextField(blank=True)
    portal_url = models.CharField(max_length=300, blank=True)
    proxy_host = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"installation at {self.portal_url or 'an unrecorded URL'}"

    @classmethod
    def current(cls) -> "Installation":
        return cls.objects.get_or_create(pk=1)[0]
