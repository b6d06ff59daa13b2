"""The registry routes served as the Procfile runs them: uvicorn and a real Celery worker (separate
processes, Kombu's filesystem broker as ``make run`` uses without Redis, one SQLite file), moto's ECR
and a docker-registry. The API waits for the worker's verdict; while one call waits, others answer.
"""

import threading
import time

import httpx
import pytest

from tests.support.processes import PortalStack
from tests.support.registry import ECR_HOST, push_test_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory, ecr_registry, moto_server):
    portal = PortalStack(tmp_path_factory.mktemp("api-worker"), "filesystem://", names=("web", "worker"),
                         seed="team", extra_env={"LOG_LEVEL": "INFO",
                                                 "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"],
                                                 # the refusal case waits this out in full
                                                 "PORTAL_API_WAIT_SECONDS": "8"})
    try:
        yield portal.start(timeout=120)
    finally:
        portal.stop()


@pytest.fixture(scope="module")
def api(stack):
    token = stack.manage("create_api_token", "--team", "Acme", "--role", "Admin", "--name", "ci").strip()
    with httpx.Client(base_url=f"{stack.url}/vendor/v3", headers={"Authorization": token}, timeout=60) as client:
        yield client


def test_the_worker_validates_and_the_route_answers_its_verdict(stack, api, aws_users, ecr_registry):
    push_test_image(ecr_registry, "demo-apps/nginx", "latest")
    response = api.post("/external_registry", json={
        "provider": "ecr", "endpoint": ECR_HOST, "username": aws_users.reader.access_key_id,
        "password": aws_users.reader.secret_access_key, "testImage": "demo-apps/nginx:latest"})
    assert response.status_code == 201, response.text + stack.log("worker")[-3000:]
    assert response.json()["status"] == "connected", response.json()
    tested = api.put("/external_registry/test", json={"endpoint": ECR_HOST, "image": "demo-apps/nope:1"})
    assert tested.status_code == 200 and tested.json()["status"] == 400, tested.text
    assert tested.json()["state"] == "failed" and "demo-apps/nope" in tested.json()["message"]
    logs = stack.log("web") + stack.log("worker")
    assert aws_users.reader.secret_access_key not in logs + response.text + tested.text


def test_while_one_call_waits_for_the_worker_others_answer(stack, api, aws_users):
    """The worker is stopped: the add waits its full PORTAL_API_WAIT_SECONDS, and meanwhile other
    calls answer."""
    worker = stack.processes.pop("worker")
    worker.terminate()
    worker.wait(timeout=30)
    answers = {}

    def add():
        answers["add"] = api.post("/external_registry", json={
            "provider": "ecr", "endpoint": "210987654321.dkr.ecr.us-east-1.amazonaws.com",
            "username": aws_users.reader.access_key_id, "password": aws_users.reader.secret_access_key})

    waiting = threading.Thread(target=add)
    waiting.start()
    # Once its row is listed, the add is in its wait (it commits, then waits).
    deadline = time.monotonic() + 6
    while not any(r["endpoint"].startswith("210987654321") for r in api.get("/external_registries").json()[
            "external_registries"]):
        assert time.monotonic() < deadline, "the add never created its registry"
        time.sleep(0.1)
    for _ in range(3):
        started = time.monotonic()
        assert api.get("/external_registries").status_code == 200
        assert time.monotonic() - started < 5, "another call waited for the waiting one"
    assert waiting.is_alive(), "the add did not wait for the worker"
    waiting.join(timeout=60)
    response = answers["add"]
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "validating" and body["pollUrl"].startswith("/vendor/v3/external_registry/")
    assert api.get(body["pollUrl"].removeprefix("/vendor/v3")).json()["status"] == "validating"
