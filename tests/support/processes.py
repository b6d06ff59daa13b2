"""The portal as the Procfile runs it: the one process stack of the tests and benches.

``PortalStack`` reads the Procfile and runs the lines it is given (``names``: web alone, or web,
worker and beat) each through ``sh -c`` with the environment ``make run`` gives them (HOST,
WEB_PORT and PORT, PORTAL_URL, PORTAL_VAR_DIR, CELERY_BROKER_URL, the venv first on PATH), so
whatever flags the Procfile gains, the tests run them. Options add environment, uvicorn options
(``web_args``), worker options (``worker_args``) or put another ASGI application in place of the
portal's. The database is a SQLite file in a temporary directory shared by the processes,
migrated, then seeded: ``seed_demo`` and ``tests/support/seed.py`` (``seed="demo"``), team Acme
with alice and sam (``seed="team"``), or nothing (the proxy's tests seed through ``call()``).

It exposes the base URL, the web process's pid with its CPU time and resident memory from
/proc, each process's captured output, ``call()`` of a function inside ``manage.py shell``, and
logged-in httpx clients. ``stop()`` sends SIGTERM to each process group, then SIGKILL after a
deadline.

Used by the hostile-input suite, the end-to-end and browser tests of registries and mirroring,
the proxy registry's tests (with tests/support/proxy_server.py), the server's bounds
(tests/portal/test_server.py), and bench/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import LOOPBACK, free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
ROLES = {"Admin": "admin", "Developer": "dev", "Support": "support"}
SEED_CODE = "import json; from tests.support.seed import seed; print('SEED=' + json.dumps(seed()))"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# Variables of the calling process that would change what the stack runs (a test database,
# eager tasks, a forwarded-header trust list, another broker).
CLEARED = {
    "DEBUG", "DATABASE_URL", "PORTAL_SQLITE_TEST_PATH", "CELERY_TASK_ALWAYS_EAGER", "REDIS_URL",
    "PORTAL_PROXY_HOST", "PORTAL_URL", "ALLOWED_HOSTS", "SECRET_KEY", "SECRET_KEY_FILE",
    "FORWARDED_ALLOW_IPS", "PORTAL_TRUSTED_PROXIES", "DJANGO_ALLOW_ASYNC_UNSAFE", "PORTAL_ENV",
}


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """``{name: command}`` of a Procfile (comments and blank lines skipped)."""
    commands = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match and not line.lstrip().startswith("#"):
            commands[match.group(1)] = match.group(2).strip()
    return commands


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (/proc/<pid>/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class PortalStack:
    """The portal's Procfile processes over one SQLite file; see the module docstring."""

    directory: Path
    broker_url: str = "memory://"
    names: tuple[str, ...] = ("web", "worker", "beat")  # Procfile lines to run
    extra_env: dict[str, str] = field(default_factory=dict)
    web_args: tuple[str, ...] = ()  # more uvicorn options, after the Procfile's
    worker_args: tuple[str, ...] = ()  # more celery worker options (the last of a repeated one wins)
    app: str | None = None  # another ASGI application in place of the portal's
    seed: str | None = "demo"  # "demo": seed_demo + seed.py; "team": alice and sam in Acme; None
    migrate: bool = True
    debug: bool = False
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "hostile-" + secrets.token_urlsafe(12))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def web(self) -> subprocess.Popen:
        return self.processes["web"]

    @property
    def web_pid(self) -> int:
        return self.web.pid

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update({
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "HOST": LOOPBACK,
            # honcho gives every process its own PORT; the web line reads WEB_PORT.
            "WEB_PORT": str(self.port),
            "PORT": str(self.port),
            "PORTAL_URL": self.url,
            "PORTAL_VAR_DIR": str(self.directory / "var"),
            "PORTAL_SQLITE_PATH": str(self.directory / "portal.sqlite3"),
            "CELERY_BROKER_URL": self.broker_url,
            "PORTAL_ALLOW_PRIVATE_REGISTRIES": "true",
            "PORTAL_ADMIN_PASSWORD": self.password,
            "DEBUG": "true" if self.debug else "false",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    # --- start and stop ---------------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def call(self, function: str, **kwargs) -> dict:
        """Run ``function`` (a dotted path) with ``kwargs`` in the stack's environment; return its
        JSON result."""
        module, _, name = function.rpartition(".")
        code = (f"import json; from {module} import {name} as f; "
                f"print('RESULT=' + json.dumps(f(**json.loads({json.dumps(json.dumps(kwargs))}))))")
        out = self.shell(code)
        line = next(x for x in out.splitlines() if x.startswith("RESULT="))
        return json.loads(line.removeprefix("RESULT="))

    def start(self, timeout: float = 60) -> PortalStack:
        require_binary("sh")
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.migrate:
            self.manage("migrate", "--noinput")
        if self.seed == "demo":
            self.manage("seed_demo")
            out = self.shell(SEED_CODE)
            self.data = json.loads(next(x for x in out.splitlines() if x.startswith("SEED=")).removeprefix("SEED="))
        elif self.seed == "team":
            self.shell(SETUP_USERS.replace("PASSWORD", repr(self.password)))
        try:
            self.run(*self.names, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def run(self, *names: str, timeout: float = 60) -> None:
        """Start more Procfile processes (e.g. the worker and beat of a stack started without)."""
        for name in names:
            self._spawn(name)
        self.wait_healthy(timeout)

    def command(self, name: str) -> str:
        """The Procfile's line for ``name`` with this stack's application and extra options."""
        command = procfile_commands()[name]
        if name == "web":
            if self.app is not None:
                command = command.replace("portal.asgi:application", self.app, 1)
            return " ".join([command, *map(shlex.quote, self.web_args)])
        if name == "worker":
            return " ".join([command, *map(shlex.quote, self.worker_args)])
        return command

    def _spawn(self, name: str) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        # exec: the pid is the server's own, so /proc shows its CPU time and memory. A new
        # session per process: stop() signals the group, reaching the worker's children too.
        self.processes[name] = subprocess.Popen(
            ["sh", "-c", f"exec {self.command(name)}"], cwd=ROOT, env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float) -> None:
        """Poll /healthz (the port alone for another application) until it answers; fail at once
        when a process exits."""
        deadline = time.monotonic() + timeout
        while "web" in self.processes:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
            try:
                if self.app is not None:
                    socket.create_connection((LOOPBACK, self.port), timeout=2).close()
                    return
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except (httpx.TransportError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"/healthz did not answer within {timeout:.0f} s:\n{self.log('web')[-3000:]}")
            time.sleep(0.1)

    def restart_web(self, timeout: float = 60) -> None:
        """Kill the web process and start it again (a case that pinned it must not slow the next)."""
        process = self.processes.pop("web")
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)
        self.run("web", timeout=timeout)

    def stop(self, timeout: float = 15) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()

    # --- what tests read --------------------------------------------------------------------

    def log(self, name: str = "web") -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def web_cpu_seconds(self) -> float:
        return process_cpu_seconds(self.web_pid)

    def web_rss_bytes(self) -> int:
        return process_rss_bytes(self.web_pid)

    def client(self, **kwargs) -> httpx.Client:
        """An anonymous client (no redirects followed)."""
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 60),
                            follow_redirects=False, **kwargs)

    def session(self, user: str) -> httpx.Client:
        """A client logged in as ``user``: a demo role (Admin, Developer, Support) or a seeded
        username (alice, sam).

        Every unsafe request it sends carries the CSRF token as Django's X-CSRFToken header.
        """
        client = self.client()
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={
            "username": ROLES.get(user, user), "password": self.password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        })
        if response.status_code != 302:
            raise RuntimeError(f"{user} login failed: {response.status_code}")
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        client.headers["Referer"] = self.url + "/"
        return client


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


SETUP_USERS = """
from django.contrib.auth import get_user_model
from portal.models import Membership, Role, Team
team = Team.objects.create(name="Acme")
for name, role in (("alice", Role.ADMIN), ("sam", Role.SUPPORT)):
    user = get_user_model().objects.create_user(name, f"{name}@example.com", PASSWORD)
    Membership.objects.create(user=user, team=team, role=role)
"""
