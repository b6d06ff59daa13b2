"""Customers through the vendor API: the customer form's rules, the same services, Replicated's shapes.

License IDs are customers' credentials: only roles that manage customers get them, and only
through the license download or an explicit ``showLicenseId=true``.
"""

import json

import pytest
import yaml

from portal.models import AuditEvent, Role
from releases.models import Customer, LicenseField, LicenseFieldType
from tests.vendor_api.conftest import make_token
from tests.vendor_api.shapes import assert_shape, replicated

pytestmark = pytest.mark.django_db


@pytest.fixture
def seats(sample_app):
    return LicenseField.objects.create(app=sample_app, name="seat_count", title="Seats",
                                       field_type=LicenseFieldType.INTEGER, default=5, position=1)


@pytest.fixture
def dev_token(bob):
    return make_token(bob, role=Role.DEVELOPER)


@pytest.fixture
def support_token(sam):
    return make_token(sam, role=Role.SUPPORT)


def create_body(app, **extra):
    unstable = app.channels.get(name="Unstable")
    return {"name": "Big Bank", "app_id": app.slug, "email": "ops@bigbank.example", "type": "paid",
            "channels": [{"channel_id": str(unstable.pk), "is_default_for_customer": True}],
            **extra}


def test_create_takes_replicateds_request_and_answers_its_customer(api, admin_token, sample_app, seats):
    body = replicated("customer")
    request = {**body["create_request"], "app_id": sample_app.slug,
               "channels": [{"channel_id": str(sample_app.channels.get(name="Unstable").pk),
                             "pinned_channel_sequence": None, "is_default_for_customer": True}]}
    response = api.post("/customer", admin_token, request)
    assert response.status_code == 201, response.content
    customer = response.json()["customer"]
    assert_shape(customer, body["Customer"], nullable=body["nullable"])
    assert customer["name"] == "Big Bank" and customer["type"] == "paid" and customer["airgap"] is True
    assert customer["expiresAt"].startswith("2030-01-01")
    assert customer["channels"][0]["name"] == "Unstable" and customer["channels"][0]["releaseLabel"] == "0.0.1"
    assert customer["entitlements"] == [{"isDefault": False, "name": "seat_count", "value": "10"}]
    row = Customer.objects.get()
    assert row.entitlements == {"seat_count": 10} and row.license_sequence == 1
    assert "licenseId" not in customer and row.license_id not in response.content.decode()
    event = AuditEvent.objects.get(action="create", object_type="customer")
    assert event.actor_name == "token ci"


def test_create_refuses_with_the_forms_texts(api, admin_token, sample_app, seats):
    response = api.post("/customer", admin_token, create_body(
        sample_app, name="  ", entitlementValues=[{"name": "seat_count", "value": "many"}]))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["name"] == ["This field is required."]
    assert errors["entitlementValues.seat_count"] == ["Enter a whole number."]
    response = api.post("/customer", admin_token, create_body(
        sample_app, entitlementValues=[{"name": "nope", "value": "1"}]))
    assert response.status_code == 400
    assert "nope" in response.json()["errors"]["entitlementValues"][0]
    assert not Customer.objects.exists()


def test_create_needs_a_role_that_manages_customers(api, dev_token, support_token, sample_app):
    for token in (dev_token, support_token):
        response = api.post("/customer", token, create_body(sample_app))
        assert response.status_code == 403, response.content
    assert not Customer.objects.exists()


def test_another_teams_app_and_customer_are_404(api, mallory, sample_app, customer):
    token = make_token(mallory, role=Role.ADMIN)
    assert api.post("/customer", token, create_body(sample_app)).status_code == 404
    assert api.get(f"/customer/{customer.pk}", token).status_code == 404
    assert api.get(f"/app/{sample_app.slug}/customers", token).status_code == 404
    assert api.call("patch", f"/customer/{customer.pk}", token, {"name": "x"}).status_code == 404


def test_an_app_scoped_token_sees_only_its_apps_customers(api, alice, team, sample_app, customer):
    from releases.models import App

    other = App.create_with_channels(team=team, name="Other", slug="other")
    token = make_token(alice, role=Role.ADMIN, apps=[other])
    assert api.get(f"/customer/{customer.pk}", token).status_code == 404
    assert api.get(f"/app/{sample_app.slug}/customers", token).status_code == 404
    assert api.get("/app/other/customers", token).json()["customers"] == []


def test_update_bumps_the_license_sequence_like_the_page(api, admin_token, customer, seats):
    path = f"/customer/{customer.pk}"
    response = api.call("patch", path, admin_token, {"entitlementValues": [{"name": "seat_count", "value": "20"}],
                                                     "is_airgap_enabled": True})
    assert response.status_code == 200, response.content
    body = response.json()["customer"]
    assert body["licenseSequence"] == 2 and body["airgap"] is True
    assert body["name"] == "Big Bank" and body["email"] == "ops@bigbank.example"  # kept
    customer.refresh_from_db()
    assert customer.entitlements == {"seat_count": 20} and customer.license_sequence == 2
    # Nothing changed: no new sequence, as on the page.
    assert api.call("patch", path, admin_token, {"name": "Big Bank"}).json()["customer"]["licenseSequence"] == 2
    # A value equal to the default is not kept: it follows the default.
    api.call("patch", path, admin_token, {"entitlementValues": [{"name": "seat_count", "value": "5"}]})
    customer.refresh_from_db()
    assert customer.entitlements == {} and customer.license_sequence == 3
    change = AuditEvent.objects.filter(action="update", object_type="customer").first()
    assert change.detail["changes"]["license_fields.seat_count"] == [20, 5]


