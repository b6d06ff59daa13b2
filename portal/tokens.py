"""API tokens: minting, checking at every call, revoking.

A token reads ``vp_<8 hex>_<40 hex>``: 192 random bits, shown once. The database keeps its
SHA-256 and its visible prefix (``vp_<8 hex>``); a call finds the rows by prefix and compares
the hash in constant time. A slow password hash would buy nothing against 192 random bits and
would cost every API call.

What a token may do is decided at use, not only at creation: a personal token acts with the
lower of its own role and its user's current one, and stops working when its user leaves the
team (``revoke_personal_tokens``, called from the member's removal).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .audit import audit_log
from .models import ROLE_RANK, ApiToken, Membership, Team, lower_role

PREFIX = "vp_"
LAST_USED_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    """A token and its visible prefix."""
    lookup = secrets.token_hex(4)
    token = f"{PREFIX}{lookup}_{secrets.token_hex(20)}"
    return token, f"{PREFIX}{lookup}"


def _prefix_of(token: str) -> str | None:
    head, sep, _rest = token[: len(PREFIX) + 9].rpartition("_")
    if not sep or not token.startswith(PREFIX) or len(head) != len(PREFIX) + 8:
        return None
    return head


def token_create(*, team: Team, creator, kind: str, name: str, role: str, apps=(),
                 expires_in_days: int | None = None, request=None) -> tuple[ApiToken, str]:
    """Mint a token; returns the row and the token itself (shown once, never stored).

    ``creator`` is the user making it (None from the command line); its role bounds the token's.
    A personal token belongs to its creator.
    """
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a name, such as ci-release."})
    if role not in ROLE_RANK:
        raise ValidationError({"role": "Choose Admin, Developer or Support."})
    membership = None
    if creator is not None:
        membership = Membership.objects.filter(user=creator, team=team).first()
        if membership is None:
            raise PermissionDenied("You are not a member of this team.")
        if ROLE_RANK[role] > ROLE_RANK[membership.role]:
            raise ValidationError({"role": f"A token's role can be at most yours ({membership.get_role_display()})."})
    if kind == ApiToken.Kind.PERSONAL and creator is None:
        raise ValidationError("A personal token needs its user.")
    apps = list(apps)
    if any(app.team_id != team.pk for app in apps):
        raise ValidationError({"apps": "Choose apps of your team."})
    token, prefix = _new_token()
    with transaction.atomic():
        row = ApiToken.objects.create(
            team=team, kind=kind, user=creator if kind == ApiToken.Kind.PERSONAL else None, name=name,
            role=role, prefix=prefix, token_hash=_hash(token), created_by=creator,
            created_by_name=creator.get_username() if creator is not None else "",
            expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        if apps:
            row.apps.set(apps)
        audit_log(request=request, team=team, action="create", obj=row, object_type="apitoken", actor=creator,
                  object_repr=f"{row.name} ({prefix})",
                  detail={"kind": kind, "role": role, "apps": [a.slug for a in apps],
                          "expires_at": row.expires_at.isoformat() if row.expires_at else None})
    return row, token


def token_revoke(*, token: ApiToken, user, request=None) -> bool:
    """Revoke ``token``; False if it already was."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            audit_log(request=request, team=token.team, action="revoke", obj=token, object_type="apitoken",
                      actor=user, object_repr=f"{token.name} ({token.prefix})")
    return bool(updated)


def revoke_personal_tokens(*, user, team: Team) -> int:
    """A member left ``team``: their personal tokens stop working (service accounts stay)."""
    return ApiToken.objects.filter(team=team, user=user, kind=ApiToken.Kind.PERSONAL,
                                   revoked_at__isnull=True).update(revoked_at=timezone.now())


@dataclass
class TokenAccess:
    """What a checked token may do: its team, its role now, its apps (None: all of the team's)."""

    token: ApiToken
    membership: Membership  # unsaved: carries the team and the effective role's capabilities
    app_ids: frozenset[int] | None
    user: object | None  # the personal token's user, for created_by fields; None for a service account


class TokenRefused(Exception):
    """A token that exists but may not be used now (revoked, expired, its user left)."""


def token_check(raw: str) -> TokenAccess | None:
    """The access ``raw`` gives, or None when no token matches (a guess); raises ``TokenRefused``."""
    prefix = _prefix_of(raw)
    if prefix is None:
        return None
    digest = _hash(raw)
    rows = list(ApiToken.objects.filter(prefix=prefix).select_related("team", "user__membership"))
    row = next((r for r in rows if hmac.compare_digest(r.token_hash, digest)), None)
    if row is None:
        return None
    now = timezone.now()
    if row.revoked_at is not None:
        raise TokenRefused(f"This token ({row.prefix}) was revoked: ask an Admin for a new one.")
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenRefused(f"This token ({row.prefix}) expired on {row.expires_at:%Y-%m-%d}: create a new one.")
    role = row.role
    user = None
    if row.kind == ApiToken.Kind.PERSONAL:
        member = getattr(row.user, "membership", None) if row.user is not None else None
        if member is None or member.team_id != row.team_id or not row.user.is_active:
            raise TokenRefused(f"This token ({row.prefix}) belongs to someone no longer on the team.")
        role = lower_role(role, member.role)
        user = row.user
    app_ids = frozenset(row.apps.values_list("pk", flat=True))
    return TokenAccess(token=row, membership=Membership(team=row.team, role=role),
                       app_ids=app_ids or None, user=user)


def token_touch(token: ApiToken, address: str | None) -> None:
    """Record the last use, at most once a minute (an API call must not always write)."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_address=address)
    token.last_used_at, token.last_used_address = now, address
