"""Write the audit log. Callers pass what changed, never a secret."""

from django.db import models

from .models import AuditEvent, Team


def client_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None if request is not None else None


def audit_log(
    *,
    request=None,
    team: Team | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_repr: str = "",
    detail: dict | None = None,
    actor=None,
) -> AuditEvent:
    """Record ``action`` (create, update, delete, promote, ...) on ``obj`` by the request's user."""
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    actor_name = actor.get_username() if actor is not None else ""
    # A change through the vendor API names its token: a service account has no user at all.
    token = getattr(request, "api_token", None)
    if token is not None:
        actor_name = f"{actor_name} (token {token.name})" if actor_name else f"token {token.name}"
    return AuditEvent.objects.create(
        team=team,
        actor=actor,
        actor_name=actor_name[:150],
        action=action,
        object_type=object_type or (obj._meta.model_name if obj is not None else ""),
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=(object_repr or (str(obj) if obj is not None else ""))[:200],
        detail=detail or {},
        source_address=client_address(request),
    )
