"""External registries through the vendor API, validated live against moto's ECR and a docker-registry.

The validation runs the worker's task code in-process (Celery eager mode) at each commit
(transaction=True), as the registries' own task tests do; the API route waits for its outcome.
"""

import json
import logging

import pytest

from portal import publish as publisher
from portal.models import AuditEvent, Role
from registries.models import ExternalRegistry
from releases.models import App
from tests.registries.product_helpers import celery_conf
from tests.support.registry import ECR_HOST, push_test_image
from tests.support.servers import free_port
from tests.vendor_api.conftest import make_token
from tests.vendor_api.shapes import assert_shape, replicated
from vendor_api import registries as api_registries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def eager():
    with celery_conf(task_always_eager=True) as app:
        yield app


@pytest.fixture
def shape():
    return replicated("registry")


def ecr_body(keys, **extra):
    return {"provider": "ecr", "endpoint": ECR_HOST, "slug": "", "authType": "password",
            "username": keys.access_key_id, "password": keys.secret_access_key, "skipValidation": False, **extra}


def test_adding_ecr_waits_for_the_live_check_and_answers_connected(api, admin_token, ecr_env, aws_users, eager,
                                                                    shape, caplog):
    caplog.set_level(logging.DEBUG)
    push_test_image(ecr_env, "demo-apps/nginx", "latest")
    response = api.post("/external_registry", admin_token, ecr_body(aws_users.reader, testImage="demo-apps/nginx:latest"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "connected", body
    assert "can read demo-apps/nginx:latest" in body["message"]
    assert_shape(body, {k: v for k, v in shape["add_response"].items() if k != "external_registry"})
    assert_shape(body["external_registry"], {k: v for k, v in shape["Registry"].items() if k not in shape["optional"]},
                 nullable=shape["nullable"])
    listed = api.get("/external_registries", admin_token).json()
    assert [r["endpoint"] for r in listed["external_registries"]] == [ECR_HOST]
    assert_shape(listed["external_registries"][0], shape["Registry"], nullable=shape["nullable"])
    secret = aws_users.reader.secret_access_key
    everything = response.content.decode() + json.dumps(listed) + caplog.text + json.dumps(
        [[e.actor_name, e.object_repr, e.detail] for e in AuditEvent.objects.all()])
    assert secret not in everything
    assert AuditEvent.objects.get(action="create", object_type="externalregistry").actor_name == "token ci"


def test_a_wrong_secret_answers_failed_with_the_ecr_reason(api, admin_token, ecr_env, aws_users, eager, caplog):
    response = api.post("/external_registry", admin_token, ecr_body(aws_users.wrong_secret))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "failed" and "Secret Access Key is wrong" in body["message"]
    assert aws_users.wrong_secret.secret_access_key not in response.content.decode() + caplog.text


def test_form_errors_are_the_pages_texts_and_the_password_never_comes_back(api, admin_token, aws_users, eager):
    response = api.post("/external_registry", admin_token,
                        ecr_body(aws_users.reader, endpoint="registry.example.com", password="pw-that-must-vanish"))
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "provider": ["This endpoint is an Amazon ECR registry: choose Amazon ECR as Provider."]
    } or "endpoint" in response.json()["errors"]
    assert "pw-that-must-vanish" not in response.content.decode()
    response = api.post("/external_registry", admin_token, ecr_body(aws_users.reader, endpoint="not an endpoint"))
    assert response.status_code == 400 and "endpoint" in response.json()["errors"]
    assert not ExternalRegistry.objects.exists()


def test_an_endpoint_linked_already_is_refused_as_text(api, admin_token, aws_users, eager):
    assert api.post("/external_registry", admin_token,
                    ecr_body(aws_users.reader, skipValidation=True)).status_code == 201
    response = api.post("/external_registry", admin_token, ecr_body(aws_users.reader, skipValidation=True))
    assert response.status_code == 400
    assert response.json()["errors"]["endpoint"] == [f"{ECR_HOST} is already linked: open it."]


def test_with_the_worker_unreachable_it_answers_202_with_a_url_to_poll(api, admin_token, aws_users, monkeypatch):
    monkeypatch.setattr(api_registries, "WAIT_SECONDS", 0.5)
    with celery_conf(broker_url=f"redis://127.0.0.1:{free_port()}/0", task_always_eager=False):
        response = api.post("/external_registry", admin_token, ecr_body(aws_users.reader))
    monkeypatch.setattr(publisher, "_down_until", {})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["pollUrl"] == f"/vendor/v3/external_registry/{ECR_HOST}"
    polled = api.get(body["pollUrl"].removeprefix("/vendor/v3"), admin_token).json()
    assert polled["status"] == "pending" and "queued" in polled["message"]


def test_test_reads_an_image_and_answers_replicateds_status(api, admin_token, ecr_env, aws_users, eager, shape):
    push_test_image(ecr_env, "demo-apps/nginx", "1.0")
    api.post("/external_registry", admin_token, ecr_body(aws_users.reader))
    response = api.put("/external_registry/test", admin_token, {"endpoint": ECR_HOST, "image": "demo-apps/nginx:1.0"})
    assert response.status_code == 200, response.content
    assert_shape(response.json(), shape["test_response"])
    assert response.json()["status"] == 200 and "can read demo-apps/nginx:1.0" in response.json()["message"]
    missing = api.put("/external_registry/test", admin_token, {"endpoint": ECR_HOST, "image": "demo-apps/nope:1"})
    assert missing.json()["status"] == 400 and missing.json()["state"] == "failed"
    bad = api.put("/external_registry/test", admin_token, {"endpoint": ECR_HOST, "image": "Bad Image!"})
    assert bad.status_code == 400 and "image" in bad.json()["errors"]
    unknown = api.put("/external_registry/test", admin_token, {"endpoint": "elsewhere.example.com"})
    assert unknown.status_code == 404


def test_roles_and_scopes_as_the_pages(api, alice, bob, sam, mallory, team, aws_users, eager):
    body = ecr_body(aws_users.reader, skipValidation=True)
    assert api.post("/external_registry", make_token(sam, role=Role.SUPPORT), body).status_code == 403
    app = App.create_with_channels(team=team, name="Scoped", slug="scoped")
    scoped = make_token(alice, role=Role.ADMIN, apps=[app])
    assert api.post("/external_registry", scoped, body).status_code == 403
    developer = make_token(bob, role=Role.DEVELOPER)
    assert api.post("/external_registry", developer, body).status_code == 201
    outsider = make_token(mallory, role=Role.ADMIN)
    assert api.get("/external_registries", outsider).json()["external_registries"] == []
    assert api.call("delete", f"/external_registry/{ECR_HOST}", outsider).status_code == 404
    assert api.call("delete", f"/external_registry/{ECR_HOST}", make_token(sam, role=Role.SUPPORT)).status_code == 403
    assert api.call("delete", f"/external_registry/{ECR_HOST}", developer).status_code == 204
    assert not ExternalRegistry.objects.exists()
    assert AuditEvent.objects.filter(action="delete", object_type="externalregistry").count() == 1


def test_the_list_runs_the_same_queries_for_any_number_of_registries(api, admin_token, team, sample_app,
                                                                     django_assert_max_num_queries):
    def add(i):
        row = ExternalRegistry(team=team, provider="other", endpoint=f"r{i}.example.com", username="u")
        row.secret = "s"
        row.save()
        row.apps.set([sample_app])

    add(0)
    api.get("/external_registries", admin_token)
    with django_assert_max_num_queries(12) as few:
        api.get("/external_registries", admin_token)
    for i in range(1, 30):
        add(i)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get("/external_registries", admin_token).json()["external_registries"]) == 30
