"""The option "Let customers download layers directly from AWS S3": ECR only, off by default,
audited when it changes. What it does to pulls is tested in tests/releases/proxy/test_redirects.py."""

import pytest

from portal.models import AuditEvent
from registries.models import ExternalRegistry, Provider, Status
from tests.conftest import login
from tests.registries.product_helpers import make_registry

pytestmark = pytest.mark.django_db

ECR = "123456789012.dkr.ecr.us-east-2.amazonaws.com"
LABEL = "Let customers download layers directly from AWS S3"


def ecr_data(**extra):
    return {"provider": "ecr", "endpoint": ECR, "username": "AKIAEXAMPLE",
            "password": "very-secret-value-42", "skip_validation": "on", **extra}


def test_it_is_off_by_default_and_shown_for_ecr_with_what_it_changes(client, alice):
    login(client, alice)
    page = client.get("/registries/add/").content.decode()
    assert LABEL in page
    assert "must then reach AWS S3" in page and "until it expires" in page
    assert client.post("/registries/add/", ecr_data()).status_code == 302
    registry = ExternalRegistry.objects.get()
    assert registry.direct_downloads is False
    detail = client.get(f"/registries/{registry.pk}/").content.decode()
    assert "through the proxy registry" in detail


def test_it_is_hidden_on_the_form_of_another_kind(client, alice, team):
    registry = make_registry(team, provider=Provider.OTHER, endpoint="registry.example.com",
                             username="u", secret="pw-1", status=Status.CONNECTED)
    login(client, alice)
    page = client.get(f"/registries/{registry.pk}/edit/").content.decode()
    assert '<div id="direct-downloads" hidden>' in page
    ecr = make_registry(team, provider=Provider.ECR, endpoint=ECR, username="AKIAEXAMPLE",
                        secret="pw-2", status=Status.CONNECTED)
    page = client.get(f"/registries/{ecr.pk}/edit/").content.decode()
    assert '<div id="direct-downloads">' in page


def test_it_is_refused_for_another_kind_and_the_form_keeps_what_was_typed(client, alice):
    login(client, alice)
    response = client.post("/registries/add/", {
        "provider": "other", "endpoint": "registry.example.com", "username": "someone",
        "password": "pw-typed-1", "direct_downloads": "on", "skip_validation": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Only Amazon ECR sends layers from AWS S3" in page
    assert 'value="someone"' in page and "pw-typed-1" not in page
    assert not ExternalRegistry.objects.exists()


def test_turning_it_on_is_audited_and_shown(client, bob, team):
    registry = make_registry(team, provider=Provider.ECR, endpoint=ECR, username="AKIAEXAMPLE",
                             secret="very-secret-value-42", status=Status.CONNECTED)
    login(client, bob)
    data = ecr_data(password="", direct_downloads="on")
    data.pop("skip_validation")
    assert client.post(f"/registries/{registry.pk}/edit/", data).status_code == 302
    registry.refresh_from_db()
    assert registry.direct_downloads is True
    # Not a change of what is validated: no new validation.
    assert registry.status == Status.CONNECTED
    event = AuditEvent.objects.get(action="update")
    assert event.detail["changed"] == ["direct_downloads"]
    assert event.detail["direct_downloads"] is True
    assert "directly from AWS S3" in client.get(f"/registries/{registry.pk}/").content.decode()
