"""Loopback distribution registries for the mirroring tests.

`registry_factory()` starts Debian's docker-registry (`serve config.yml`) on a free 127.0.0.1 port
with a tmp storage dir and htpasswd (bcrypt) auth; every registry is stopped at the end of the test.
Kept separate from tests/registries/servers.py (registries-core) so the two never collide.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, require_binary

REGISTRY_BIN = "/usr/bin/docker-registry"
USER = "mirror"
PASSWORD = "mirror-secret-pw"


@dataclass
class Registry:
    port: int
    root: Path
    username: str
    password: str
    process: subprocess.Popen | None = None
    log: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def storage_bytes(self) -> int:
        """Bytes of blob data stored (to prove a mount moved no layer bytes)."""
        blobs = self.root / "data" / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.exists() else 0


def start_registry(root: Path, *, username: str = USER, password: str = PASSWORD,
                   deadline: float = 20.0) -> Registry:
    require_binary(REGISTRY_BIN)
    require_binary("htpasswd")
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = subprocess.run(["htpasswd", "-Bbn", username, password], check=True,
                              capture_output=True, text=True).stdout
    (root / "htpasswd").write_text(htpasswd)
    port = free_port()
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "auth:\n  htpasswd:\n    realm: mirror-test\n"
        f"    path: {root / 'htpasswd'}\n"
    )
    log = root / "registry.log"
    process = subprocess.Popen([REGISTRY_BIN, "serve", str(root / "config.yml")],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    registry = Registry(port=port, root=root, username=username, password=password,
                        process=process, log=log)
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{registry.url}/v2/", timeout=1).status_code == 401:
                return registry
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            registry.stop()
            raise RuntimeError(f"docker-registry did not answer on {registry.url}")
        time.sleep(0.05)


@pytest.fixture
def registry_factory():
    """Start loopback distribution registries: `registry_factory(username=..., password=...)`."""
    started: list[Registry] = []
    tmp = Path(tempfile.mkdtemp(prefix="mirror-registries-"))

    def make(**kwargs) -> Registry:
        registry = start_registry(tmp / f"r{len(started)}", **kwargs)
        started.append(registry)
        return registry

    yield make
    for registry in started:
        registry.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def source_registry(registry_factory):
    return registry_factory()


@pytest.fixture
def target_registry(registry_factory):
    return registry_factory(username="pusher", password="pusher-secret-pw")



def make_client(host: str, username: str = "", password: str = ""):
    """A RegistryClient for a loopback registry (tests set PORTAL_ALLOW_PRIVATE_REGISTRIES)."""
    from registries.oci.client import RegistryClient

    return RegistryClient(host, username=username, password=password, insecure=True, timeout=30)
