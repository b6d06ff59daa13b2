"""License sync (GET /license/<app slug>, what KOTS calls) and the customer page's newer-license offer."""

import logging

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from releases.customer_portal.access import SESSION_KEY
from releases.licenses import license_yaml, verify_license_text
from releases.models import App, Customer, LicenseField
from tests.releases.customer_portal.test_update_check import basic

SYNC = "/license/mysampleecrapp"
HOME = "/customer/"


@pytest.fixture
def seats(sample_app):
    return LicenseField.objects.create(app=sample_app, name="seat_count", title="Seats", field_type="Integer",
                                       default=10)


def bump(customer, **changes):
    """What the vendor's customer form does: a change and one more licenseSequence."""
    for name, value in changes.items():
        setattr(customer, name, value)
    customer.license_sequence += 1
    customer.save()


@pytest.mark.parametrize("query", [
    {}, {"licenseSequence": "3"}, {"licenseSequence": "1"}, {"licenseSequence": "99"},
    {"licenseSequence": "-1"}, {"licenseSequence": "abc"}, {"licenseSequence": ""},
    {"licenseSequence": "9" * 40},
], ids=["none", "current", "behind", "ahead-unknown", "negative", "text", "empty", "huge"])
def test_sync_always_answers_the_current_signed_license(client, customer, seats, query):
    bump(customer, entitlements={"seat_count": 25})
    bump(customer, license_type="paid")  # licenseSequence 3
    response = client.get(SYNC, query, **basic(customer.license_id))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/yaml")
    assert response["Cache-Control"] == "no-store"
    document = yaml.safe_load(response.content)
    assert document["kind"] == "License" and document["apiVersion"] == "kots.io/v1beta1"
    spec = document["spec"]
    assert spec["licenseSequence"] == 3 and spec["licenseType"] == "paid"
    assert spec["entitlements"]["seat_count"] == {"title": "Seats", "value": 25, "valueType": "Integer"}
    verified = verify_license_text(response.content.decode())
    assert verified.license_sequence == 3 and verified.license_id == customer.license_id


@pytest.mark.parametrize("headers", [
    {}, basic("not-a-license"), {"HTTP_AUTHORIZATION": "Bearer abc"}, {"HTTP_AUTHORIZATION": "Basic !!!"},
])
def test_an_unknown_license_gets_a_401_as_the_update_check(client, customer, headers):
    response = client.get(SYNC, **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert response.json()["error"]


def test_archived_expired_and_other_apps_get_a_403(client, customer, team):
    App.create_with_channels(team=team, name="Other", slug="other")
    response = client.get("/license/other", **basic(customer.license_id))
    assert response.status_code == 403 and response.json() == {"error": "This license is not for this application."}
    Customer.objects.filter(pk=customer.pk).update(expires_at=timezone.now())
    response = client.get(SYNC, **basic(customer.license_id))
    assert response.status_code == 403 and "expired" in response.json()["error"]
    Customer.objects.filter(pk=customer.pk).update(expires_at=None, archived_at=timezone.now())
    response = client.get(SYNC, **basic(customer.license_id))
    assert response.status_code == 403 and "archived" in response.json()["error"]


def test_failures_are_throttled_with_the_update_check(client, customer, settings):
    settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT = 2
    for _ in range(2):
        assert client.get(SYNC, **basic("0" * 40)).status_code == 401
    refused = client.get(SYNC, **basic("0" * 40))
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert client.get("/release/mysampleecrapp/pending", **basic("1" * 40)).status_code == 429
    assert client.get(SYNC, **basic(customer.license_id)).status_code == 200


def test_sync_needs_no_csrf_token_and_only_gets(customer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.get(SYNC, **basic(customer.license_id)).status_code == 200
    assert client.post(SYNC, **basic(customer.license_id)).status_code == 405


def test_the_license_id_is_never_logged(client, customer, caplog):
    caplog.set_level(logging.DEBUG)
    client.get(SYNC, {"licenseSequence": "x"}, **basic(customer.license_id))
    client.get(SYNC, **basic(customer.license_id + "x"))
    client.get("/license/other", **basic(customer.license_id))
    assert customer.license_id not in caplog.text + " ".join(str(r.args) for r in caplog.records)


# --- the customer page offers the newer license -------------------------------------------------


def sign_in_with_file(client, customer):
    upload = SimpleUploadedFile("license.yaml", license_yaml(customer).encode(), "application/yaml")
    assert client.post(HOME, {"license_file": upload}).status_code == 302


def test_the_page_offers_the_newer_license_when_the_file_is_older(client, customer, seats):
    old_file = license_yaml(customer)  # sequence 1
    bump(customer, entitlements={"seat_count": 25})
    upload = SimpleUploadedFile("license.yaml", old_file.encode(), "application/yaml")
    assert client.post(HOME, {"license_file": upload}).status_code == 302
    page = client.get(HOME).content.decode()
    assert "A newer license is available" in page
    assert "sequence 2" in page and "yours is 1" in page
    response = client.get("/customer/license/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert verify_license_text(response.content.decode()).license_sequence == 2
    assert response["Content-Disposition"] == 'attachment; filename="mysampleecrapp-big-bank-license.yaml"'
    assert "A newer license is available" not in client.get(HOME).content.decode()


def test_no_offer_when_the_license_is_current(client, customer):
    sign_in_with_file(client, customer)
    assert "A newer license is available" not in client.get(HOME).content.decode()


def test_a_change_after_sign_in_is_offered(client, customer):
    assert client.post(HOME, {"license_id": customer.license_id}).status_code == 302
    assert "A newer license is available" not in client.get(HOME).content.decode()
    bump(customer, is_airgap_supported=True)
    assert "A newer license is available" in client.get(HOME).content.decode()


def test_the_page_shows_the_license_fields_but_hidden_ones(client, customer, seats, sample_app):
    LicenseField.objects.create(app=sample_app, name="tier", title="Internal tier", field_type="String",
                                default="gold-secret-tier", is_hidden=True)
    session = client.session
    session[SESSION_KEY] = customer.license_id
    session.save()
    page = client.get(HOME).content.decode()
    assert "Seats" in page and ">10<" in page
    assert "Internal tier" not in page and "gold-secret-tier" not in page


def test_the_license_download_needs_a_signed_in_customer(client, customer):
    response = client.get("/customer/license/")
    assert response.status_code == 302 and response["Location"] == HOME
