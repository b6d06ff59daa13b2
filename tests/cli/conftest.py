"""The command-line tool as a pipeline runs it: installed from ``cli/`` into its own virtualenv,
run as a subprocess against the portal as the Procfile runs it (uvicorn, the Celery worker and
beat) on PostgreSQL, with the ECR stand-in on moto and docker-registry.

Fixtures:

- ``cli_bin``: ``var/venv-cli/bin/vendor-portal``, (re)built by scripts/build-cli-venv.sh (what
  ``make test-deps`` runs) when anything under cli/ changed.
- ``cli_database``: a database of its own in the test PostgreSQL cluster (var/test-database-url),
  dropped and created again for the session.
- ``cli_stack``: the PortalStack on that database, seeded with the demo data (team Demo,
  MySampleECRApp with Stable, Beta, Unstable), its broker a private redis-server.
- ``admin_token``: a service-account token of team Demo with the Admin role, made by
  ``manage.py create_api_token`` as an installation's bootstrap script would.
- ``run_cli(*args, token=..., input=..., env=...)``: run the tool; returns the CompletedProcess.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import ROOT, PortalStack
from tests.support.servers import in_ci, require_server

CLI_VENV = ROOT / "var" / "venv-cli"
DATABASE = "portal_cli_e2e"
TOKEN = re.compile(r"\bvp_[0-9a-f]{8}_[0-9a-f]{40}\b")


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    result = subprocess.run([str(ROOT / "scripts" / "build-cli-venv.sh")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    if result.returncode:
        message = f"could not build var/venv-cli: {result.stderr[-2000:]}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return CLI_VENV / "bin" / "vendor-portal"


def database_url() -> str:
    path = ROOT / "var" / "test-database-url"
    url = os.environ.get("DATABASE_URL") or (path.read_text().strip() if path.exists() else "")
    if not url.startswith("postgres"):
        require_server("no PostgreSQL: run scripts/start-postgres.sh (make test-deps does)")
    return url


@pytest.fixture(scope="session")
def cli_database():
    """A fresh database of this session's own in the test cluster (a name of its own, so two
    runs at once do not drop each other's); its URL. Dropped at the end."""
    base = database_url()
    name = f"{DATABASE}_{uuid.uuid4().hex[:8]}"
    try:
        connection = psycopg.connect(base, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        require_server(f"PostgreSQL does not answer at var/test-database-url: {e}")
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def cli_stack(tmp_path_factory, cli_database, redis_server, moto_server, ecr_registry):
    stack = PortalStack(tmp_path_factory.mktemp("cli-portal"), redis_server.url, seed="demo",
                        # 100 parallel creates make 400 calls in well under a minute.
                        extra_env={"DATABASE_URL": cli_database, "PORTAL_API_RATE_LIMIT": "5000",
                                   "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"],
                                   **moto_server.env})
    try:
        yield stack.start(timeout=180)
    finally:
        stack.stop()


def create_token(stack: PortalStack, role: str, name: str, *extra: str) -> str:
    out = stack.manage("create_api_token", "--team", "Demo", "--role", role, "--name", name, *extra)
    match = TOKEN.search(out)
    assert match, f"create_api_token printed no token: {out!r}"
    return match.group(0)


@pytest.fixture(scope="session")
def admin_token(cli_stack) -> str:
    return create_token(cli_stack, "Admin", "ci-admin")


@pytest.fixture(scope="session")
def run_cli(cli_bin, cli_stack):
    def run(*args: str, token: str | None = None, input: str | None = None,
            env: dict | None = None, url: str | None = None, timeout: float = 300):
        environment = {
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "VENDOR_PORTAL_URL": url or cli_stack.url, "VENDOR_PORTAL_APP": "mysampleecrapp",
            "COLUMNS": "200",
        }
        if token is not None:
            environment["VENDOR_PORTAL_API_TOKEN"] = token
        environment.update(env or {})
        return subprocess.run([str(cli_bin), *args], env=environment, input=input,
                              capture_output=True, text=True, timeout=timeout)

    return run
