"""The whole portal as separate processes: web server, Celery worker (+ beat), Redis, a file DB.

For the end-to-end tests, the browser test and bench/validate.py: the web process and the worker
share a SQLite file in a temporary directory (an in-memory test database is invisible to another
process), and the test talks to the portal over HTTP like a user.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import LOOPBACK, free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"

SETUP_USERS = """
from django.contrib.auth import get_user_model
from portal.models import Membership, Role, Team
team = Team.objects.create(name="Acme")
for name, role in (("alice", Role.ADMIN), ("sam", Role.SUPPORT)):
    user = get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD)
    Membership.objects.create(user=user, team=team, role=role)
""".replace("PASSWORD", repr(PASSWORD))


@dataclass
class PortalStack:
    directory: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
        return result.stdout

    def start(self, *, worker: bool = True, beat: bool = False) -> PortalStack:
        self.manage("migrate", "--noinput")
        self.manage("shell", "-c", SETUP_USERS)
        self._spawn("web", [sys.executable, "manage.py", "runserver", "--noreload",
                            f"{LOOPBACK}:{self.port}"])
        if worker:
            self.start_worker(beat=beat)
        wait_for_port(LOOPBACK, self.port, time.monotonic() + 30, process=self.processes["web"])
        return self

    def start_worker(self, *, beat: bool = False) -> None:
        command = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=threads",
                   "--concurrency=4", "--loglevel=INFO", "--without-gossip", "--without-mingle"]
        if beat:
            command += ["--beat", "--schedule", str(self.directory / "beat-schedule")]
        self._spawn("worker", command)

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process)
        self.processes.clear()

    def client(self, username: str = "alice") -> httpx.Client:
        """An httpx client logged in as ``username``."""
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={
            "username": username, "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        })
        assert response.status_code == 302, f"login failed: {response.status_code}"
        return client


def stack_env(directory: Path, *, broker_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ}
    for key in ("DATABASE_URL", "PORTAL_SQLITE_TEST_PATH", "CELERY_TASK_ALWAYS_EAGER", "REDIS_URL"):
        env.pop(key, None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_VAR_DIR": str(directory / "var"),
        "PORTAL_SQLITE_PATH": str(directory / "portal.sqlite3"),
        "CELERY_BROKER_URL": broker_url,
        "PORTAL_ALLOW_PRIVATE_REGISTRIES": "true",
        "DEBUG": "true",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def csrf(client: httpx.Client) -> str:
    return client.cookies["csrftoken"]


def add_registry(client: httpx.Client, data: dict[str, str]) -> httpx.Response:
    return client.post("/registries/add/", data={**data, "csrfmiddlewaretoken": csrf(client)})


def registry_status(client: httpx.Client, endpoint: str) -> tuple[str, str, int]:
    """(status, row HTML, HTTP status) of ``endpoint``'s row in the polled list fragment."""
    response = client.get("/registries/", headers={"HX-Request": "true"})
    rows = re.findall(r'<tr id="registry-\d+">.*?</tr>', response.text, re.S)
    for row in rows:
        if f"<code>{endpoint}</code>" in row:
            return re.search(r'data-status="(\w+)"', row).group(1), row, response.status_code
    return "", "", response.status_code


def wait_for_status(client: httpx.Client, endpoint: str, statuses: set[str], *, timeout: float = 30,
                    interval: float = 0.05) -> tuple[str, str]:
    """Poll the list as the page does until ``endpoint`` reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        status, row, _ = registry_status(client, endpoint)
        if status in statuses:
            return status, row
        if time.monotonic() > deadline:
            raise TimeoutError(f"{endpoint} stayed {status or 'absent'}, expected {statuses}")
        time.sleep(interval)
