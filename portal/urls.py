from django.urls import include, path
from django.views.generic import RedirectView

from . import health, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="releases-app-list", permanent=False)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", health.healthz, name="portal-healthz"),
    path("team/", views.team, name="portal-team"),
    path("audit/", views.audit, name="portal-audit"),
    path("", include("releases.urls")),
    path("", include("registries.urls")),
]
