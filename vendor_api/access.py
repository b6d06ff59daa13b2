"""What a token may reach: the pages' capability checks, plus the token's app scope.

Another team's object is a 404, as on the pages; so is another app's object for a token
limited to some apps. Such a token gets 403 for what belongs to the whole team (new apps,
registries, the team, tokens).
"""

from django.core.exceptions import PermissionDenied

from portal.roles import check_capability
from releases.models import App
from releases.selectors import team_app

APP_SCOPED = "This token is limited to some apps: use a token for the whole team to do this."


def require(request, capability: str | None = None, *, team_level: bool = False) -> None:
    """Refuse (403) unless the token's role has ``capability``; ``team_level``: and it is not app-scoped."""
    check_capability(request.membership, capability)
    if team_level and request.access.app_ids is not None:
        raise PermissionDenied(APP_SCOPED)


def visible_apps(request):
    apps = App.objects.filter(team=request.team)
    if request.access.app_ids is not None:
        apps = apps.filter(pk__in=request.access.app_ids)
    return apps


def get_app(request, ref: str, *, write: bool = False) -> App:
    """The app ``ref`` (its slug, or its id as Replicated's CLI sends) the token may see, or 404."""
    app_ids = request.access.app_ids
    slug_match = visible_apps(request).filter(slug=ref).exists()
    if slug_match or not ref.isdigit():
        return team_app(team=request.team, slug=ref, write=write, app_ids=app_ids)
    return team_app(team=request.team, pk=int(ref), write=write, app_ids=app_ids)
