"""Every API route × every role answers the same 403/404 as the page that does the same thing.

The routes come from the NinjaAPI's own URL patterns, so a new route joins this test on its
own, and fails it until ``PAGES`` says which page it stands for. The page is then called by
the same persona, and both answers are compared as "refused 403", "not found 404" or "allowed"
(any other answer: a page's redirect or form errors, the API's JSON or its 400).

Besides the roles: another team's objects are 404; an app-scoped token gets 404 for other
apps' objects and 403 for team-level writes.
"""

import functools
import inspect
import json

import pytest
from django.test import Client

from portal.models import ApiToken, Role
from releases.models import App, Release
from tests.conftest import NGINX_DEPLOYMENT, login
from vendor_api import releases as release_routes
from vendor_api.api import api as vendor_api

from .conftest import make_token
from .test_registries_customers_role_matrix import PAGES as MORE_PAGES

SPEC = json.dumps([{"name": "deployment.yaml", "path": "deployment.yaml", "content": NGINX_DEPLOYMENT}])

# (method, API route) → (page method, page URL, API body, team-level write)
PAGES = {
    ("GET", "apps"): ("get", "/apps/", None, False),
    ("POST", "app"): ("post", "/apps/new/", {"name": "Matrix App"}, True),
    ("GET", "app/<app>/channels"): ("get", "/apps/{app}/", None, False),
    ("GET", "app/<app>/channel/<channel>"): ("get", "/apps/{app}/channels/unstable/", None, False),
    ("POST", "app/<app>/channel"): ("post", "/apps/{app}/channels/new/", {"name": "Matrix"}, False),
    ("POST", "app/<app>/release"): ("post", "/apps/{app}/releases/new/", {"spec": SPEC}, False),
    ("GET", "app/<app>/releases"): ("get", "/apps/{app}/releases/", None, False),
    ("GET", "app/<app>/release/<sequence>"): ("get", "/apps/{app}/releases/2/", None, False),
    ("PUT", "app/<app>/release/<sequence>"): ("post", "/apps/{app}/releases/2/edit/", {"spec": SPEC}, False),
    ("POST", "app/<app>/release/<sequence>/promote"): (
        "post", "/apps/{app}/releases/2/promote/", {"channelIds": ["beta"], "versionLabel": "9.9.9"}, False),
    ("POST", "app/<app>/channel/<channel>/release/<channelSequence>/demote"): (
        "post", "/apps/{app}/promotions/{promotion}/demote/", None, False),
}


def api_routes() -> list[tuple[str, str]]:
    """(method, route) of every operation mounted at /vendor/v3/."""
    routes = []
    for pattern in vendor_api.urls[0]:
        if isinstance(pattern.callback, functools.partial):  # ninja's own pages: docs, schema, home
            continue
        route = str(pattern.pattern)
        # The URL pattern's view closes over its PathView, which holds the operations.
        path_view = inspect.getclosurevars(pattern.callback).nonlocals["self"]
        routes += [(method, route) for op in path_view.operations for method in op.methods]
    return sorted(set(routes))


def test_every_route_has_its_page_in_the_table():
    missing = [r for r in api_routes() if r not in PAGES and r not in MORE_PAGES]
    assert not missing, f"add these API routes to PAGES with their page: {missing}"


def api_path(route: str, app: str) -> str:
    path = (route.replace("<app>", app).replace("<channel>", "unstable")
            .replace("<sequence>", "2").replace("<channelSequence>", "1"))
    return f"/vendor/v3/{path}"


def outcome(status: int) -> str:
    return {403: "403", 404: "404"}.get(status, "allowed")


@pytest.fixture
def world(sample_app, alice, bob, sam, mallory, monkeypatch):
    monkeypatch.setattr(release_routes, "PROMOTE_WAIT_SECONDS", 0)
    Release.create_next(app=sample_app, user=bob, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
    App.create_with_channels(team=mallory.membership.team, name="Mallory's", slug="mallorys")
    return sample_app


def call_api(token, method, route, app, body):
    client = Client()
    kwargs = {"content_type": "application/json", "data": body} if body is not None else {}
    if method != "GET" and body is None:
        kwargs = {"content_type": "application/json", "data": {}}
    return getattr(client, method.lower())(api_path(route, app), HTTP_AUTHORIZATION=token, **kwargs)


def call_page(user, page_method, url, world):
    promotion = world.channels.get(slug="unstable").promotions.get(channel_sequence=1)
    client = login(Client(), user)
    url = url.format(app=world.slug, promotion=promotion.pk)
    data = {"name": "Matrix Page", "version_label": "9.9.9"} if page_method == "post" else None
    return getattr(client, page_method)(url, data) if data else client.get(url)


@pytest.mark.parametrize("persona", ["alice", "bob", "sam", "mallory"])
@pytest.mark.parametrize("route", sorted(PAGES))
def test_the_api_answers_as_the_page_does(world, persona, route, request):
    user = request.getfixturevalue(persona)
    method, path = route
    page_method, page_url, body, _team_level = PAGES[route]
    page = call_page(user, page_method, page_url, world)
    token = make_token(user)
    response = call_api(token, method, path, world.slug, body)
    assert outcome(response.status_code) == outcome(page.status_code), (
        f"{persona} {method} {path}: API {response.status_code} {response.content[:200]!r}, "
        f"page {page.status_code}")
    if persona == "mallory" and "<app>" in path:
        assert response.status_code == 404


@pytest.mark.parametrize("route", sorted(PAGES))
def test_an_app_scoped_token(world, alice, route, team):
    """404 for other apps' objects, 403 for team-level writes, the page's answer for its own app."""
    other = App.create_with_channels(team=team, name="Other", slug="other")
    method, path = route
    page_method, page_url, body, team_level = PAGES[route]
    scoped = make_token(alice, apps=[other], role=Role.ADMIN, kind=ApiToken.Kind.SERVICE)
    response = call_api(scoped, method, path, world.slug, body)
    if team_level:
        assert response.status_code == 403
    elif "<app>" in path:
        assert response.status_code == 404, response.content
    else:
        assert response.status_code == 200
