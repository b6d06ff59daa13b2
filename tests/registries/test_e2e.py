"""End to end: the web server and the real Celery worker (separate processes) over real Redis,
a SQLite file both see, moto and docker-registry. The test is a user with an HTTP client."""

import re
import time

import pytest

from tests.support.processes import PortalStack
from tests.support.registry import ECR_HOST, push_test_image
from tests.support.registry_pages import add_registry, registry_status, wait_for_status
from tests.support.servers import (
    redis_server,  # noqa: F401 (a fixture, asked by name below)
    start_redis,
    stop_process,
    wait_for_port,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shared_stack(request, tmp_path_factory, ecr_registry, moto_server):
    broker = request.getfixturevalue("redis_server")
    directory = tmp_path_factory.mktemp("portal")
    portal = PortalStack(directory, broker.url, seed="team", debug=True, extra_env={
        "LOG_LEVEL": "INFO", "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"]})
    try:
        yield portal.start()
    finally:
        portal.stop()


@pytest.fixture
def stack(shared_stack):
    yield shared_stack
    shared_stack.manage("shell", "-c", "from registries.models import ExternalRegistry as R; R.objects.all().delete()")


def ecr_form(keys, **extra):
    return {"provider": "ecr", "endpoint": ECR_HOST, "username": keys.access_key_id,
            "password": keys.secret_access_key, **extra}


def test_good_ecr_keys_turn_connected_through_the_worker(stack, aws_users, ecr_registry):
    push_test_image(ecr_registry, "demo-apps/nginx", "latest")
    alice = stack.session("alice")
    response = add_registry(alice, ecr_form(aws_users.reader, test_image="demo-apps/nginx:latest"))
    assert response.status_code == 302, response.text[-2000:]
    status, row = wait_for_status(alice, ECR_HOST, {"connected", "failed"})
    assert status == "connected", row + stack.log("worker")[-3000:]
    assert "can read demo-apps/nginx:latest" in row
    # The poll stops once nothing is busy.
    assert registry_status(alice, ECR_HOST)[2] == 286
    page = stack.session("sam").get("/registries/").text
    assert "Connected" in page and aws_users.reader.secret_access_key not in page


def test_a_wrong_secret_fails_with_its_reason(stack, aws_users):
    alice = stack.session("alice")
    add_registry(alice, ecr_form(aws_users.wrong_secret))
    status, row = wait_for_status(alice, ECR_HOST, {"connected", "failed"})
    assert status == "failed"
    assert "Secret Access Key is wrong" in row
    assert aws_users.wrong_secret.secret_access_key not in stack.log("worker") + stack.log("web")


def test_with_the_broker_down_the_registry_waits_pending_then_validates(tmp_path, aws_users, ecr_registry,
                                                                       moto_server):
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = start_redis(redis_dir)
    port = redis.port
    portal = PortalStack(tmp_path, redis.url, names=("web",), seed="team", debug=True, extra_env={
        "LOG_LEVEL": "INFO", "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"],
        "PORTAL_REGISTRY_SWEEP_SECONDS": "1",
    }).start()
    try:
        stop_process(redis.process)  # the broker goes down
        alice = portal.session("alice")
        started = time.monotonic()
        response = add_registry(alice, ecr_form(aws_users.reader))
        assert response.status_code == 302  # no error page
        assert time.monotonic() - started < 5
        status, row = registry_status(alice, ECR_HOST)[:2]
        assert status == "pending" and "queued" in row
        # The broker comes back on the same port; the worker's beat sweeps the pending row.
        import subprocess

        from tests.support.servers import require_binary

        process = subprocess.Popen(
            [require_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(port), "--dir",
             str(redis_dir), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port("127.0.0.1", port, time.monotonic() + 15, process=process)
            portal.run("worker", "beat")  # beat sweeps the pending row
            status, row = wait_for_status(alice, ECR_HOST, {"connected", "failed"}, timeout=60)
            assert status == "connected", row + portal.log("worker")[-3000:]
        finally:
            portal.stop()
            stop_process(process)
    finally:
        portal.stop()
        stop_process(redis.process)


def test_the_list_page_polls_while_validating(stack, aws_users):
    alice = stack.session("alice")
    add_registry(alice, ecr_form(aws_users.reader, skip_validation="on"))
    page = alice.get("/registries/").text
    assert re.search(r"Not validated", page)
    assert "hx-trigger" not in page
