"""The kustomize base in deploy/kubernetes builds, and says what the deployment promises.

Built with kubectl's kustomize; nothing is applied (no cluster here) and the image of
deploy/Containerfile is not built (no container engine).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.support.servers import require_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    kubectl = require_binary("kubectl")
    built = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes")],
                           capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return [o for o in yaml.safe_load_all(built.stdout) if o]


def find(objects, kind, name=None) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects, kind, name) -> dict:
    (found,) = find(objects, kind, name)
    return found


def container(deployment) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_it_builds_the_processes_of_the_procfile(objects):
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Ingress", "Secret", "ConfigMap"} <= kinds
    assert {d["metadata"]["name"] for d in find(objects, "Deployment")} == {"portal-web", "portal-worker", "portal-beat"}
    assert one(objects, "Deployment", "portal-web")["spec"]["replicas"] >= 2
    assert one(objects, "Deployment", "portal-worker")["spec"]["replicas"] >= 1


def test_beat_is_exactly_one(objects):
    beat = one(objects, "Deployment", "portal-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert container(beat)["command"][-1] == "beat"


def test_web_probes_liveness_and_readiness(objects):
    web = container(one(objects, "Deployment", "portal-web"))
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = one(objects, "Service", "portal-web")
    assert service["spec"]["selector"] == one(objects, "Deployment", "portal-web")["spec"]["selector"]["matchLabels"]


def test_every_container_asks_for_resources_and_runs_as_non_root(objects):
    for deployment in find(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["resources"]["requests"]["memory"], c["name"]
            assert c["resources"]["limits"]["memory"], c["name"]
            assert c["image"] == "registry.example.com/vendor/vendor-portal:0.1.0"


def test_the_registry_ingress_streams(objects):
    registry = one(objects, "Ingress", "portal-registry")
    annotations = registry["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    (rule,) = registry["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/v2/"]
    for ingress in find(objects, "Ingress"):
        assert ingress["spec"]["tls"][0]["secretName"]
        assert {r["host"] for r in ingress["spec"]["rules"]} <= set(ingress["spec"]["tls"][0]["hosts"])


def test_the_secrets_hold_placeholders_only(objects):
    secrets = find(objects, "Secret")
    assert {s["metadata"]["name"].rsplit("-", 1)[0] for s in secrets} == {"portal-keys", "portal-env"}
    for secret in secrets:
        for name, value in secret["data"].items():
            text = base64.b64decode(value).decode()
            assert "REPLACE_ME" in text, name
            assert "PRIVATE KEY" not in text
            with pytest.raises(ValueError):
                Fernet(text.strip())


def test_the_keys_reach_every_process_as_files(objects):
    config = find(objects, "ConfigMap")[0]["data"]
    assert config["PORTAL_ENV"] == "production"
    assert config["PORTAL_URL"].startswith("https://")
    for deployment in find(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        (keys,) = [v for v in spec["volumes"] if v["name"] == "keys"]
        assert keys["secret"]["secretName"].startswith("portal-keys-")
        mounts = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert Path(config["PORTAL_ENCRYPTION_KEYS_FILE"]).parent.as_posix() in mounts


def test_each_web_pod_has_its_own_blob_cache_volume(objects):
    web = one(objects, "Deployment", "portal-web")
    env = {e["name"]: e["value"] for e in container(web).get("env", [])}
    (mount,) = [m for m in container(web)["volumeMounts"]
                if m["mountPath"] == env["PORTAL_BLOB_CACHE_DIR"]]
    (volume,) = [v for v in web["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    limit = volume["emptyDir"]["sizeLimit"]
    assert limit.endswith("Gi") and int(env["PORTAL_BLOB_CACHE_BYTES"]) < int(limit[:-2]) << 30
