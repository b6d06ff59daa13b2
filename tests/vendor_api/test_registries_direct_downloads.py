"""The registry shape's ``directDownloads``: the Add External Registry form's S3 option."""

import pytest

from portal.models import AuditEvent
from registries.models import ExternalRegistry

pytestmark = pytest.mark.django_db

ECR = "123456789012.dkr.ecr.us-east-2.amazonaws.com"


def body(**extra):
    return {"provider": "ecr", "endpoint": ECR, "username": "AKIAEXAMPLE",
            "password": "api-secret-value-9", "skipValidation": True, **extra}


def test_an_ecr_registry_is_added_with_direct_downloads_and_shows_it(api, admin_token):
    response = api.post("/external_registry", admin_token, body(directDownloads=True))
    assert response.status_code == 201, response.content
    assert ExternalRegistry.objects.get().direct_downloads is True
    event = AuditEvent.objects.get(action="create", object_type__contains="registr")
    assert event.detail["direct_downloads"] is True
    listed = api.get("/external_registries", admin_token).json()["external_registries"]
    assert [r["directDownloads"] for r in listed] == [True]


def test_it_is_off_unless_asked_and_refused_for_another_kind(api, admin_token):
    assert api.post("/external_registry", admin_token, body()).status_code == 201
    assert api.get("/external_registries", admin_token).json()[
        "external_registries"][0]["directDownloads"] is False
    response = api.post("/external_registry", admin_token, {
        "provider": "other", "endpoint": "registry.example.com", "username": "u",
        "password": "pw-2", "skipValidation": True, "directDownloads": True})
    assert response.status_code == 400
    assert response.json()["errors"]["directDownloads"][0].startswith(
        "Only Amazon ECR sends layers from AWS S3")
