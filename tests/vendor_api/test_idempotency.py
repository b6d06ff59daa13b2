"""Idempotency-Key on creates: a retry gets the first answer; another body 422; a duplicate in flight 409."""

import json

import pytest
from django.db import connection
from django.test import Client

from portal.models import IdempotencyKey
from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT
from tests.releases.test_concurrency import race

from .conftest import make_token

SPEC = json.dumps([{"name": "deployment.yaml", "path": "deployment.yaml", "content": NGINX_DEPLOYMENT}])


@pytest.fixture
def token(bob):
    return make_token(bob)


def create(api, token, key, spec=SPEC):
    return api.post("/app/mysampleecrapp/release", token, {"spec": spec}, HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_returns_the_first_result_and_creates_one_release(api, token, sample_app):
    first = create(api, token, "build-41")
    again = create(api, token, "build-41")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert sample_app.releases.count() == 2
    assert create(api, token, "build-42").json()["release"]["sequence"] == 3


def test_the_same_key_with_another_body_is_422(api, token, sample_app):
    create(api, token, "build-41")
    response = create(api, token, "build-41", spec=SPEC.replace("nginx", "nginx2"))
    assert response.status_code == 422 and "another request" in response.json()["message"]


def test_a_duplicate_while_the_first_runs_is_409(api, token, sample_app):
    create(api, token, "build-41")
    stored = IdempotencyKey.objects.get()
    # build-99 is in flight (no answer stored yet), for the same request as build-41.
    IdempotencyKey.objects.create(token=stored.token, key="build-99", request_hash=stored.request_hash)
    response = create(api, token, "build-99")
    assert response.status_code == 409 and "still running" in response.json()["message"]
    assert sample_app.releases.count() == 2


def test_keys_are_per_token(api, token, bob, sample_app):
    other = make_token(bob, name="other")
    create(api, token, "build-41")
    assert create(api, other, "build-41").json()["release"]["sequence"] == 3


def test_a_refused_request_keeps_no_key(api, token, sample_app):
    bad = json.dumps([{"name": "deployment.yaml", "content": "kind: [\n"}])
    assert create(api, token, "build-41", spec=bad).status_code == 400
    assert create(api, token, "build-41").status_code == 201


@pytest.mark.postgres
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_one_release(token, sample_app):
    if connection.vendor != "postgresql":
        pytest.skip("Runs in make test's PostgreSQL pass (DATABASE_URL=postgres://...).")

    def send(_i):
        return Client().post("/vendor/v3/app/mysampleecrapp/release", {"spec": SPEC},
                             content_type="application/json", HTTP_AUTHORIZATION=token,
                             HTTP_IDEMPOTENCY_KEY="race").status_code

    codes = race(send, 6)
    assert set(codes) <= {201, 409} and 201 in codes
    assert Release.objects.filter(app=sample_app).count() == 2
