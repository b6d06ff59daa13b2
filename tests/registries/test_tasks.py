"""The registries' Celery tasks, run eagerly in-process; the broker-down path with a dead broker."""

import pytest

from registries import tasks
from registries.models import QUEUED_MESSAGE, ExternalRegistry, Status
from tests.conftest import login
from tests.registries.product_helpers import celery_conf, make_ecr_registry, make_registry
from tests.support.registry import ECR_HOST
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    with celery_conf(task_always_eager=True) as app:
        yield app


@pytest.fixture
def dead_broker():
    with celery_conf(broker_url=f"redis://127.0.0.1:{free_port()}/0", task_always_eager=False) as app:
        yield app


def add_ecr(client, keys, **extra):
    return client.post("/registries/add/", {
        "provider": "ecr", "endpoint": ECR_HOST, "username": keys.access_key_id,
        "password": keys.secret_access_key, **extra,
    })


def queued(callbacks):
    """The on-commit callbacks that queue work; the proxy's cache invalidation is not one."""
    return [c for c in callbacks if getattr(c, "__module__", "") != "releases.proxy.decisions"]


def test_adding_a_registry_validates_it_after_commit(client, alice, ecr_env, aws_users, eager,
                                                     django_capture_on_commit_callbacks):
    login(client, alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = add_ecr(client, aws_users.reader)
    assert response.status_code == 302
    assert len(queued(callbacks)) == 1
    registry = ExternalRegistry.objects.get()
    assert registry.status == Status.CONNECTED, registry.status_message


def test_skip_validation_queues_nothing(client, alice, eager, django_capture_on_commit_callbacks):
    login(client, alice)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        add_ecr(client, type("K", (), {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s"}),
                skip_validation="on")
    assert queued(callbacks) == []
    assert ExternalRegistry.objects.get().status == Status.NOT_VALIDATED


def test_with_the_broker_down_adding_still_succeeds_as_pending(client, alice, aws_users, dead_broker,
                                                               django_capture_on_commit_callbacks):
    login(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = add_ecr(client, aws_users.reader)
    assert response.status_code == 302
    registry = ExternalRegistry.objects.get()
    assert registry.status == Status.PENDING
    assert registry.status_message == QUEUED_MESSAGE
    page = client.get("/registries/").content.decode()
    assert "Pending" in page and "queued" in page


def test_the_sweep_queues_pending_validations_once_the_broker_is_back(team, ecr_env, aws_users, eager):
    registry = make_ecr_registry(team, aws_users.reader, status=Status.PENDING)
    tasks.sweep_pending()
    registry.refresh_from_db()
    assert registry.status == Status.CONNECTED


def test_the_sweep_leaves_fresh_validations_alone(team, eager):
    registry = make_registry(team, status=Status.NOT_VALIDATED)
    registry.mark_validating()
    tasks.sweep_pending()
    registry.refresh_from_db()
    assert registry.status == Status.VALIDATING


def test_recheck_turns_connected_unhealthy_and_back(team, settings, distribution_registry, eager):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    r = distribution_registry
    registry = make_registry(team, endpoint=r.host, name="local", username=r.username, secret="wrong",
                             insecure=True, status=Status.CONNECTED)
    untouched = make_registry(team, endpoint="never.example.com", status=Status.NOT_VALIDATED)
    tasks.recheck_registries()
    registry.refresh_from_db()
    assert registry.status == Status.UNHEALTHY
    registry.secret = r.password
    registry.save()
    tasks.recheck_registries()
    registry.refresh_from_db()
    assert registry.status == Status.CONNECTED
    untouched.refresh_from_db()
    assert untouched.status == Status.NOT_VALIDATED and untouched.last_checked_at is None


def test_transient_errors_are_retried_then_recorded(team, settings, eager):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    registry = make_registry(team, endpoint=f"127.0.0.1:{free_port()}", name="gone", insecure=True)
    registry.mark_validating()
    result = tasks.validate_registry.delay(registry.pk)
    assert result.successful()
    registry.refresh_from_db()
    assert registry.status == Status.FAILED
    assert registry.status_message


def test_a_deleted_registry_is_ignored(eager):
    assert tasks.validate_registry.delay(999999).successful()


def test_the_task_arguments_hold_no_secret(team, aws_users):
    registry = make_ecr_registry(team, aws_users.reader)
    sig = tasks.validate_registry.s(registry.pk)
    assert aws_users.reader.secret_access_key not in repr(sig)
