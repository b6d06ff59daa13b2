"""registry_validate against real servers: moto (IAM auth on), docker-registry, a token server."""

import pytest

from registries import services
from registries.models import Status
from tests.registries.product_helpers import make_ecr_registry, make_registry
from tests.support.registry import ECR_HOST, push_test_image

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def ecr_image(ecr_registry):
    push_test_image(ecr_registry, "demo-apps/nginx", "latest")
    return "demo-apps/nginx:latest"


def validate(registry, **kwargs):
    services.registry_validate(registry_id=registry.pk, **kwargs)
    registry.refresh_from_db()
    return registry


def test_good_ecr_keys_connect_and_read_the_test_image(team, ecr_env, aws_users, ecr_image):
    registry = validate(make_ecr_registry(team, aws_users.reader, test_image=ecr_image))
    assert registry.status == Status.CONNECTED
    assert registry.status_message == f"The credentials work and can read {ecr_image}."
    assert registry.warning == ""
    assert registry.last_checked_at is not None


def test_an_unknown_access_key_says_so(team, ecr_env, aws_users):
    registry = validate(make_ecr_registry(team, aws_users.unknown))
    assert registry.status == Status.FAILED
    assert "does not recognise this Access Key ID" in registry.status_message


def test_a_wrong_secret_says_so(team, ecr_env, aws_users):
    registry = validate(make_ecr_registry(team, aws_users.wrong_secret))
    assert registry.status == Status.FAILED
    assert "Secret Access Key is wrong" in registry.status_message


def test_keys_without_ecr_permission_name_the_missing_permission(team, ecr_env, aws_users):
    registry = validate(make_ecr_registry(team, aws_users.no_ecr))
    assert registry.status == Status.FAILED
    assert "GetAuthorizationToken" in registry.status_message


def test_a_test_image_the_credentials_cannot_see_fails_with_its_name(team, ecr_env, aws_users):
    registry = validate(make_ecr_registry(team, aws_users.reader, test_image="demo-apps/missing:1.0"))
    assert registry.status == Status.FAILED
    assert "demo-apps/missing:1.0 was not found" in registry.status_message


def test_test_overrides_the_stored_test_image(team, ecr_env, aws_users, ecr_image):
    registry = make_ecr_registry(team, aws_users.reader, test_image="demo-apps/missing:1.0")
    assert validate(registry, image=ecr_image).status == Status.CONNECTED


def test_keys_of_another_account_connect_with_a_warning(team, ecr_env, aws_users, settings, ecr_registry):
    other = "210987654321"
    host = ECR_HOST.replace("123456789012", other)
    settings.PORTAL_REGISTRY_HOST_MAP = f"{host}={ecr_registry.url}"
    registry = validate(make_ecr_registry(team, aws_users.reader, endpoint=host, ecr_account=other,
                                          ecr_region="us-east-1"))
    assert registry.status == Status.CONNECTED
    assert "123456789012" in registry.warning and other in registry.warning


def test_basic_auth_registry_connects_with_its_password(team, settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    r = distribution_registry
    registry = validate(make_registry(team, endpoint=r.host, name="local", username=r.username,
                                      secret=r.password, insecure=True))
    assert registry.status == Status.CONNECTED


def test_basic_auth_registry_rejects_a_wrong_password(team, settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    r = distribution_registry
    registry = validate(make_registry(team, endpoint=r.host, name="local", username=r.username,
                                      secret="not-the-password", insecure=True))
    assert registry.status == Status.FAILED
    assert "rejected the username and password" in registry.status_message


def test_bearer_registry_connects_and_reads_an_image(team, settings, bearer_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    r = bearer_registry
    push_test_image(r, "team/app", "1.0")
    registry = validate(make_registry(team, endpoint=r.host, name="tokens", username=r.username,
                                      secret=r.password, insecure=True, test_image="team/app:1.0"))
    assert registry.status == Status.CONNECTED, registry.status_message


def test_loopback_is_refused_unless_private_registries_are_allowed(team, settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = False
    r = distribution_registry
    registry = validate(make_registry(team, endpoint=r.host, name="local", username=r.username,
                                      secret=r.password, insecure=True))
    assert registry.status == Status.FAILED
    assert "PORTAL_ALLOW_PRIVATE_REGISTRIES" in registry.status_message


def test_a_refused_connection_is_transient_for_the_task(team, settings):
    from tests.support.servers import free_port

    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    registry = make_registry(team, endpoint=f"127.0.0.1:{free_port()}", name="gone", insecure=True)
    with pytest.raises(services.TransientValidationError):
        services.registry_validate(registry_id=registry.pk, raise_transient=True)
    registry = validate(registry)
    assert registry.status == Status.FAILED
    assert registry.status_message


def test_periodic_failure_turns_connected_unhealthy_and_success_back(team, settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    r = distribution_registry
    registry = make_registry(team, endpoint=r.host, name="local", username=r.username,
                             secret="wrong", insecure=True, status=Status.CONNECTED)
    assert validate(registry, periodic=True).status == Status.UNHEALTHY
    registry.secret = r.password
    registry.save()
    assert validate(registry, periodic=True).status == Status.CONNECTED


def test_a_result_for_old_credentials_is_not_recorded(team, settings, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    registry = make_registry(team, endpoint="registry.example.com", status=Status.VALIDATING)
    stale = registry.revision
    registry.bump_revision()
    registry.save()
    assert registry.mark_result(ok=True, message="old", revision=stale) is False
    registry.refresh_from_db()
    assert registry.status == Status.VALIDATING
