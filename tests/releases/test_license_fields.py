"""License fields: Admins define them per app; each customer has typed, audited values."""

import pytest
import yaml

from portal.models import AuditEvent
from releases.licenses import license_yaml
from releases.models import App, Customer, LicenseField
from tests.conftest import login

FIELDS = "/apps/mysampleecrapp/license-fields/"


def add_field(client, **data):
    return client.post(FIELDS, {"name": "seat_count", "title": "Seats", "field_type": "Integer",
                                "default": "10", **data})


def edit_data(customer, **data):
    return {"name": customer.name, "email": customer.email, "channel": customer.channel.pk,
            "license_type": customer.license_type, **data}


@pytest.fixture
def fields(sample_app):
    make = LicenseField.objects.create
    return {
        "seat_count": make(app=sample_app, name="seat_count", title="Seats", field_type="Integer", default=10,
                           position=0),
        "sso": make(app=sample_app, name="sso", title="Single sign-on", field_type="Boolean", default=False,
                    position=1),
        "tier": make(app=sample_app, name="tier", title="Tier", field_type="String", default="basic",
                     is_hidden=True, position=2),
        "notes": make(app=sample_app, name="notes", title="Notes", field_type="Text", default="", position=3),
    }


# --- the fields ----------------------------------------------------------------------------


def test_admins_add_a_field(client, alice, sample_app, customer):
    response = add_field(login(client, alice), is_hidden="on")
    assert response.status_code == 302
    field = LicenseField.objects.get(app=sample_app)
    assert (field.name, field.title, field.field_type, field.default, field.is_hidden) == (
        "seat_count", "Seats", "Integer", 10, True)
    event = AuditEvent.objects.get(object_type="licensefield", action="create")
    assert event.detail["name"] == "seat_count" and event.detail["default"] == 10
    page = client.get(FIELDS).content.decode()
    assert "seat_count" in page and "Seats" in page and "Hidden" in page
    customer.refresh_from_db()
    assert customer.license_sequence == 2  # every license of the app now carries it
    assert yaml.safe_load(license_yaml(customer))["spec"]["entitlements"]["seat_count"] == {
        "title": "Seats", "value": 10, "valueType": "Integer", "isHidden": True}


def test_the_app_page_links_to_its_license_fields(client, alice, sample_app):
    assert FIELDS.encode() in login(client, alice).get("/apps/mysampleecrapp/").content


@pytest.mark.parametrize("data, message", [
    ({"name": "seat count"}, "Start with a letter; then letters, digits, _ or -"),
    ({"name": "expires_at"}, "expires_at is built into every license: choose another name."),
    ({"name": "isAirgapSupported"}, "isAirgapSupported is built into every license"),
    ({"title": " "}, "This field is required."),
    ({"field_type": "Float"}, "Select a valid choice."),
    ({"default": "ten"}, "The default of an Integer field is a whole number, such as 10."),
    ({"default": "9223372036854775808"}, "Licenses carry 64-bit integers"),
    ({"field_type": "Boolean", "default": "maybe"}, "The default of a Boolean field is true or false."),
    ({"field_type": "String", "default": "two\nlines"}, "A String is one line: choose Text for several lines."),
])
def test_bad_fields_are_refused_and_kept(client, alice, sample_app, data, message):
    response = add_field(login(client, alice), **data)
    assert response.status_code == 400
    content = response.content.decode()
    assert message.replace("'", "&#x27;") in content
    kept = {"name": "seat_count", "title": "Seats", "default": "10", **data}
    assert f'value="{kept["name"]}"' in content and f'value="{kept["title"].strip()}"' in content or not kept["title"].strip()
    assert f">\n{kept['default']}</textarea>" in content
    if data.get("field_type") in ("Boolean", "String"):
        assert f'value="{data["field_type"]}" selected' in content
    assert not LicenseField.objects.exists()


def test_a_name_is_unique_per_app(client, alice, fields):
    response = add_field(login(client, alice), name="seat_count")
    assert response.status_code == 400
    assert "This app already has a field named seat_count." in response.content.decode()


