"""Queries of releases that several rooms share (pages, the proxy, the private-image check)."""

from django.db.models import Q

from registries.models import ExternalRegistry


def registries_for_app(app):
    """The team's registries this app may use (an empty app list means every app)."""
    return ExternalRegistry.objects.filter(team_id=app.team_id).filter(
        Q(apps=app) | Q(apps__isnull=True)
    ).distinct()
