"""The previous host name, served by the Procfile's web process, with skopeo as the client:
image pulls still work there, pages do not."""

from __future__ import annotations

import hashlib
import subprocess

import httpx
import pytest

from tests.support import images
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import start_distribution
from tests.support.servers import require_binary

pytestmark = pytest.mark.slow

IMAGE = "public.example.com/pub/app"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    public = start_distribution(tmp_path_factory.mktemp("public-registry"))
    image = images.build_single([40_000], seed=11)
    images.push(image, public.url, "pub/app", "1.0")
    # The portal moved from localhost to 127.0.0.1 (both resolve here without DNS changes).
    stack = start_proxy_server(tmp_path_factory.mktemp("moved"), extra={
        "PORTAL_REGISTRY_HOST_MAP": f"public.example.com={public.url}",
        "PORTAL_PREVIOUS_HOSTS": "localhost",
    })
    try:
        stack.data = stack.call("tests.support.proxy_server.seed", registries=[], apps=[
            {"slug": "publicapp", "proxy_public_images": True, "releases": [[f"{IMAGE}:1.0"]],
             "customers": [{"name": "Public Fan"}]}])
        stack.data["digest"] = image.digest
        yield stack
    finally:
        stack.stop()
        public.stop()


def test_skopeo_pulls_through_the_previous_host(server, tmp_path):
    license_id = server.data["licenses"]["Public Fan"]
    result = subprocess.run(
        [require_binary("skopeo"), "inspect", "--raw", "--tls-verify=false",
         "--creds", f"{license_id}:{license_id}",
         f"docker://localhost:{server.port}/proxy/publicapp/{IMAGE}:1.0"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sha256:" + hashlib.sha256(result.stdout.encode()).hexdigest() == server.data["digest"]


def test_pages_on_the_previous_host_name_the_new_one(server):
    response = httpx.get(f"http://localhost:{server.port}/accounts/login/", timeout=10)
    assert response.status_code == 404
    assert f"Use {server.url}/accounts/login/" in response.text
    assert httpx.get(f"{server.url}/accounts/login/", timeout=10).status_code == 200
