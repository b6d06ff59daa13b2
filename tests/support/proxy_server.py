"""The proxy registry's tests and benches: the web process alone, and what they run inside it.

pytest-django's live_server is WSGI and buffers streamed responses, so the proxy is tested
against the ``web:`` command of the Procfile (uvicorn and its flags), as ``make run`` and
production serve it (``PortalStack`` of tests/support/processes.py). Forwarded headers are
believed only when a test sets ``PORTAL_TRUSTED_PROXIES`` (as in production, empty by default).
The server has its own SQLite file (migrated with manage.py); ``seed()`` runs inside
``manage.py shell`` (``stack.call("tests.support.proxy_server.seed", ...)``) to create the team,
app, registries, releases and customers, and returns what the test needs (license IDs, names)
as JSON. ``pull_log()`` reads the pull log the same way.

A public registry (no auth) is ``tests.support.registry.start_distribution(root)`` without users.

For bench/ only, ``server="granian"`` (or ``PORTAL_BENCH_WEB_SERVER=granian`` in the environment)
runs the web process under granian instead of the Procfile's uvicorn, to compare the two ASGI
servers on the same application (``GRANIAN_WEB``; granian must be importable, e.g. through
PYTHONPATH). granian serves from a worker process under its own: CPU time and memory are the
process tree's.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.manifests import deployment_yaml
from tests.support.processes import PortalStack, process_cpu_seconds, process_rss_bytes

# The Procfile's web line with granian in uvicorn's place, as close as granian's options allow:
# ASGI with lifespan, one worker, uvloop, HTTP/1.1, the same address, the head within 10 s
# (portal/server.py), 3 s to finish in-flight requests on shutdown. Not the Procfile's other head
# bounds, trusted proxies or TLS (docs/benchmarks.md, "Proxy registry: uvicorn or granian").
GRANIAN_WEB = ('exec python -m granian --interface asgi --host "$HOST" --port "$WEB_PORT" '
               "--workers 1 --loop uvloop --http 1 --no-ws --http1-header-read-timeout 10000 "
               "--workers-kill-timeout 3 portal.asgi:application")


class GranianStack(PortalStack):
    """The web process under granian (bench/ only)."""

    def command(self, name: str) -> str:
        if name.partition(".")[0] != "web":
            return super().command(name)
        command = GRANIAN_WEB
        if self.app is not None:
            command = command.replace("portal.asgi:application", self.app, 1)
        return " ".join([command, *self.web_args])

    def web_cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in _process_tree(self.web_pid))

    def web_rss_bytes(self) -> int:
        return sum(process_rss_bytes(pid) for pid in _process_tree(self.web_pid))


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parent pids of /proc/<pid>/stat."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def start_proxy_server(directory: Path, *, extra: dict[str, str] | None = None,
                      args: tuple[str, ...] = (), app: str | None = None,
                      server: str | None = None) -> PortalStack:
    """The web process alone, unseeded, with the in-memory broker (nothing reaches a worker);
    ``app`` serves another ASGI application (nothing migrated then); ``server``: "uvicorn"
    (the Procfile's, by default) or "granian" (see the module docstring)."""
    server = server or os.environ.get("PORTAL_BENCH_WEB_SERVER", "uvicorn")
    stack = {"uvicorn": PortalStack, "granian": GranianStack}[server]
    return stack(directory, names=("web",), seed=None, debug=True, app=app, migrate=app is None,
                 extra_env={"LOG_LEVEL": "WARNING", **(extra or {})},
                 web_args=("--log-level", "warning", *args)).start()


def start_caching_proxy(directory: Path, *, upstream_host: str, username: str, password: str,
                        apps: list[dict], cache_bytes: str | None = None,
                        extra: dict[str, str] | None = None) -> PortalStack:
    """A proxy server whose blob cache is ``directory/blob-cache`` (``server.cache_dir``), with
    one linked registry named ``upstream`` at ``upstream_host`` and ``apps`` seeded as ``seed``
    takes them (``server.data``); ``cache_bytes`` sets PORTAL_BLOB_CACHE_BYTES, ``extra`` more
    of the server's environment."""
    extra = {**(extra or {}), "PORTAL_BLOB_CACHE_DIR": str(directory / "blob-cache")}
    if cache_bytes is not None:
        extra["PORTAL_BLOB_CACHE_BYTES"] = cache_bytes
    server = start_proxy_server(directory, extra=extra)
    server.cache_dir = directory / "blob-cache"
    try:
        server.data = server.call("tests.support.proxy_server.seed", registries=[{
            "endpoint": upstream_host, "provider": "other", "username": username,
            "password": password, "name": "upstream", "insecure": True,
        }], apps=apps)
    except BaseException:
        server.stop()
        raise
    return server


# --- run inside the server's environment (manage.py shell) ------------------------------------

def seed(*, apps: list[dict], registries: list[dict]) -> dict:
    """Create team Acme, registries and apps with promoted releases and customers.

    ``registries``: [{endpoint, provider, username, password, name?, insecure?,
                      direct_downloads?, apps?: [slug]}]
    ``apps``: [{slug, proxy_public_images?, pin?, releases: [[image, ...], ...],
               customers: [{name, archived?, expired?}]}]
    ``pin``: check each release's images and pin them, as a promotion through the pages does
    (else the releases are promoted unpinned, as before pins existed).
    Returns {"licenses": {customer name: license id}, "apps": {slug: pk}, "registries": {endpoint: pk}}.
    """
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from portal.models import Membership, Role, Team
    from registries.models import ExternalRegistry
    from releases.entitlements.models import PinSource
    from releases.entitlements.services import release_pin
    from releases.image_check.services import release_check_images
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
                                    insecure=spec.get("insecure", False),
                                    direct_downloads=spec.get("direct_downloads", False))
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
            files = [(f"deploy-{n}.yaml", deployment_yaml(f"app{n}", image))
                     for n, image in enumerate(images)]
            release = Release.create_next(app=app, user=user, files=files)
            release.promote_to(unstable, user=user, version_label=f"1.0.{i}")
            if spec.get("pin"):
                release_check_images(release_id=release.pk)
                release_pin(release=release, source=PinSource.PROMOTION)
        for c in spec.get("customers", []):
            customer = Customer.objects.create(app=app, channel=unstable, name=c["name"])
            if c.get("archived"):
                customer.archived_at = timezone.now()
            if c.get("expired"):
                customer.expires_at = timezone.now() - timedelta(days=1)
            customer.save()
            out["licenses"][c["name"]] = customer.license_id
    return out


def pull_log(*, customer: str) -> dict:
    """The pull log rows of one customer (by name), oldest first."""
    from releases.proxy.models import PullEvent

    rows = PullEvent.objects.filter(customer__name=customer).order_by("id")
    return {"rows": [
        {"image": r.image, "reference": r.reference, "kind": r.kind, "method": r.method,
         "status": r.status, "bytes": r.bytes, "registry": r.registry_id, "note": r.note}
        for r in rows
    ]}
