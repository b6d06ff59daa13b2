"""Access checks shared by every page: a user sees only their team's objects."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from .models import Membership


def get_membership(request) -> Membership:
    user = request.user
    relation = Membership._meta.get_field("user").remote_field
    if user.is_authenticated and not relation.is_cached(user):
        # The membership with its team in one query (not two), cached on the user for the
        # templates' ``membership`` context processor.
        membership = Membership.objects.select_related("team").filter(user_id=user.pk).first()
        relation.set_cached_value(user, membership)
    membership = getattr(user, "membership", None)
    if membership is None:
        # A user without a team (e.g. a bare superuser) may use no page.
        raise PermissionDenied("You are not a member of any team.")
    return membership


def check_capability(membership: Membership, capability: str | None) -> None:
    """Refuse (403) unless ``membership``'s role has ``capability`` (e.g. "can_edit_releases").

    The pages' ``team_required`` and the vendor API (whose membership is the token's) share it."""
    if capability and not getattr(membership, capability):
        raise PermissionDenied("Your role does not allow this.")


def team_required(capability: str | None = None):
    """Require login and a team; with ``capability`` (e.g. "can_edit_releases"), that too (403).

    The view receives ``request.membership``.
    """

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            membership = get_membership(request)
            check_capability(membership, capability)
            request.membership = membership
            request.team = membership.team
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
