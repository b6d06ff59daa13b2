"""The role matrix of the customers, license fields, registries, mirror jobs and image checks routes.

As ``test_role_matrix.py`` (whose route check reads ``PAGES`` here too): each route × each
persona answers as the page that does the same thing ("refused 403", "not found 404" or
"allowed"), and an app-scoped token gets 404 for other apps' objects and 403 for team-level writes.
Pages and routes that change or delete their object each get a fresh one.
"""

import json
from itertools import count

import pytest
from django.test import Client

from portal.models import ApiToken, Role
from registries.mirror.models import MirrorJob
from registries.models import ExternalRegistry, Provider
from releases.models import App, Customer, LicenseField
from tests.conftest import login
from vendor_api import registries as registry_routes

from .conftest import make_token

CUSTOMER = {"name": "Matrix", "app_id": "{app}", "channels": [{"channel_id": "unstable"}]}
PAGE_FORM = {"name": "Matrix Page"}
# (method, API route) → (page method, page URL, API body, what an app-scoped token for another app gets)
PAGES = {
    ("POST", "customer"): ("post", "/customers/new/", CUSTOMER, 404),
    ("GET", "app/<app>/customers"): ("get", "/apps/{app}/", None, 404),
    ("GET", "customer/<customer_id>"): ("get", "/customers/{customer}/", None, 404),
    ("PATCH", "customer/<customer_id>"): ("post", "/customers/{customer}/edit/", {"name": "Renamed"}, 404),
    ("POST", "customer/<customer_id>/archive"): ("post", "/customers/{customer}/archive/", None, 404),
    ("POST", "customer/<customer_id>/unarchive"): ("post", "/customers/{customer}/unarchive/", None, 404),
    ("GET", "app/<app>/customer/<customer_id>/license-download"): (
        "get", "/customers/{customer}/license/", None, 404),
    ("GET", "app/<app>/license-fields"): ("get", "/apps/{app}/license-fields/", None, 404),
    ("POST", "app/<app>/license-field"): (
        "post", "/apps/{app}/license-fields/", {"name": "tier", "type": "String"}, 404),
    ("PUT", "app/<app>/license-field/<field_id>"): (
        "post", "/apps/{app}/license-fields/{field}/edit/", {"title": "New"}, 404),
    ("DELETE", "app/<app>/license-field/<field_id>"): (
        "post", "/apps/{app}/license-fields/{field}/delete/", None, 404),
    ("GET", "external_registries"): ("get", "/registries/", None, 200),
    ("POST", "external_registry"): (
        "post", "/registries/add/", {"provider": "other", "endpoint": "new{n}.example.com", "username": "u",
                                     "password": "p", "skipValidation": True}, 403),
    ("GET", "external_registry/<ref>"): ("get", "/registries/{registry}/", None, 200),
    ("PUT", "external_registry/test"): ("post", "/registries/{registry}/test/", {"endpoint": "{endpoint}"}, 403),
    ("DELETE", "external_registry/<ref>"): ("post", "/registries/{registry}/delete/", None, 403),
    ("POST", "mirror_job"): ("post", "/registries/{registry}/mirror/",
                             {"source": "nginx", "registry": "{endpoint}", "prefix": "demo"}, 403),
    ("GET", "mirror_job/<job_id>"): ("get", "/registries/mirrors/{job}/", None, 200),
    ("GET", "mirror_jobs"): ("get", "/registries/mirrors/", None, 200),
    ("GET", "app/<app>/release/<sequence>/image-checks"): ("get", "/apps/{app}/releases/1/images/", None, 404),
    ("POST", "app/<app>/release/<sequence>/image-checks"): ("post", "/apps/{app}/releases/1/images/", None, 404),
}
# Creating a customer of another team's app: the page's form offers only the user's own apps
# (a form error, 400); the API names the app, which does not exist for that token (404).
MALLORY = {("POST", "customer"): "404"}

_numbers = count(1)


@pytest.fixture
def world(sample_app, monkeypatch):
    # Nothing consumes the test broker: the routes that wait for the worker answer 202 at once.
    monkeypatch.setattr(registry_routes, "WAIT_SECONDS", 0)
    return sample_app


def objects(app) -> dict:
    """A fresh customer, license field, registry and mirror job of ``app``'s team."""
    n = next(_numbers)
    customer = Customer.objects.create(app=app, channel=app.channels.get(slug="unstable"), name=f"Matrix {n}")
    field = LicenseField.objects.create(app=app, name=f"field{n}", title="Field", default="x", position=n)
    registry = ExternalRegistry(team=app.team, provider=Provider.OTHER, endpoint=f"m{n}.example.com", username="u")
    registry.secret = "matrix-secret"
    registry.save()
    job = MirrorJob.objects.create(team=app.team, registry=registry, source_reference="docker.io/library/nginx:latest",
                                   target_repository="demo/nginx", target_tag="latest")
    return {"app": app.slug, "customer": customer.pk, "field": field.pk, "registry": registry.pk,
            "endpoint": registry.endpoint, "job": job.pk, "n": n}


def api_path(route: str, ids: dict) -> str:
    path = (route.replace("<app>", ids["app"]).replace("<customer_id>", str(ids["customer"]))
            .replace("<field_id>", str(ids["field"])).replace("<ref>", ids["endpoint"])
            .replace("<job_id>", str(ids["job"])).replace("<sequence>", "1"))
    return f"/vendor/v3/{path}"


def call_api(token, method, route, body, ids):
    text = json.dumps(body if body is not None else {})
    for key, value in ids.items():
        text = text.replace("{" + key + "}", str(value))
    if method == "GET":
        return Client().get(api_path(route, ids), HTTP_AUTHORIZATION=token)
    return getattr(Client(), method.lower())(api_path(route, ids), data=text, content_type="application/json",
                                             HTTP_AUTHORIZATION=token)


def call_page(user, page_method, url, ids):
    client = login(Client(), user)
    url = url.format(**ids)
    return client.post(url, PAGE_FORM) if page_method == "post" else client.get(url)


def outcome(status: int) -> str:
    return {403: "403", 404: "404"}.get(status, "allowed")


@pytest.mark.parametrize("persona", ["alice", "bob", "sam", "mallory"])
@pytest.mark.parametrize("route", sorted(PAGES))
def test_the_api_answers_as_the_page_does(world, persona, route, request):
    user = request.getfixturevalue(persona)
    method, path = route
    page_method, page_url, body, _scoped = PAGES[route]
    page = call_page(user, page_method, page_url, objects(world))
    response = call_api(make_token(user), method, path, body, objects(world))
    expected = outcome(page.status_code)
    if persona == "mallory":
        expected = MALLORY.get(route, expected)
    assert outcome(response.status_code) == expected, (
        f"{persona} {method} {path}: API {response.status_code} {response.content[:200]!r}, page {page.status_code}")


@pytest.mark.parametrize("route", sorted(PAGES))
def test_an_app_scoped_token(world, alice, team, route):
    other = App.create_with_channels(team=team, name="Other", slug="other")
    method, path = route
    _page_method, _page_url, body, scoped = PAGES[route]
    token = make_token(alice, apps=[other], role=Role.ADMIN, kind=ApiToken.Kind.SERVICE)
    response = call_api(token, method, path, body, objects(world))
    assert response.status_code == scoped, response.content
