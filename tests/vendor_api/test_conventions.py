"""The API's conventions: bounded bodies, the error shape, pages of lists, its docs from our own files."""

import json

import httpx
from django.test import Client

from portal.models import Role

from .conftest import make_token


def test_a_body_larger_than_the_pages_allow_is_413(api, alice, settings, sample_app):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    token = make_token(alice, role=Role.ADMIN)
    response = api.post("/app/mysampleecrapp/release", token, {"spec": "x" * 2000})
    assert response.status_code == 413 and "larger than" in response.json()["message"]


def test_deeply_nested_json_is_refused_cheaply(alice, sample_app):
    token = make_token(alice, role=Role.ADMIN)
    for depth in (101, 100_000):
        body = "[" * depth + "]" * depth
        response = Client().post("/vendor/v3/app/mysampleecrapp/release", body, content_type="application/json",
                                 HTTP_AUTHORIZATION=token)
        assert response.status_code == 400 and "nested" in response.json()["message"], depth


def test_invalid_json_and_wrong_types_answer_400_with_per_field_errors(alice, sample_app):
    token = make_token(alice, role=Role.ADMIN)
    client = Client()
    response = client.post("/vendor/v3/app", "{nope", content_type="application/json", HTTP_AUTHORIZATION=token)
    assert response.status_code == 400 and "not valid JSON" in response.json()["message"]
    response = client.post("/vendor/v3/app", json.dumps({"slug": "x"}), content_type="application/json",
                           HTTP_AUTHORIZATION=token)
    assert response.status_code == 400 and "name" in response.json()["errors"]


def test_a_form_error_keeps_the_forms_text(api, alice, sample_app):
    token = make_token(alice, role=Role.ADMIN)
    response = api.post("/app", token, {"name": "Again", "slug": "mysampleecrapp"})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {"slug": ["Your team already has an app with the slug “mysampleecrapp”: choose another."]}
    assert body["message"] == body["errors"]["slug"][0]


def test_lists_refuse_a_page_size_out_of_range(api, alice, sample_app):
    token = make_token(alice, role=Role.ADMIN)
    response = api.get("/app/mysampleecrapp/releases?pageSize=1000", token)
    assert response.status_code == 400 and "pageSize" in response.json()["errors"]


def test_the_docs_page_loads_swagger_from_the_portals_static_files(client, live_server):
    page = httpx.get(f"{live_server.url}/vendor/v3/docs", timeout=30)
    assert page.status_code == 200
    bundle = httpx.get(f"{live_server.url}/static/ninja/swagger-ui-bundle.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
