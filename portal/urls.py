from django.urls import include, path
from django.views.generic import RedirectView

from vendor_api.api import api as vendor_api

from . import health, token_views, views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="releases-app-list", permanent=False)),
    # Before Django's auth URLs: the same routes, bounded (and audited).
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/password_change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_reset/", views.password_reset, name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", health.healthz, name="portal-healthz"),
    path("team/", views.team, name="portal-team"),
    path("team/add/", views.team_add, name="portal-team-add"),
    path("team/<int:pk>/role/", views.team_role, name="portal-team-role"),
    path("team/<int:pk>/remove/", views.team_remove, name="portal-team-remove"),
    path("team/<int:pk>/password/", views.team_password, name="portal-team-password"),
    path("audit/", views.audit, name="portal-audit"),
    path("team/tokens/", token_views.tokens, name="portal-tokens"),
    path("account/tokens/", token_views.my_tokens, name="portal-my-tokens"),
    path("tokens/<int:pk>/revoke/", token_views.token_revoke_view, name="portal-token-revoke"),
    path("vendor/v3/", vendor_api.urls),
    path("", include("releases.urls")),
    path("", include("registries.urls")),
]
