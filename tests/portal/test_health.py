"""/healthz and /readyz: what kubelet and Caddy probe, in development and in production mode."""

from __future__ import annotations

import httpx
import pytest
from cryptography.fernet import Fernet

from portal.settings import _generate_signing_key
from tests.support.processes import PortalStack
from tests.support.servers import free_port


def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"


@pytest.mark.django_db
def test_readyz_reports_each_part(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"] == body["keys"] == "ok"
    assert body["broker"] == "not used (memory)"
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_stays_ready_with_the_broker_down(client, settings):
    # Pages and pulls work without Redis: a probe failing on it would take every pod out at once.
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["broker"].startswith("unreachable")


@pytest.mark.django_db
def test_readyz_reports_a_live_broker(client, settings, redis_server):
    settings.CELERY_BROKER_URL = redis_server.url
    assert client.get("/readyz").json()["broker"] == "ok"


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """The Procfile's web line in production mode behind an https PORTAL_URL."""
    stack = PortalStack(tmp_path_factory.mktemp("production"), names=("web",), seed=None, extra_env={
        "PORTAL_ENV": "production",
        "PORTAL_URL": "https://portal.example.com",
        "SECRET_KEY": Fernet.generate_key().decode(),
        "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "PORTAL_LICENSE_SIGNING_KEY": _generate_signing_key(),
    })
    stack.start()
    yield stack
    stack.stop()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_plain_http_at_the_pod_address(production, path):
    response = httpx.get(production.url + path, headers={"Host": "10.1.2.3"}, timeout=10)
    assert response.status_code == 200, response.text
    if path == "/readyz":
        assert response.json()["status"] == "ready"


@pytest.mark.slow
def test_pages_keep_the_host_check_and_the_https_redirect(production):
    # The exemption is the two probe paths only.
    assert httpx.get(production.url + "/accounts/login/", headers={"Host": "10.1.2.3"}, timeout=10).status_code == 400
    response = httpx.get(production.url + "/accounts/login/", headers={"Host": "portal.example.com"}, timeout=10)
    assert response.status_code == 301
    assert response.headers["location"] == "https://portal.example.com/accounts/login/"
