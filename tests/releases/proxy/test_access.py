"""The proxy's cold authorization: what it reads to decide, and the allow-list it builds."""

from __future__ import annotations

import base64

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registries.models import ExternalRegistry
from releases import kustomize
from releases.downstream import proxied_repositories
from releases.models import Release
from releases.proxy import access

HOST = "registry.example.com"
PORTED = "reg.local:5000"


def deployment(name, *images, kind="Deployment", api="apps/v1"):
    pod = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name},
            "spec": {"template": {"spec": pod}}}


def yaml_file(*documents) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


@pytest.fixture
def promoted(settings, sample_app, customer, alice):
    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    registry = ExternalRegistry(team=sample_app.team, endpoint=HOST, provider="other", username="u")
    registry.secret = "pw"
    registry.save()
    registry.apps.add(sample_app)
    release = Release.create_next(app=sample_app, user=alice, files=[
        ("web.yaml", yaml_file(deployment("web", f"{HOST}/team/app:1")))])
    release.promote_to(customer.channel, user=alice, version_label="1")
    return registry


def test_a_cold_decision_asks_which_registries_once_and_renders_nothing(customer, promoted,
                                                                          monkeypatch):
    def no_rendering(**kwargs):
        raise AssertionError("the allow-list renders no downstream")

    monkeypatch.setattr(kustomize, "render_downstream", no_rendering)
    monkeypatch.setattr(access, "registry_pull_client", lambda **kwargs: "client")
    header = "Basic " + base64.b64encode(f"{customer.license_id}:{customer.license_id}".encode()).decode()
    with CaptureQueriesContext(connection) as queries:
        result = access.decide(header=header, address="10.0.0.1", app_slug=customer.app.slug,
                               name=f"{HOST}/team/app")
    assert isinstance(result, access.Access), result
    assert result.registry_id == promoted.pk
    registry_queries = [q["sql"] for q in queries if 'FROM "registries_externalregistry"' in q["sql"]]
    assert len(registry_queries) == 1, registry_queries


def test_a_login_is_the_license_check_and_the_anonymous_probe_is_not_a_failure(settings, customer):
    settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT = 2
    for _ in range(5):  # every client probes /v2/ without credentials first
        refusal = access.check_login(header="", address="10.9.8.7")
        assert (refusal.status, refusal.code) == (401, "UNAUTHORIZED")
    header = "Basic " + base64.b64encode(f"{customer.license_id}:{customer.license_id}".encode()).decode()
    assert access.check_login(header=header, address="10.9.8.7") is None
    wrong = "Basic " + base64.b64encode(b"nope:nope").decode()
    statuses = [access.check_login(header=wrong, address="10.9.8.7").status for _ in range(4)]
    assert statuses[0] == 401 and statuses[-1] == 429


def test_the_allow_list_holds_exactly_what_the_rendered_downstream_proxies():
    files = [
        ("web.yaml", yaml_file(deployment("web", f"{HOST}/team/app:1", "nginx",
                                          f"{PORTED}/team/db@sha256:" + "ab" * 32, "Not A Valid Image",
                                          "proxy.example.com/proxy/myapp/x:1"))),
        ("jobs.yaml", yaml_file(deployment("cron", f"{HOST}/team/app:2", kind="Pod", api="v1"),
                                deployment("kots", f"{HOST}/kots/only:1", api="kots.io/v1beta1"))),
        ("kustomization.yaml", yaml_file(deployment("left-out", f"{HOST}/not/base:1"))),
        ("broken.yaml", "a: [\n"),
        ("../evil.yaml", yaml_file(deployment("evil", f"{HOST}/evil/app:1"))),
        ("other.yaml", yaml_file(deployment("other", f"{PORTED}/noname/app:1"))),
    ]
    for registry_names in ({PORTED: "local"}, {}):
        kwargs = dict(app_slug="myapp", proxy_host="proxy.example.com",
                      is_proxied=lambda ref: ref.domain != "docker.io", registry_names=registry_names)
        out = kustomize.render_downstream(files=files, license_id="-", **kwargs)
        prefix = "proxy.example.com/proxy/myapp/"
        rendered = {kustomize.strip_tag_and_digest(i.proxied).removeprefix(prefix)
                    for i in out.images if i.proxied.startswith(prefix)}
        allowed = kustomize.proxied_repositories(files, **kwargs)
        assert set(allowed) == rendered
        assert f"{HOST}/team/app" in allowed
        assert not any("kots" in name or "not/base" in name or "evil" in name for name in allowed)


def test_the_allow_list_reads_the_promoted_releases_of_the_app(customer, promoted):
    allowed = proxied_repositories(customer.app)
    assert set(allowed) == {f"{HOST}/team/app"}
    assert (allowed[f"{HOST}/team/app"].domain, allowed[f"{HOST}/team/app"].path) == (HOST, "team/app")