def test_update_moves_the_channel_and_sets_the_expiry(api, admin_token, customer, sample_app):
    beta = sample_app.channels.get(name="Beta")
    response = api.call("patch", f"/customer/{customer.pk}", admin_token, {
        "add_channels": [{"channel_id": beta.slug, "is_default_for_customer": True}],
        "expires_at": "2031-06-01T00:00:00Z"})
    assert response.status_code == 200, response.content
    customer.refresh_from_db()
    assert customer.channel == beta and customer.expires_at.date().isoformat() == "2031-06-01"
    response = api.call("patch", f"/customer/{customer.pk}", admin_token, {"expires_at": ""})
    customer.refresh_from_db()
    assert customer.expires_at is None


def test_archive_and_unarchive(api, admin_token, dev_token, customer):
    assert api.post(f"/customer/{customer.pk}/archive", dev_token).status_code == 403
    response = api.post(f"/customer/{customer.pk}/archive", admin_token)
    assert response.status_code == 204, response.content
    customer.refresh_from_db()
    assert customer.is_archived
    assert AuditEvent.objects.filter(action="archive", object_type="customer").count() == 1
    assert api.post(f"/customer/{customer.pk}/unarchive", admin_token).status_code == 204
    customer.refresh_from_db()
    assert not customer.is_archived


def test_list_is_replicateds_with_pages_and_filters(api, support_token, sample_app, customer):
    unstable = sample_app.channels.get(name="Unstable")
    for i in range(4):
        Customer.objects.create(app=sample_app, channel=unstable, name=f"Acme {i}", license_type="trial")
    Customer.objects.create(app=sample_app, channel=unstable, name="Gone", archived_at="2020-01-01T00:00Z")
    response = api.get(f"/app/{sample_app.slug}/customers?pageSize=2&currentPage=1", support_token)
    assert response.status_code == 200, response.content
    body = response.json()
    shape = replicated("customer")
    assert body["totalCustomers"] == 5 and body["totalCount"] == 5
    assert_shape(body, {k: v for k, v in shape["list_response"].items() if k != "customers"})
    assert [c["name"] for c in body["customers"]] == ["Acme 2", "Acme 3"]
    assert_shape(body["customers"][0], shape["Customer"], nullable=shape["nullable"])
    assert api.get(f"/app/{sample_app.slug}/customers?type=trial", support_token).json()["totalCustomers"] == 4
    assert api.get(f"/app/{sample_app.slug}/customers?q=acme", support_token).json()["totalCustomers"] == 4
    archived = api.get(f"/app/{sample_app.slug}/customers?includeArchived=true", support_token).json()
    assert archived["totalCustomers"] == 6


def test_list_runs_the_same_queries_for_any_number_of_customers(api, admin_token, sample_app, seats,
                                                                 django_assert_max_num_queries):
    unstable = sample_app.channels.get(name="Unstable")
    path = f"/app/{sample_app.slug}/customers?pageSize=100"
    Customer.objects.create(app=sample_app, channel=unstable, name="One")
    api.get(path, admin_token)  # warm: the token's first use writes its last-used time
    with django_assert_max_num_queries(12) as few:
        assert len(api.get(path, admin_token).json()["customers"]) == 1
    Customer.objects.bulk_create([Customer(app=sample_app, channel=unstable, name=f"C{i}",
                                           license_id=f"id{i:038d}", entitlements={"seat_count": i})
                                  for i in range(60)])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(path, admin_token).json()["customers"]) == 61


def test_license_ids_only_for_those_who_manage_customers_and_only_when_asked(
        api, admin_token, dev_token, support_token, sample_app, customer):
    secret = customer.license_id
    for token in (admin_token, dev_token, support_token):
        for path in (f"/app/{sample_app.slug}/customers", f"/customer/{customer.pk}"):
            response = api.get(path, token)
            assert response.status_code == 200 and secret not in response.content.decode(), path
    shown = api.get(f"/customer/{customer.pk}?showLicenseId=true", admin_token)
    assert shown.json()["customer"]["licenseId"] == secret
    listed = api.get(f"/app/{sample_app.slug}/customers?showLicenseId=true", admin_token)
    assert listed.json()["customers"][0]["licenseId"] == secret
    for token in (dev_token, support_token):
        refused = api.get(f"/customer/{customer.pk}?showLicenseId=true", token)
        assert refused.status_code == 403 and secret not in refused.content.decode()
        assert api.get(f"/app/{sample_app.slug}/customers?showLicenseId=true", token).status_code == 403
    assert not any(secret in json.dumps(e.detail) + e.object_repr for e in AuditEvent.objects.all())


def test_license_download_is_the_signed_file_for_admins_only(api, admin_token, dev_token, sample_app, customer):
    path = f"/app/{sample_app.slug}/customer/{customer.pk}/license-download"
    assert api.get(path, dev_token).status_code == 403
    response = api.get(path, admin_token)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/yaml")
    assert response["Cache-Control"] == "no-store"
    document = yaml.safe_load(response.content)
    assert document["kind"] == "License" and document["spec"]["licenseID"] == customer.license_id
    event = AuditEvent.objects.get(action="download_license")
    assert event.actor_name == "token ci" and customer.license_id not in json.dumps(event.detail)
    assert api.get(f"/app/other/customer/{customer.pk}/license-download", admin_token).status_code == 404


def test_without_a_channel_a_new_customer_follows_the_pages_default(api, admin_token, sample_app):
    response = api.post("/customer", admin_token, {"name": "No Channel", "app_id": str(sample_app.pk)})
    assert response.status_code == 201, response.content
    assert response.json()["customer"]["channels"][0]["name"] == "Unstable"
