"""The portal under uvicorn (the real ASGI server) for the proxy registry's tests and bench.

pytest-django's live_server is WSGI and buffers streamed responses, so the proxy is tested
against the ``web:`` command of the Procfile (uvicorn and its flags), as ``make run`` and
production serve it. Forwarded headers are believed only when a test sets
``PORTAL_TRUSTED_PROXIES`` (as in production, empty by default). The server has
its own SQLite file (migrated with manage.py); ``seed()`` runs inside ``manage.py shell`` with the
server's environment to create the team, app, registries, releases and customers, and returns
what the test needs (license IDs, names) as JSON. ``query()`` reads the pull log the same way.

A public registry (no auth) is ``tests.support.registry.start_distribution(root)`` without users.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import ROOT, web_command
from tests.support.servers import LOOPBACK, free_port, stop_process, wait_for_port


@dataclass
class ProxyServer:
    directory: Path
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None
    data: dict = field(default_factory=dict)
    args: tuple[str, ...] = ()  # more uvicorn options

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=180)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-3000:]}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def call(self, function: str, **kwargs) -> dict:
        """Run ``tests.support.proxy_server.<function>(**kwargs)`` in the server's environment."""
        code = (f"import json; from tests.support.proxy_server import {function} as f; "
                f"print('RESULT=' + json.dumps(f(**json.loads({json.dumps(json.dumps(kwargs))}))))")
        out = self.shell(code)
        line = next(x for x in out.splitlines() if x.startswith("RESULT="))
        return json.loads(line.removeprefix("RESULT="))

    def start(self, timeout: float = 30, *, app: str | None = None, migrate: bool = True) -> ProxyServer:
        if migrate:
            self.manage("migrate", "--noinput")
        log = (self.directory / "uvicorn.log").open("ab")
        self.process = start_web(self.env, self.port, log, app=app, args=self.args)
        wait_for_port(LOOPBACK, self.port, time.monotonic() + timeout, process=self.process)
        return self

    def log(self) -> str:
        path = self.directory / "uvicorn.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def rss_kib(self) -> int:
        """Resident memory of the uvicorn process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def start_web(env: dict[str, str], port: int, log, *, app: str | None = None,
              args: tuple[str, ...] = ()) -> subprocess.Popen:
    """Run the Procfile's web command through sh, as honcho does; ``exec`` so that the pid is
    uvicorn's (tests read its memory)."""
    env = {**env, "HOST": LOOPBACK, "WEB_PORT": str(port),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")}
    return subprocess.Popen(["sh", "-c", f"exec {web_command(app=app)} --log-level warning {shlex.join(args)}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def server_env(directory: Path, port: int, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ}
    for key in ("DATABASE_URL", "PORTAL_SQLITE_TEST_PATH", "CELERY_TASK_ALWAYS_EAGER", "REDIS_URL",
                "PORTAL_PROXY_HOST", "PORTAL_TRUSTED_PROXIES", "PORTAL_ENV", "ALLOWED_HOSTS"):
        env.pop(key, None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_VAR_DIR": str(directory / "var"),
        "PORTAL_SQLITE_PATH": str(directory / "portal.sqlite3"),
        "PORTAL_URL": f"http://{LOOPBACK}:{port}",
        "CELERY_BROKER_URL": "memory://",
        "PORTAL_ALLOW_PRIVATE_REGISTRIES": "true",
        "DEBUG": "true",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def start_proxy_server(directory: Path, *, extra: dict[str, str] | None = None,
                       args: tuple[str, ...] = ()) -> ProxyServer:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    return ProxyServer(directory, server_env(directory, port, extra=extra), port,
                       args=tuple(args)).start()


# --- run inside the server's environment (manage.py shell) ------------------------------------

def seed(*, apps: list[dict], registries: list[dict]) -> dict:
    """Create team Acme, registries and apps with promoted releases and customers.

    ``registries``: [{endpoint, provider, username, password, name?, insecure?, apps?: [slug]}]
    ``apps``: [{slug, proxy_public_images?, releases: [[image, ...], ...],
               customers: [{name, archived?, expired?}]}]
    Returns {"licenses": {customer name: license id}, "apps": {slug: pk}, "registries": {endpoint: pk}}.
    """
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from portal.models import Membership, Role, Team
    from registries.models import ExternalRegistry
    from releases.models import App, Customer, Release

    team = Team.objects.create(name="Acme")
    user = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1234")
    Membership.objects.create(user=user, team=team, role=Role.ADMIN)
    out = {"licenses": {}, "apps": {}, "registries": {}}
    made_apps = {}
    for spec in apps:
        app = App.create_with_channels(team=team, name=spec["slug"], slug=spec["slug"])
        app.proxy_public_images = spec.get("proxy_public_images", False)
        app.save(update_fields=["proxy_public_images"])
        made_apps[spec["slug"]] = app
        out["apps"][spec["slug"]] = app.pk
    for spec in registries:
        registry = ExternalRegistry(team=team, endpoint=spec["endpoint"], provider=spec["provider"],
                                    username=spec["username"], name=spec.get("name", ""),
                                    insecure=spec.get("insecure", False))
        if spec["provider"] == "ecr":
            from registries.ecr import parse_ecr_endpoint

            registry.ecr_account, registry.ecr_region = parse_ecr_endpoint(spec["endpoint"])
        registry.secret = spec["password"]
        registry.save()
        for slug in spec.get("apps", []):
            registry.apps.add(made_apps[slug])
        out["registries"][spec["endpoint"]] = registry.pk
    for spec in apps:
        app = made_apps[spec["slug"]]
        unstable = app.channels.get(slug="unstable")
        for i, images in enumerate(spec.get("releases", [])):
            files = [(f"deploy-{n}.yaml", _deployment(f"app{n}", image))
                     for n, image in enumerate(images)]
            release = Release.create_next(app=app, user=user, files=files)
            release.promote_to(unstable, user=user, version_label=f"1.0.{i}")
        for c in spec.get("customers", []):
            customer = Customer.objects.create(app=app, channel=unstable, name=c["name"])
            if c.get("archived"):
                customer.archived_at = timezone.now()
            if c.get("expired"):
                customer.expires_at = timezone.now() - timedelta(days=1)
            customer.save()
            out["licenses"][c["name"]] = customer.license_id
    return out


def _deployment(name: str, image: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: {name}
          image: {image}
"""


def pull_log(*, customer: str) -> dict:
    """The pull log rows of one customer (by name), oldest first."""
    from releases.proxy.models import PullEvent

    rows = PullEvent.objects.filter(customer__name=customer).order_by("id")
    return {"rows": [
        {"image": r.image, "reference": r.reference, "kind": r.kind, "method": r.method,
         "status": r.status, "bytes": r.bytes, "registry": r.registry_id}
        for r in rows
    ]}
