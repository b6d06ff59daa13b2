"""The portal as the Procfile runs it: web, worker and beat as separate processes.

``PortalProcesses`` reads the ``web:``, ``worker:`` and ``beat:`` lines of the Procfile and runs
each through ``sh -c`` with the environment ``make run`` gives them (HOST, WEB_PORT and PORT,
PORTAL_URL, PORTAL_VAR_DIR, CELERY_BROKER_URL, the venv first on PATH), so whatever flags the
Procfile gains, the tests run them. The database is a SQLite file in a temporary directory
(migrated, then ``seed_demo`` and ``tests/support/seed.py``), shared by the three processes.

It exposes the base URL, the web process's pid with its CPU time and resident memory from
/proc, each process's captured output, and a logged-in httpx client per role. ``stop()`` sends
SIGTERM to each process group, then SIGKILL after a deadline.

Used by the hostile-input suite (tests/hostile/) and bench/hostile.py. ``PortalStack`` (the
end-to-end tests of registries and mirroring, bench/validate.py) and ``ProxyServer``
(tests/support/proxy_server.py: the proxy registry's tests and benches) start the same web
command with fewer processes and their own data.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.servers import LOOPBACK, free_port, require_binary, stop_process, wait_for_port

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
    "FORWARDED_ALLOW_IPS", "DJANGO_ALLOW_ASYNC_UNSAFE", "PORTAL_ENV",
}


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """``{name: command}`` of a Procfile (comments and blank lines skipped)."""
    commands = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match and not line.lstrip().startswith("#"):
            commands[match.group(1)] = match.group(2).strip()
    return commands


def web_command(*, app: str | None = None) -> str:
    """The Procfile's ``web:`` command; ``app`` replaces the portal's ASGI application."""
    command = procfile_commands()["web"]
    if app is not None:
        command = command.replace("portal.asgi:application", app, 1)
    return command


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
class PortalProcesses:
    directory: Path
    broker_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ("web", "worker", "beat")
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: "hostile-" + secrets.token_urlsafe(12))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def web_pid(self) -> int:
        return self.processes["web"].pid

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
            "PORTAL_URL": self.base_url,
            "PORTAL_VAR_DIR": str(self.directory / "var"),
            "PORTAL_SQLITE_PATH": str(self.directory / "portal.sqlite3"),
            "CELERY_BROKER_URL": self.broker_url,
            "PORTAL_ALLOW_PRIVATE_REGISTRIES": "true",
            "PORTAL_ADMIN_PASSWORD": self.password,
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

    def start(self, timeout: float = 60) -> PortalProcesses:
        require_binary("sh")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.manage("migrate", "--noinput")
        self.manage("seed_demo")
        out = self.manage("shell", "-c", SEED_CODE)
        self.data = json.loads(next(x for x in out.splitlines() if x.startswith("SEED=")).removeprefix("SEED="))
        commands = procfile_commands()
        try:
            for name in self.names:
                self._spawn(name, commands[name])
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, command: str) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        # exec: the pid is the server's own, so /proc shows its CPU time and memory. A new
        # session per process: stop() signals the group, reaching the worker's children too.
        self.processes[name] = subprocess.Popen(
            ["sh", "-c", f"exec {command}"], cwd=ROOT, env=self.env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float) -> None:
        """Poll /healthz until it answers 200; fail at once when a process exits."""
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"/healthz did not answer within {timeout:.0f} s:\n{self.log('web')[-3000:]}")
            time.sleep(0.1)

    def restart_web(self, timeout: float = 60) -> None:
        """Kill the web process and start it again (a case that pinned it must not slow the next)."""
        process = self.processes.pop("web")
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)
        self._spawn("web", procfile_commands()["web"])
        self.wait_healthy(timeout)

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
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 60),
                            follow_redirects=False, **kwargs)

    def session(self, role: str) -> httpx.Client:
        """A client logged in as the demo user of ``role`` (Admin, Developer, Support).

        Every unsafe request it sends carries the CSRF token as Django's X-CSRFToken header.
        """
        client = self.client()
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={
            "username": ROLES[role], "password": self.password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        })
        if response.status_code != 302:
            raise RuntimeError(f"{role} login failed: {response.status_code}")
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        client.headers["Referer"] = self.base_url + "/"
        return client


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def start_processes(directory: Path, *, broker_url: str, extra_env: dict[str, str] | None = None,
                    timeout: float = 60) -> PortalProcesses:
    return PortalProcesses(directory, broker_url, extra_env=dict(extra_env or {})).start(timeout)


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
        web_env = {**self.env, "HOST": LOOPBACK, "WEB_PORT": str(self.port),
                   "PATH": str(Path(sys.executable).parent) + os.pathsep + self.env.get("PATH", "")}
        self._spawn("web", ["sh", "-c", f"exec {web_command()}"], env=web_env)
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

    def _spawn(self, name: str, command: list[str], *, env: dict[str, str] | None = None) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=log,
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
