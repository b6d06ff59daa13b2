"""/metrics of the web processes as the Procfile runs them (uvicorn, two workers sharing
PROMETHEUS_MULTIPROC_DIR), after real pulls through the proxy registry with skopeo, and their
request log lines as JSON (PORTAL_LOG_FORMAT=json)."""

from __future__ import annotations

import base64
import json
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import images
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import start_distribution
from tests.support.servers import require_binary

pytestmark = pytest.mark.slow

TOKEN = "stack-metrics-token-0123456789abcdef"
SLUG = "metricsapp"
TAG = "v7.3.1-metrics"  # distinctive: a label holding it would show in the exposition
IMAGE = "public.example.com/pub/app"
CUSTOMER = "Zanzibar Metrics Customer"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    public = start_distribution(tmp_path_factory.mktemp("public-registry"))
    image = images.build_single([60_000, 40_000], seed=31)
    images.push(image, public.url, "pub/app", TAG)
    directory = tmp_path_factory.mktemp("metrics-stack")
    metrics_dir = directory / "metrics"
    metrics_dir.mkdir()
    server = start_proxy_server(directory, extra={
        "PORTAL_REGISTRY_HOST_MAP": f"public.example.com={public.url}",
        "PORTAL_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PORTAL_LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }, args=("--workers", "2"))
    try:
        server.data = server.call("tests.support.proxy_server.seed", registries=[], apps=[
            {"slug": SLUG, "proxy_public_images": True, "releases": [[f"{IMAGE}:{TAG}"]],
             "customers": [{"name": CUSTOMER}]},
        ])
        server.data["image"] = image
        yield server
    finally:
        server.stop()
        public.stop()


def scrape(stack) -> tuple[str, dict[tuple, float]]:
    response = httpx.get(f"{stack.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return response.text, samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def basic(license_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()}


def test_pulls_bytes_and_refusals_are_counted_across_the_web_processes(stack, tmp_path):
    license_id = stack.data["licenses"][CUSTOMER]
    _, before = scrape(stack)
    result = subprocess.run(
        [require_binary("skopeo"), "copy", "--src-tls-verify=false", "--src-creds",
         f"{license_id}:{license_id}", f"docker://{stack.host}/proxy/{SLUG}/{IMAGE}:{TAG}",
         f"oci:{tmp_path / 'oci'}:{TAG}"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    wrong = "w" * 40
    path = f"/v2/proxy/{SLUG}/{IMAGE}/manifests/{TAG}"
    assert httpx.get(stack.url + path, headers=basic(wrong), timeout=30).status_code == 401
    other = f"/v2/proxy/no-such-app/{IMAGE}/manifests/{TAG}"
    assert httpx.get(stack.url + other, headers=basic(wrong), timeout=30).status_code == 401
    not_released = f"/v2/proxy/{SLUG}/public.example.com/pub/unreleased/manifests/{TAG}"
    assert httpx.get(stack.url + not_released, headers=basic(license_id), timeout=30).status_code == 403

    image = stack.data["image"]
    blobs = [*image.blobs]
    # Each scrape, whichever of the two processes answers it, sums both processes' counts.
    scrapes = [scrape(stack) for _ in range(4)]
    for text, after in scrapes:
        def delta(name, after=after, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("portal_proxy_pulls_total", app=SLUG, kind="manifest", status="200") >= 1
        assert delta("portal_proxy_pulls_total", app=SLUG, kind="blob", status="200") >= len(blobs)
        assert delta("portal_proxy_pull_bytes_total", app=SLUG, kind="blob") >= sum(b.size for b in blobs)
        assert delta("portal_proxy_refusals_total", app=SLUG, reason="unauthorized") == 1
        assert delta("portal_proxy_refusals_total", app="", reason="unauthorized") == 1
        assert delta("portal_proxy_refusals_total", app=SLUG, reason="denied") == 1
        assert delta("portal_http_requests_total", view="releases-proxy", method="GET", status="401") == 2
        assert delta("portal_http_request_duration_seconds_count", view="releases-proxy") >= 4
        # No label names a customer, a license or a tag.
        for secret in (license_id, wrong, CUSTOMER, TAG, "unreleased", "no-such-app"):
            assert secret not in text
    pids = {p.name.split("_")[-1] for p in (stack.directory / "metrics").glob("counter_*.db")}
    assert len(pids) >= 2, pids  # both web processes wrote (the pulls spread over them)


def test_the_request_log_is_json_lines_with_the_view_and_no_license(stack):
    license_id = stack.data["licenses"][CUSTOMER]
    path = f"/v2/proxy/{SLUG}/{IMAGE}/manifests/{TAG}"
    assert httpx.get(stack.url + path, headers=basic(license_id), timeout=30).status_code == 200
    log = stack.log("web")
    assert license_id not in log
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [e for e in entries if e.get("event") == "request"]
    assert any(e["view"] == "releases-proxy" and e["status"] == 200 and e["method"] == "GET"
               and e["duration_ms"] >= 0 for e in requests), requests[-5:]
    assert all(set(e) >= {"time", "level", "logger", "message"} for e in entries)
    # Every line a portal logger wrote is JSON (uvicorn's own access lines are not ours).
    portal_lines = [line for line in log.splitlines() if '"logger": "portal' in line or "portal.requests" in line]
    assert portal_lines and all(line.startswith("{") for line in portal_lines)
