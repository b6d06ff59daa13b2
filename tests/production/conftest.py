"""The production shape, served for real: HTTPS, several processes, PostgreSQL and Redis.

Fixtures: ``local_ca`` (a test CA and a certificate for localhost and 127.0.0.1), ``upstream``
(a docker-registry with htpasswd holding a two-platform image and a one-layer image with a big
layer), ``production_env()`` (the secrets PORTAL_ENV=production insists on), ``seed_upstream()``
(an app whose promoted, pinned release uses both images, one customer), and ``pull()`` /
``assert_same_image()`` around ``skopeo copy --all`` with TLS verification on.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support import images
from tests.support.registry import start_distribution
from tests.support.servers import require_binary
from tests.support.tls import LocalCA, make_local_ca

SLUG = "prodapp"
CUSTOMER = "Big Bank"
MB = 1 << 20


# Package scope: both modules pull the same images over TLS; built and pushed once.
@pytest.fixture(scope="package")
def local_ca(tmp_path_factory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="package")
def upstream(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("upstream"), users={"puller": "puller-pw-1"})
    index = images.build_index(layer_sizes=[400_000, 300_000], shared_size=200_000, seed=11)
    images.push(index, registry.url, "team/app", "1.0", auth=registry.auth)
    # Big enough that a stream is still running when a web process is killed under it.
    big = images.build_single([48 * MB], seed=12)
    images.push(big, registry.url, "team/big", "1.0", auth=registry.auth)
    yield {"registry": registry, "index": index, "big": big}
    registry.stop()


def production_env() -> dict[str, str]:
    """Every secret given, as PORTAL_ENV=production requires (nothing generated into var/)."""
    signing_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    return {
        "PORTAL_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PORTAL_LICENSE_SIGNING_KEY": signing_key,
        "PORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "LOG_LEVEL": "WARNING",
    }


def seed_upstream(stack, upstream) -> dict:
    registry = upstream["registry"]
    return stack.call("tests.support.proxy_server.seed", registries=[{
        "endpoint": registry.host, "provider": "other", "username": registry.username,
        "password": registry.password, "name": "upstream", "insecure": True,
    }], apps=[{"slug": SLUG, "pin": True,
               "releases": [[f"{registry.host}/team/app:1.0", f"{registry.host}/team/big:1.0"]],
               "customers": [{"name": CUSTOMER}]}])


def proxied(host: str, repository: str = "team/app") -> str:
    """The image through the proxy at ``host``: the registry's Name stands for its address
    (an image name cannot hold a second host:port)."""
    return f"docker://{host}/proxy/{SLUG}/upstream/{repository}:1.0"


def pull(source: str, license_id: str, ca: LocalCA, target: Path) -> subprocess.CompletedProcess:
    """``skopeo copy --all`` verifying the server's certificate against the test CA only."""
    return subprocess.run(
        [require_binary("skopeo"), "copy", "--all", "-q", "--src-cert-dir", str(ca.cert_dir),
         "--src-tls-verify=true", "--src-creds", f"{license_id}:{license_id}", source,
         f"oci:{target}:1.0"],
        capture_output=True, text=True, timeout=180)


def assert_same_image(target: Path, index: images.Index) -> None:
    top = json.loads((target / "index.json").read_text())["manifests"][0]
    assert top["digest"] == index.digest
    stored = target / "blobs" / "sha256"
    for digest in (index.digest, *(i.digest for i in index.images), *(b.digest for b in index.blobs)):
        data = (stored / digest.removeprefix("sha256:")).read_bytes()
        assert images.sha256(data) == digest