def test_admins_edit_a_field_and_every_license_of_the_app_changes_once(client, alice, fields, customer):
    response = login(client, alice).post(f"{FIELDS}{fields['tier'].pk}/edit/", {
        "name": "tier", "title": "Support tier", "field_type": "String", "default": "gold"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.license_sequence == 2
    spec = yaml.safe_load(license_yaml(customer))["spec"]
    assert spec["entitlements"]["tier"] == {"title": "Support tier", "value": "gold", "valueType": "String"}
    event = AuditEvent.objects.get(object_type="licensefield", action="update")
    assert event.detail["changes"]["default"] == ["basic", "gold"]
    assert event.detail["changes"]["is_hidden"] == [True, False]


def test_saving_an_unchanged_field_changes_no_license(client, alice, fields, customer):
    login(client, alice).post(f"{FIELDS}{fields['tier'].pk}/edit/", {
        "name": "tier", "title": "Tier", "field_type": "String", "default": "basic", "is_hidden": "on"})
    customer.refresh_from_db()
    assert customer.license_sequence == 1
    assert not AuditEvent.objects.filter(object_type="licensefield").exists()


def test_edit_refuses_bad_input_and_keeps_it(client, alice, fields):
    response = login(client, alice).post(f"{FIELDS}{fields['seat_count'].pk}/edit/", {
        "name": "seat_count", "title": "Seats", "field_type": "Integer", "default": "12.5"})
    assert response.status_code == 400
    assert ">\n12.5</textarea>" in response.content.decode()
    fields["seat_count"].refresh_from_db()
    assert fields["seat_count"].default == 10


def test_admins_reorder_fields(client, alice, fields):
    login(client, alice)
    assert client.post(f"{FIELDS}{fields['notes'].pk}/move/", {"direction": "up"}).status_code == 302
    assert list(LicenseField.objects.values_list("name", flat=True)) == ["seat_count", "sso", "notes", "tier"]
    client.post(f"{FIELDS}{fields['seat_count'].pk}/move/", {"direction": "up"})  # already first
    client.post(f"{FIELDS}{fields['seat_count'].pk}/move/", {"direction": "down"})
    assert list(LicenseField.objects.values_list("name", flat=True)) == ["sso", "seat_count", "notes", "tier"]
    assert client.post(f"{FIELDS}{fields['sso'].pk}/move/", {"direction": "sideways"}).status_code == 400


def test_admins_delete_a_field_and_its_values(client, alice, fields, customer):
    customer.entitlements = {"tier": "gold", "seat_count": 5}
    customer.save()
    login(client, alice)
    assert client.get(f"{FIELDS}{fields['tier'].pk}/delete/").status_code == 405
    assert client.post(f"{FIELDS}{fields['tier'].pk}/delete/").status_code == 302
    customer.refresh_from_db()
    assert customer.entitlements == {"seat_count": 5}
    assert customer.license_sequence == 2
    assert "tier" not in yaml.safe_load(license_yaml(customer))["spec"]["entitlements"]
    assert AuditEvent.objects.get(object_type="licensefield", action="delete").detail["name"] == "tier"


def test_only_admins_change_fields_and_other_teams_see_nothing(client, bob, sam, mallory, fields):
    for user in (bob, sam):
        login(client, user)
        assert client.get(FIELDS).status_code == 200  # the team reads them
        assert add_field(client, name="x").status_code == 403
        assert client.post(f"{FIELDS}{fields['sso'].pk}/delete/").status_code == 403
    login(client, mallory)
    assert client.get(FIELDS).status_code == 404
    assert client.post(f"{FIELDS}{fields['sso'].pk}/delete/").status_code == 404
    assert LicenseField.objects.count() == 4


# --- a customer's values -----------------------------------------------------------------------


def test_the_customer_form_has_typed_inputs_with_the_defaults(client, alice, fields, customer):
    content = login(client, alice).get(f"/customers/{customer.pk}/edit/").content.decode()
    assert 'type="number" name="field_seat_count" value="10"' in content
    assert 'type="checkbox" name="field_sso"' in content
    assert '<textarea name="field_notes"' in content
    assert 'name="field_tier" value="basic"' in content
    assert 'name="is_airgap_supported"' in content


def test_admins_set_values_typed_and_audited_with_one_sequence_bump(client, alice, fields, customer):
    response = login(client, alice).post(f"/customers/{customer.pk}/edit/", edit_data(
        customer, field_seat_count="25", field_sso="on", field_tier="gold", field_notes="a\nb",
        is_airgap_supported="on"))
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.entitlements == {"seat_count": 25, "sso": True, "tier": "gold", "notes": "a\nb"}
    assert customer.is_airgap_supported is True
    assert customer.license_sequence == 2
    changes = AuditEvent.objects.get(object_type="customer", action="update").detail["changes"]
    assert changes == {
        "license_fields.seat_count": [10, 25], "license_fields.sso": [False, True],
        "license_fields.tier": ["basic", "gold"], "license_fields.notes": ["", "a\nb"],
        "is_airgap_supported": [False, True],
    }


def test_saving_without_a_change_keeps_the_sequence(client, alice, fields, customer):
    response = login(client, alice).post(f"/customers/{customer.pk}/edit/", edit_data(
        customer, field_seat_count="10", field_tier="basic", field_notes=""))
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.license_sequence == 1 and customer.entitlements == {}
    assert not AuditEvent.objects.filter(action="update").exists()


def test_a_value_equal_to_the_default_follows_the_default(client, alice, fields, customer):
    customer.entitlements = {"seat_count": 25}
    customer.save()
    login(client, alice).post(f"/customers/{customer.pk}/edit/", edit_data(
        customer, field_seat_count="10", field_tier="basic", field_notes=""))
    customer.refresh_from_db()
    assert customer.entitlements == {} and customer.license_sequence == 2


@pytest.mark.parametrize("data, message", [
    ({"field_seat_count": "many"}, "Enter a whole number."),
    ({"field_seat_count": "9223372036854775808"}, "Licenses carry 64-bit integers"),
    ({"field_tier": "two\nlines"}, "A String is one line"),
])
def test_bad_values_are_refused_and_kept(client, alice, fields, customer, data, message):
    response = login(client, alice).post(f"/customers/{customer.pk}/edit/", edit_data(customer, **data))
    assert response.status_code == 400
    content = response.content.decode()
    assert message in content
    value = next(iter(data.values()))
    if "\n" not in value:
        assert f'value="{value}"' in content
    customer.refresh_from_db()
    assert customer.entitlements == {} and customer.license_sequence == 1


def test_choosing_an_app_offers_its_license_fields(client, alice, fields, sample_app, team):
    other = App.create_with_channels(team=team, name="Other", slug="other")
    LicenseField.objects.create(app=other, name="regions", title="Regions", field_type="String", default="eu")
    content = login(client, alice).get("/customers/new/", {"app": other.pk}, HTTP_HX_REQUEST="true",
                                       HTTP_HX_TARGET="channel-field").content.decode()
    assert 'name="field_regions" value="eu"' in content and "field_seat_count" not in content
    assert 'name="field_seat_count"' in client.get("/customers/new/").content.decode()


def test_new_customers_get_values_and_airgap(client, alice, fields, sample_app):
    response = login(client, alice).post("/customers/new/", {
        "name": "Acme", "app": sample_app.pk, "channel": sample_app.channels.get(name="Stable").pk,
        "license_type": "paid", "field_seat_count": "3", "field_tier": "basic", "is_airgap_supported": "on"})
    assert response.status_code == 302
    customer = Customer.objects.get(name="Acme")
    assert customer.entitlements == {"seat_count": 3} and customer.is_airgap_supported
    assert customer.license_sequence == 1
    detail = AuditEvent.objects.get(object_type="customer", action="create").detail
    assert detail["license_fields.seat_count"] == 3 and detail["is_airgap_supported"] is True


def test_the_vendor_sees_every_value_hidden_ones_marked(client, alice, sam, fields, customer):
    customer.entitlements = {"tier": "gold"}
    customer.save()
    content = login(client, sam).get(f"/customers/{customer.pk}/").content.decode()
    assert "Seats" in content and "gold" in content and "hidden from the customer" in content
    assert "Air-gap bundles" in content
