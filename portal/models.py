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


# Roles from least to most: a token's role is at most its creator's, a personal token's at most
# its user's current one.
ROLE_RANK = {Role.SUPPORT: 0, Role.DEVELOPER: 1, Role.ADMIN: 2}


def lower_role(a: str, b: str) -> str:
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b


class ApiToken(models.Model):
    """A credential for the vendor API: a team's service account (CI) or a user's personal token.

    Only the SHA-256 of the token is kept (``portal.tokens``): the token has 192 random bits,
    so a fast hash is enough and every API call can afford to check one. ``prefix`` is the
    visible start of the token, shown in lists and used to find the row.
    """

    class Kind(models.TextChoices):
        SERVICE = "service", "Service account"
        PERSONAL = "personal", "Personal"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_tokens")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The owner of a personal token; empty for a service account.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="api_tokens")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=20, choices=Role.choices)
    # Empty: every app of the team.
    apps = models.ManyToManyField("releases.App", blank=True, related_name="+")
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    # Kept so the page still says who made a service account after they left.
    created_by_name = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class IdempotencyKey(models.Model):
    """The first answer to a create sent with an ``Idempotency-Key`` header, per token, kept 24 h.

    The unique constraint is the lock: a second request with the same key cannot insert its
    row, so it either replays ``response`` or, while the first is still running, is refused.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    # SHA-256 of method, path and body: the same key with another request is refused.
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)  # empty while the first request runs
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="idempotency_key_unique_per_token")]

    def __str__(self):
        return self.key
