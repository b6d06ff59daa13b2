"""A change of PORTAL_URL or the proxy host reissues every license; the old host keeps serving
what installed clusters call until it is removed from PORTAL_PREVIOUS_HOSTS."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from portal.hosts import hosts_record
from portal.models import AuditEvent, Installation


@pytest.fixture
def recorded(db, settings):
    hosts_record()  # whatever the test database saw, the current settings are recorded now
    return settings


def test_a_new_portal_url_bumps_every_license_once(recorded, customer):
    before = customer.license_sequence
    recorded.PORTAL_URL = "https://new.example.com"
    assert hosts_record() is True
    customer.refresh_from_db()
    assert customer.license_sequence == before + 1
    event = AuditEvent.objects.get(action="reissue_licenses")
    assert event.team == customer.app.team
    assert event.detail["new_url"] == "https://new.example.com"

    assert hosts_record() is False
    customer.refresh_from_db()
    assert customer.license_sequence == before + 1


def test_a_new_proxy_host_bumps_too(recorded, customer):
    before = customer.license_sequence
    recorded.PORTAL_PROXY_HOST = "registry.example.com"
    assert hosts_record() is True
    customer.refresh_from_db()
    assert customer.license_sequence == before + 1


def test_the_first_start_records_without_reissuing(db, customer):
    Installation.objects.all().delete()
    before = customer.license_sequence
    assert hosts_record() is False
    customer.refresh_from_db()
    assert customer.license_sequence == before
    assert not AuditEvent.objects.filter(action="reissue_licenses").exists()


def test_migrate_notices_the_change(recorded, customer):
    before = customer.license_sequence
    recorded.PORTAL_URL = "https://moved.example.com"
    call_command("migrate", verbosity=0, interactive=False)
    customer.refresh_from_db()
    assert customer.license_sequence == before + 1
    assert Installation.objects.get().portal_url == "https://moved.example.com"


@pytest.fixture
def previous_host(settings):
    settings.PORTAL_PREVIOUS_HOSTS = ["old.example.com"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "old.example.com"]
    return "old.example.com"


@pytest.mark.django_db
def test_the_previous_host_serves_pulls_and_update_checks(client, previous_host, customer):
    v2 = client.get("/v2/", HTTP_HOST=previous_host)
    assert v2.status_code == 401  # the proxy registry asks for the license, as on the new host
    assert "Docker-Distribution-API-Version" in v2.headers
    pending = client.get(f"/release/{customer.app.slug}/pending", HTTP_HOST=previous_host)
    assert pending.status_code == 401


@pytest.mark.django_db
def test_the_previous_host_refuses_pages_and_names_the_new_one(client, settings, previous_host):
    response = client.get("/accounts/login/", HTTP_HOST=previous_host)
    assert response.status_code == 404
    assert f"Use {settings.PORTAL_URL}/accounts/login/" in response.content.decode()
    assert client.get("/accounts/login/").status_code == 200


@pytest.mark.django_db
def test_an_unlisted_host_is_still_refused(client, previous_host):
    assert client.get("/v2/", HTTP_HOST="other.example.com").status_code == 400
