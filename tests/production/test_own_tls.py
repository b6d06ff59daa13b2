"""The portal's own TLS: the Procfile's web line serving HTTPS with PORTAL_TLS_CERT_FILE and
PORTAL_TLS_KEY_FILE, no proxy in front; and what it refuses at start."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.production.conftest import (
    assert_same_image,
    production_env,
    proxied,
    pull,
    seed_upstream,
)
from tests.support.processes import ROOT, PortalStack
from tests.support.tls import LocalCA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_tls(local_ca, upstream, tmp_path_factory):
    stack = PortalStack(tmp_path_factory.mktemp("own-tls"), names=("web",), seed=None, tls=local_ca)
    stack.extra_env.update(production_env(), PORTAL_URL=f"https://localhost:{stack.port}")
    stack.start()
    try:
        stack.data = seed_upstream(stack, upstream)
        yield stack
    finally:
        stack.stop()


def test_skopeo_copy_all_from_the_portal_s_own_https_keeps_every_digest(own_tls, local_ca, upstream, tmp_path):
    license_id = own_tls.data["licenses"]["Big Bank"]
    result = pull(proxied(f"localhost:{own_tls.port}"), license_id, local_ca, tmp_path / "oci")
    assert result.returncode == 0, result.stderr[-2000:]
    assert_same_image(tmp_path / "oci", upstream["index"])


def test_the_pages_answer_over_https_with_secure_cookies(own_tls, local_ca):
    response = httpx.get(f"https://localhost:{own_tls.port}/accounts/login/",
                         verify=local_ca.ssl_context(), timeout=10)
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


def test_a_certificate_file_it_cannot_read_stops_the_web_process_with_its_name(tmp_path):
    missing = LocalCA(tmp_path / "nowhere")
    stack = PortalStack(tmp_path / "stack", names=("web",), seed=None, migrate=False, tls=missing,
                        extra_env={"PORTAL_URL": "https://localhost:8443"})
    with pytest.raises(RuntimeError) as refused:
        stack.start(timeout=30)
    message = str(refused.value)
    assert "web exited with 2" in message
    assert "PORTAL_TLS_CERT_FILE and PORTAL_TLS_KEY_FILE must both name readable PEM files" in message
    assert str(missing.cert_file) in message


@pytest.mark.parametrize(("env", "complaint"), [
    ({"PORTAL_TLS_CERT_FILE": "/etc/portal/tls.crt"}, "go together"),
    ({"PORTAL_TLS_CERT_FILE": "/etc/portal/tls.crt", "PORTAL_TLS_KEY_FILE": "/etc/portal/tls.key",
      "PORTAL_URL": "http://portal.example.com"}, "must start with https://"),
])
def test_settings_refuse_half_a_tls_configuration(env, complaint):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_TLS_", "PORTAL_URL"))}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True,
                            text=True, env={**clean, **env}, timeout=60)
    assert result.returncode != 0
    assert complaint in result.stderr
