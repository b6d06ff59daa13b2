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
"""

from __future__ import annotations

from pathlib import Path

from tests.support.manifests import deployment_yaml
from tests.support.processes import PortalStack


def start_proxy_server(directory: Path, *, extra: dict[str, str] | None = None,
                      args: tuple[str, ...] = (), app: str | None = None) -> PortalStack:
    """The web process alone, unseeded, with the in-memory broker (nothing reaches a worker);
    ``app`` serves another ASGI application (nothing migrated then)."""
    return PortalStack(directory, names=("web",), seed=None, debug=True, app=app, migrate=app is None,
                       extra_env={"LOG_LEVEL": "WARNING", **(extra or {})},
                       web_args=("--log-level", "warning", *args)).start()


# --- run inside the server's environment (manage.py shell) ------------------------------------

def seed(*, apps: list[dict], registries: list[dict]) -> dict:
    """Create team Acme, registries and apps with promoted releases and customers.

    ``registries``: [{endpoint, provider, username, password, name?, insecure?, apps?: [slug]}]
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
