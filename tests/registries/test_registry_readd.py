"""Adding a registry whose endpoint the team already linked: the error links to the existing one."""

import pytest

from registries.forms import RegistryForm
from registries.models import ExternalRegistry, Provider
from tests.conftest import login
from tests.registries.product_helpers import make_registry

pytestmark = pytest.mark.django_db

ENDPOINT = "registry.example.com"


def test_re_adding_an_endpoint_links_to_the_registry_already_there(client, alice, team):
    existing = make_registry(team, provider=Provider.OTHER, endpoint=ENDPOINT)
    login(client, alice)
    response = client.post("/registries/add/", {
        "provider": "other", "endpoint": f"https://{ENDPOINT}/", "username": "robot-7",
        "password": "s3cret-typed", "name": "second", "test_image": "demo-apps/nginx:latest",
        "skip_validation": "on",
    })
    assert response.status_code == 400
    page = response.content.decode()
    assert (f'{ENDPOINT} is already linked: <a href="/registries/{existing.pk}/">open it</a>'
            in page)
    # What was typed stays, except the password (never rendered back).
    for typed in ('value="https://registry.example.com/"', 'value="robot-7"', 'value="second"',
                  'value="demo-apps/nginx:latest"'):
        assert typed in page
    assert "s3cret-typed" not in page
    assert ExternalRegistry.objects.count() == 1


def test_editing_onto_an_endpoint_already_linked_links_to_it(client, alice, team):
    existing = make_registry(team, endpoint=ENDPOINT)
    other = make_registry(team, endpoint="other.example.com")
    login(client, alice)
    response = client.post(f"/registries/{other.pk}/edit/", {
        "provider": "other", "endpoint": ENDPOINT, "username": "user", "password": "typed-again",
    })
    assert response.status_code == 400
    assert f'<a href="/registries/{existing.pk}/">open it</a>' in response.content.decode()


def test_another_teams_registry_on_the_same_endpoint_is_neither_refused_nor_linked(client, alice, mallory, other_team):
    theirs = make_registry(other_team, endpoint=ENDPOINT)
    login(client, alice)
    response = client.post("/registries/add/", {
        "provider": "other", "endpoint": ENDPOINT, "username": "user", "password": "pw",
        "skip_validation": "on",
    })
    assert response.status_code == 302
    assert ExternalRegistry.objects.filter(endpoint=ENDPOINT).count() == 2
    assert f"/registries/{theirs.pk}/" not in client.get("/registries/").content.decode()


def test_the_form_keeps_the_duplicate_rule(team):
    make_registry(team, endpoint=ENDPOINT)
    form = RegistryForm({"provider": "other", "endpoint": ENDPOINT, "username": "u", "password": "p"},
                        team=team, apps=team.apps.all())
    assert not form.is_valid()
    [message] = form.errors["endpoint"]
    assert message.startswith(f"{ENDPOINT} is already linked: ")
