"""The portal as the Procfile runs it: the one process stack of the tests and benches.

``PortalStack`` reads the Procfile and runs the lines it is given (``names``: web alone, or web,
worker and beat) each through ``sh -c`` with the environment ``make run`` gives them (HOST,
WEB_PORT and PORT, PORTAL_URL, PORTAL_VAR_DIR, CELERY_BROKER_URL, the venv first on PATH), so
whatever flags the Procfile gains, the tests run them. Options add environment, uvicorn options
(``web_args``), worker options (``worker_args``) or put another ASGI application in place of the
portal's. The database is a SQLite file in a temporary directory shared by the processes,
migrated, then seeded: ``seed_demo`` and ``tests/support/seed.py`` (``seed="demo"``), team Acme
with alice and sam (``seed="team"``), or nothing (the proxy's tests seed through ``call()``).

The production shape: ``web_count`` web processes (``web``, ``web.2``, ``web.3``... each on its
own port, ``web_ports``) and ``worker_count`` workers (``worker``, ``worker.2``...), and ``tls``
(a ``tests.support.tls.LocalCA``) to serve HTTPS from the web processes themselves through
PORTAL_TLS_CERT_FILE / PORTAL_TLS_KEY_FILE. A reverse proxy in front (tests/support/caddy.py)
is the caller's: it sets PORTAL_URL and PORTAL_TRUSTED_PROXIES through ``extra_env``.

It exposes the base URL, the web process's pid with its CPU time and resident memory from
/proc, each process's captured output, ``call()`` of a function inside ``manage.py shell``, and
logged-in httpx clients. ``stop()`` sends SIGTERM to each process group, then SIGKILL after a
deadline; ``kill(name)`` sends SIGKILL to one.

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
from tests.support.tls import LocalCA

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
    "PORTAL_TLS_CERT_FILE", "PORTAL_TLS_KEY_FILE",
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
    web_count: int = 1
    worker_count: int = 1
    tls: LocalCA | None = None  # the web processes serve HTTPS with this CA's server certificate
    port: int = field(default_factory=free_port)
    web_ports: list[int] = field(default_factory=list)  # one per web process; [0] is ``port``
    password: str = field(default_factory=lambda: "hostile-" + secrets.token_urlsafe(12))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    data: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def __post_init__(self) -> None:
        if not self.web_ports:
            self.web_ports = [self.port] + [free_port() for _ in range(self.web_count - 1)]

    @property
    def web_names(self) -> list[str]:
        return [_numbered("web", i) for i in range(self.web_count)]

    def web_url(self, name: str) -> str:
        port = self.web_ports[self.web_names.index(name)]
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{port}"

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
        if self.tls is not None:
            env["PORTAL_TLS_CERT_FILE"] = str(self.tls.cert_file)
            env["PORTAL_TLS_KEY_FILE"] = str(self.tls.key_file)
        env.update(self.extra_env)
        return env

    def env_of(self, name: str) -> dict[str, str]:
        """The environment of process ``name``: each web process listens on its own port."""
        env = self.env
        if name in self.web_names:
            port = str(self.web_ports[self.web_names.index(name)])
            env.update(WEB_PORT=port, PORT=port)
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
        # beat writes its schedule there (settings create it only for a SQLite database).
        (self.directory / "var").mkdir(parents=True, exist_ok=True)
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
        """Start more Procfile processes (e.g. the worker and beat of a stack started without).

        ``web`` and ``worker`` stand for all ``web_count`` / ``worker_count`` of them.
        """
        counts = {"web": self.web_count, "worker": self.worker_count}
        for name in names:
            for i in range(counts.get(name, 1)):
                self._spawn(_numbered(name, i))
        self.wait_healthy(timeout)

    def command(self, name: str) -> str:
        """The Procfile's line for ``name`` (``web.2`` runs ``web``'s) with this stack's
        application and extra options."""
        line, _, number = name.partition(".")
        command = procfile_commands()[line]
        if line == "web":
            if self.app is not None:
                command = command.replace("portal.asgi:application", self.app, 1)
            return " ".join([command, *map(shlex.quote, self.web_args)])
        if line == "worker":
            # Celery nodes need distinct names; the first keeps Celery's default.
            more = ("--hostname", f"worker{number}@%h") if number else ()
            return " ".join([command, *map(shlex.quote, (*self.worker_args, *more))])
        return command

    def _spawn(self, name: str) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        # exec: the pid is the server's own, so /proc shows its CPU time and memory (a line
        # that checks something first ends in its own exec). A new session per process: stop()
        # signals the group, reaching the worker's children too.
        command = self.command(name)
        script = command if re.search(r"(^|;)\s*exec\s", command) else f"exec {command}"
        self.processes[name] = subprocess.Popen(
            ["sh", "-c", script], cwd=ROOT, env=self.env_of(name), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self, timeout: float) -> None:
        """Poll /healthz of every web process (the port alone for another application) until
        each answers; fail at once when a process exits."""
        deadline = time.monotonic() + timeout
        waiting = [n for n in self.web_names if n in self.processes]
        while waiting:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
            if self._answers(waiting[0]):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"/healthz did not answer within {timeout:.0f} s:\n{self.log(waiting[0])[-3000:]}")
            time.sleep(0.1)

    def _answers(self, name: str) -> bool:
        port = self.web_ports[self.web_names.index(name)]
        try:
            if self.app is not None:
                socket.create_connection((LOOPBACK, port), timeout=2).close()
                return True
            # Behind a trusted proxy with an https PORTAL_URL, plain HTTP is redirected unless
            # the proxy says the client spoke HTTPS, as Caddy does.
            response = httpx.get(f"{self.web_url(name)}/healthz", timeout=2, verify=self._verify,
                                 headers={"X-Forwarded-Proto": "https"})
            return response.status_code == 200
        except (httpx.TransportError, OSError):
            return False

    @property
    def _verify(self):
        return self.tls.ssl_context() if self.tls is not None else True

    def revive(self, name: str, timeout: float = 60) -> None:
        """Start process ``name`` again (after ``kill``) and wait for the web processes."""
        self._spawn(name)
        self.wait_healthy(timeout)

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (and its group) and wait for it; it stays in ``processes``."""
        process = self.processes[name]
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)

    def restart_web(self, timeout: float = 60) -> None:
        """Kill the web process and start it again (a case that pinned it must not slow the next)."""
        process = self.processes.pop("web")
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)
        self._spawn("web")
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

    def web_rss_total_bytes(self) -> int:
        """Resident memory of all the web processes that are running."""
        return sum(process_rss_bytes(self.processes[n].pid) for n in self.web_names
                   if n in self.processes and self.processes[n].poll() is None)

    def client(self, **kwargs) -> httpx.Client:
        """An anonymous client (no redirects followed)."""
        kwargs.setdefault("verify", self._verify)
        return httpx.Client(base_url=kwargs.pop("base_url", self.url), timeout=kwargs.pop("timeout", 60),
                            follow_redirects=False, **kwargs)

    def session(self, user: str, base_url: str | None = None, verify=None) -> httpx.Client:
        """A client logged in as ``user``: a demo role (Admin, Developer, Support) or a seeded
        username (alice, sam); ``base_url``: another address of the stack (a proxy in front),
        ``verify`` its certificate check.

        Every unsafe request it sends carries the CSRF token as Django's X-CSRFToken header.
        """
        base_url = base_url or self.url
        client = self.client(base_url=base_url, verify=self._verify if verify is None else verify)
        # Over HTTPS Django's CSRF check wants a same-origin Referer on every unsafe request.
        client.headers["Referer"] = base_url + "/"
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={
            "username": ROLES.get(user, user), "password": self.password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        })
        if response.status_code != 302:
            raise RuntimeError(f"{user} login failed: {response.status_code}")
        client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
        return client


def _numbered(name: str, index: int) -> str:
    """``web``, ``web.2``, ``web.3``...: the first keeps the Procfile's name."""
    return name if index == 0 else f"{name}.{index + 1}"


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
