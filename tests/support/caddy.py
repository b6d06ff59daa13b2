"""Caddy in front of a stack's web processes, with the shipped deploy/Caddyfile.

``start_caddy(directory, ca=..., upstreams=[port, ...])`` runs Debian's ``caddy`` with the very
file an installation copies, filled in only through the environment variables it reads
(PORTAL_SITE_ADDRESS ``localhost:<free port>``, the CA's server certificate and key, the
upstreams, CADDY_BIND 127.0.0.1, CADDY_ADMIN off). Caddy's data and config directories (HOME,
XDG_DATA_HOME, XDG_CONFIG_HOME) are in ``directory``. Returns a ``Caddy`` with the URL people
use (``https://localhost:<port>``) and ``stop()``. A missing ``caddy`` skips locally and fails
under CI=true, like every other program the tests start.

A database of its own in the tests' PostgreSQL cluster is here too (``postgres_database``), for
the production-shaped stacks that run on PostgreSQL as an installation does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.servers import (
    LOOPBACK,
    free_port,
    require_binary,
    require_server,
    stop_process,
    wait_for_port,
)
from tests.support.tls import LocalCA

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
DATABASE_URL_FILE = ROOT / "var" / "test-database-url"


@dataclass
class Caddy:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def host(self) -> str:
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def stop(self) -> None:
        stop_process(self.process)


def start_caddy(directory: Path, *, ca: LocalCA, upstreams: list[int], timeout: float = 20,
                blob_cache_dir: Path | None = None) -> Caddy:
    """``blob_cache_dir``: the web processes' blob cache, which Caddy then sends cached blobs
    from (they run with PORTAL_BLOB_CACHE_X_ACCEL=true)."""
    binary = require_binary("caddy")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
        "PORTAL_SITE_ADDRESS": f"localhost:{port}",
        "CADDY_TLS_CERT_FILE": str(ca.cert_file),
        "CADDY_TLS_KEY_FILE": str(ca.key_file),
        "PORTAL_UPSTREAMS": " ".join(f"{LOOPBACK}:{p}" for p in upstreams),
        "CADDY_BIND": LOOPBACK,
        "CADDY_ADMIN": "off",
        **({"PORTAL_BLOB_CACHE_DIR": str(blob_cache_dir)} if blob_cache_dir else {}),
    }
    log = directory / "caddy.log"
    process = subprocess.Popen(
        [binary, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        cwd=directory, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    caddy = Caddy(port, process, log)
    deadline = time.monotonic() + timeout
    try:
        wait_for_port(LOOPBACK, port, deadline, process=process)
        # Listening comes a moment before the certificate is loaded: wait for a handshake
        # (not a request: with the web processes not up yet Caddy would retry it for 10 s).
        while not _handshakes(port, ca):
            if time.monotonic() > deadline:
                raise TimeoutError("no TLS handshake")
            time.sleep(0.05)
    except Exception:
        caddy.stop()
        raise RuntimeError(f"caddy did not start: {log.read_text()[-3000:]}") from None
    return caddy


def _handshakes(port: int, ca: LocalCA) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as raw:
            with ca.ssl_context().wrap_socket(raw, server_hostname="localhost"):
                return True
    except OSError:
        return False


def postgres_database(prefix: str) -> tuple[str, Callable[[], None]]:
    """A new empty database in the tests' PostgreSQL cluster (scripts/start-postgres.sh):
    ``(url, drop)``."""
    if not DATABASE_URL_FILE.exists():
        require_server("no PostgreSQL for the tests: scripts/start-postgres.sh writes var/test-database-url")
    base = DATABASE_URL_FILE.read_text().strip()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        require_server(f"PostgreSQL at var/test-database-url does not answer: {e}")
    url = base.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop
