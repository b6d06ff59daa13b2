"""registry_client and registry_pull_client against moto (IAM auth on) and docker-registry: an
ECR token the registry stops accepting before its expiry is forgotten and renewed once."""

import asyncio
import datetime as dt
import threading
import time

import pytest

from registries import credentials, ecr
from registries.errors import RegistryError
from registries.oci.media import ACCEPT_MANIFESTS
from tests.registries.product_helpers import make_ecr_registry
from tests.support.registry import ECR_HOST, REGION, push_test_image

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    ecr.clear_token_cache()
    credentials._PULL_CLIENTS.clear()
    yield
    ecr.clear_token_cache()
    credentials._PULL_CLIENTS.clear()


@pytest.fixture
def fetches(monkeypatch):
    """The token exchanges with AWS (ecr.fetch_token calls), counted."""
    calls = []
    real_fetch = ecr.fetch_token

    def counting_fetch(**kwargs):
        calls.append(1)
        return real_fetch(**kwargs)

    monkeypatch.setattr(ecr, "fetch_token", counting_fetch)
    return calls


def cache_a_dropped_token(registry, keys) -> None:
    """Cache, for ``registry``, a token the registry no longer accepts (not yet expired)."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=11)
    key = ecr._key(f"registry-{registry.pk}-{registry.revision}", keys.access_key_id,
                   keys.secret_access_key, REGION)
    ecr._cache[key] = ecr.Token("AWS", "a-token-the-registry-dropped", later, later)


def cached_password(registry, keys) -> str:
    return ecr.get_registry_credentials(
        access_key_id=keys.access_key_id, secret_access_key=keys.secret_access_key,
        region=REGION, cache_key=f"registry-{registry.pk}-{registry.revision}")[1]


def test_a_401_to_a_cached_ecr_token_forgets_it_and_retries_once(team, ecr_env, aws_users,
                                                                   fetches):
    push_test_image(ecr_env, "demo-apps/nginx", "latest")
    registry = make_ecr_registry(team, aws_users.reader)
    cache_a_dropped_token(registry, aws_users.reader)
    with credentials.registry_client(registry) as client:
        assert client.head_manifest("demo-apps/nginx", "latest").digest.startswith("sha256:")
        assert len(fetches) == 1  # the dropped token was replaced by one fresh exchange
        client.head_manifest("demo-apps/nginx", "latest")
    assert len(fetches) == 1
    assert cached_password(registry, aws_users.reader) == aws_users.registry_password


def test_the_proxy_registry_pull_renews_a_dropped_ecr_token(team, ecr_env, aws_users, fetches):
    push_test_image(ecr_env, "demo-apps/nginx", "latest")
    registry = make_ecr_registry(team, aws_users.reader)
    cache_a_dropped_token(registry, aws_users.reader)
    client = credentials.registry_pull_client(registry=registry)

    async def pull() -> int:
        response = await client.aopen("GET", "demo-apps/nginx/manifests/latest",
                                      repository="demo-apps/nginx",
                                      headers={"Accept": ACCEPT_MANIFESTS})
        await response.aread()
        await response.aclose()
        return response.status_code

    assert asyncio.run(pull()) == 200
    assert len(fetches) == 1
    assert cached_password(registry, aws_users.reader) == aws_users.registry_password


def test_a_registry_refusing_a_fresh_token_is_tried_once_more_only(team, settings,
                                                                    distribution_factory,
                                                                    moto_server, aws_users,
                                                                    fetches):
    # A registry whose password is not the one ECR hands out: every token is refused.
    other = distribution_factory({"AWS": "not-moto-s-token"})
    settings.PORTAL_REGISTRY_HOST_MAP = f"{ECR_HOST}={other.url}"
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    registry = make_ecr_registry(team, aws_users.reader)
    with credentials.registry_client(registry) as client, pytest.raises(RegistryError) as e:
        client.ping()
    assert e.value.code == "unauthorized" and e.value.permanent
    assert len(fetches) == 2  # the login's exchange and one renewal, no loop



def test_the_token_exchange_and_the_account_check_run_at_once(team, ecr_env, aws_users,
                                                              monkeypatch):
    """Each call waits at a barrier for the other before asking moto: run one after the other,
    the first would wait alone until the barrier's timeout and the login would fail."""
    barrier = threading.Barrier(2, timeout=5)
    spans = {}

    def meeting(name, real):
        def call(**kwargs):
            started = time.perf_counter()
            barrier.wait()
            try:
                return real(**kwargs)
            finally:
                spans[name] = (started, time.perf_counter())
        return call

    monkeypatch.setattr(ecr, "fetch_token", meeting("token", ecr.fetch_token))
    monkeypatch.setattr(ecr, "caller_account", meeting("sts", ecr.caller_account))
    registry = make_ecr_registry(team, aws_users.reader)
    timings = {}
    with credentials.registry_client(registry, check_account=True, timings=timings) as client:
        assert client.account_warning == ""
        client.ping()
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values())
    assert set(timings) >= {"token", "sts", "login"}
    assert timings["login"] < timings["token"] + timings["sts"]


def test_a_failed_token_exchange_is_the_error_even_while_the_account_check_runs(
        team, ecr_env, aws_users):
    registry = make_ecr_registry(team, aws_users.no_ecr)
    with pytest.raises(RegistryError) as error:
        credentials.registry_client(registry, check_account=True)
    assert error.value.code == "access_denied" and "GetAuthorizationToken" in error.value.message
