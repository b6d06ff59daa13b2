"""An app's license fields through the vendor API: the License fields page's form and services."""

import pytest

from portal.models import AuditEvent, Role
from releases.models import Customer, LicenseField
from tests.vendor_api.conftest import make_token

pytestmark = pytest.mark.django_db


def test_define_list_update_and_delete_a_field(api, admin_token, sample_app, customer):
    base = f"/app/{sample_app.slug}/license-field"
    response = api.post(base, admin_token, {"name": "seat_count", "title": "Seats", "type": "Integer",
                                            "default": 5})
    assert response.status_code == 201, response.content
    field = response.json()["licenseField"]
    assert field["name"] == "seat_count" and field["default"] == 5 and field["isHidden"] is False
    customer.refresh_from_db()
    assert customer.license_sequence == 2  # every license now carries it

    listed = api.get(f"/app/{sample_app.slug}/license-fields", admin_token).json()["licenseFields"]
    assert [f["name"] for f in listed] == ["seat_count"]

    response = api.put(f"{base}/{field['id']}", admin_token, {"default": "7", "isHidden": True})
    assert response.status_code == 200, response.content
    assert response.json()["licenseField"]["default"] == 7
    assert response.json()["licenseField"]["isHidden"] is True
    assert response.json()["licenseField"]["title"] == "Seats"  # kept

    assert api.call("delete", f"{base}/{field['id']}", admin_token).status_code == 204
    assert not LicenseField.objects.exists()
    assert AuditEvent.objects.filter(object_type="licensefield").count() == 3


def test_it_refuses_with_the_pages_texts(api, admin_token, sample_app):
    base = f"/app/{sample_app.slug}/license-field"
    response = api.post(base, admin_token, {"name": "licenseID", "title": "x", "type": "String"})
    assert response.status_code == 400
    assert response.json()["errors"]["name"] == ["licenseID is built into every license: choose another name."]
    response = api.post(base, admin_token, {"name": "seats", "title": "x", "type": "Integer", "default": "ten"})
    assert response.json()["errors"]["default"] == ["The default of an Integer field is a whole number, such as 10."]
    response = api.post(base, admin_token, {"name": "seats", "title": "x", "type": "Float"})
    assert "type" in response.json()["errors"]
    assert not LicenseField.objects.exists()


def test_only_admins_change_fields_and_everyone_reads_them(api, bob, sam, mallory, sample_app):
    LicenseField.objects.create(app=sample_app, name="tier", title="Tier", default="gold")
    base = f"/app/{sample_app.slug}/license-field"
    for user, role in ((bob, Role.DEVELOPER), (sam, Role.SUPPORT)):
        token = make_token(user, role=role)
        assert api.get(f"/app/{sample_app.slug}/license-fields", token).status_code == 200
        assert api.post(base, token, {"name": "x", "title": "x", "type": "String"}).status_code == 403
    outsider = make_token(mallory, role=Role.ADMIN)
    assert api.get(f"/app/{sample_app.slug}/license-fields", outsider).status_code == 404
    field = LicenseField.objects.get()
    assert api.call("delete", f"{base}/{field.pk}", outsider).status_code == 404
    assert Customer.objects.count() == 0 and LicenseField.objects.count() == 1
