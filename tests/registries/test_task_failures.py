"""A validation always ends: a stored endpoint the HTTP client cannot use, or any unexpected
error, leaves the registry Failed with a message, never Validating (and the page stops polling)."""

import logging

import pytest

from registries import tasks
from registries.models import ExternalRegistry, Status
from registries.oci.client import RegistryClient
from tests.conftest import login
from tests.registries.product_helpers import celery_conf, make_registry

pytestmark = pytest.mark.django_db

SECRET = "stored-secret-never-shown"


@pytest.fixture
def eager():
    with celery_conf(task_always_eager=True) as app:
        yield app


# Rows saved before the form refused these spellings.
@pytest.mark.parametrize("endpoint", ["0177.0.0.1:5302", "256.1.1.1", "999.999.999.999",
                                      "xn--zz.example.com", "1.2.3"])
def test_a_stored_endpoint_the_client_cannot_use_ends_failed(team, eager, caplog, endpoint):
    registry = make_registry(team, endpoint=endpoint, name="old", secret=SECRET)
    registry.mark_validating()
    assert tasks.validate_registry.delay(registry.pk).successful()
    registry.refresh_from_db()
    assert registry.status == Status.FAILED
    assert "Not a valid endpoint" in registry.status_message
    assert "Edit the registry" in registry.status_message
    assert SECRET not in caplog.text


def test_an_unexpected_error_ends_failed_logged_once_with_its_traceback(team, eager, caplog,
                                                                       monkeypatch):
    def broken_ping(self):
        raise KeyError("challenge")

    monkeypatch.setattr(RegistryClient, "ping", broken_ping)
    registry = make_registry(team, secret=SECRET)
    registry.mark_validating()
    with caplog.at_level(logging.INFO):
        assert tasks.validate_registry.delay(registry.pk).successful()
    registry.refresh_from_db()
    assert registry.status == Status.FAILED
    assert registry.status_message.startswith("Could not check: ")
    assert "KeyError" in registry.status_message
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert SECRET not in caplog.text and SECRET not in registry.status_message


def test_the_list_page_stops_polling_once_the_validation_failed(client, alice, team, eager):
    registry = make_registry(team, endpoint="256.1.1.1", secret=SECRET)
    registry.mark_validating()
    login(client, alice)
    assert client.get("/registries/", HTTP_HX_REQUEST="true").status_code == 200  # still busy
    tasks.validate_registry.delay(registry.pk)
    response = client.get("/registries/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert "Not a valid endpoint" in response.content.decode()
    assert ExternalRegistry.objects.get().status == Status.FAILED
