"""/metrics in the test process (prometheus-client's in-process values): the token, requests,
tasks, registries by status and queue depth. The proxy's metrics, across processes, are in
test_metrics_stack.py."""

import logging

import pytest
import redis
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from portal.management.commands.runportal import fresh_metrics_dir
from registries import tasks as registry_tasks
from registries.mirror import services as mirror_services
from registries.models import ExternalRegistry, Provider, Status
from releases.image_check import tasks as image_check_tasks
from releases.models import App, Release
from tests.conftest import login
from tests.registries.product_helpers import celery_conf, make_registry
from tests.support.images import build_index, push
from tests.support.servers import free_port

TOKEN = "metrics-token-for-tests-0123456789"
KB = 1 << 10


@pytest.fixture
def token(settings, db):
    settings.PORTAL_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one authorised scrape."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_does_not_exist_without_a_token(client, settings):
    settings.PORTAL_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_answer_only_the_bearer_token(client, token):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.content.decode()
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403
    assert "PORTAL_METRICS_TOKEN" in wrong.content.decode()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")
    assert b"portal_http_requests_total" in right.content


def test_requests_are_counted_by_view_name_and_status_with_their_latency(client, alice, token):
    before = scrape(client)
    login(client, alice)
    assert client.get(reverse("releases-app-list")).status_code == 200
    assert client.get("/registries/987654/").status_code == 404
    assert client.get("/no/such/page/").status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("portal_http_requests_total", view="releases-app-list", method="GET", status="200") == 1
    assert delta("portal_http_requests_total", view="registries-detail", method="GET", status="404") == 1
    assert delta("portal_http_requests_total", view="unmatched", method="GET", status="404") == 1
    assert delta("portal_http_request_duration_seconds_count", view="releases-app-list") == 1
    assert delta("portal_http_request_duration_seconds_bucket", view="releases-app-list", le="+Inf") == 1
    assert delta("portal_http_request_duration_seconds_sum", view="releases-app-list") > 0
    # The view's name, never its path (paths carry pks, image names and tags).
    assert not any("987654" in str(labels) for _, labels in after)


def test_task_runs_are_counted_by_name_and_outcome_with_a_log_line(client, team, alice, token, caplog):
    caplog.set_level(logging.INFO, logger="portal.tasks")
    registry = make_registry(team, endpoint="0177.0.0.1:5302", name="old")  # fails, no network
    release = Release.create_next(app=App.create_with_channels(team=team, name="Metrics App", slug="metrics-app"), user=alice,
                                  files=[("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")])
    validation, image_check = "registries.tasks.validate_registry", "releases.tasks.check_release_images"
    before = scrape(client)
    with celery_conf(task_always_eager=True):
        registry_tasks.validate_registry.delay(registry.pk)
        image_check_tasks.check_release_images.delay(release.pk)
    after = scrape(client)
    for task in (validation, image_check):
        assert (value(after, "portal_task_runs_total", task=task, outcome="success")
                - value(before, "portal_task_runs_total", task=task, outcome="success")) == 1
        assert (value(after, "portal_task_duration_seconds_count", task=task)
                - value(before, "portal_task_duration_seconds_count", task=task)) == 1
    lines = [r for r in caplog.records if r.name == "portal.tasks"]
    assert [(r.task, r.object, r.outcome) for r in lines] == [
        (validation, registry.pk, "success"), (image_check, release.pk, "success")]
    assert f"task {validation} object={registry.pk} success" in lines[0].getMessage()


def test_registries_are_gauged_by_status_from_the_database(client, team, other_team, token):
    make_registry(team, endpoint="a.example.com", status=Status.CONNECTED)
    make_registry(team, endpoint="b.example.com", status=Status.CONNECTED)
    make_registry(other_team, endpoint="c.example.com", status=Status.FAILED)
    samples = scrape(client)
    assert value(samples, "portal_registries", status="connected") == 2
    assert value(samples, "portal_registries", status="failed") == 1
    assert value(samples, "portal_registries", status="unhealthy") == 0
    assert ("portal_registries", (("status", "unhealthy"),)) in samples


def test_queue_depth_is_the_length_of_the_celery_queue_in_redis(client, token, settings, redis_server):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{redis_server.port}/14"
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue.delete("celery")
    queue.lpush("celery", "a", "b", "c")
    try:
        samples = scrape(client)
    finally:
        queue.delete("celery")
        queue.close()
    assert value(samples, "portal_queue_depth", queue="celery") == 3
    assert value(samples, "portal_broker_up") == 1


def test_a_broker_that_is_down_is_reported_not_failed_on(client, token, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    samples = scrape(client)
    assert value(samples, "portal_broker_up") == 0
    assert not any(name == "portal_queue_depth" for name, _ in samples)


def test_no_queue_depth_without_a_redis_broker(client, token, settings):
    settings.CELERY_BROKER_URL = "memory://"
    samples = scrape(client)
    assert not any(name in ("portal_queue_depth", "portal_broker_up") for name, _ in samples)


def test_a_mirror_job_counts_its_run_the_bytes_copied_and_its_throughput(
        client, team, alice, token, settings, source_registry, target_registry,
        django_capture_on_commit_callbacks):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    index = build_index(layer_sizes=[300 * KB, 200 * KB], shared_size=100 * KB, seed=41)
    push(index, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    rows = []
    for registry in (source_registry, target_registry):
        row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=registry.host,
                               name=f"r{registry.port}", username=registry.username, insecure=True)
        row.secret = registry.password
        row.save()
        rows.append(row)
    mirror = "registries.mirror_tasks.mirror_image"
    before = scrape(client)
    with celery_conf(task_always_eager=True), django_capture_on_commit_callbacks(execute=True):
        job = mirror_services.mirror_create(
            team=team, registry=rows[1], source=f"{source_registry.host}/library/app:1.0",
            target_repository="demo-apps/app", target_tag="1.0", user=alice)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("portal_task_runs_total", task=mirror, outcome="success") == 1
    assert delta("portal_task_duration_seconds_count", task=mirror) == 1
    assert delta("portal_mirror_copied_bytes_total") == sum(b.size for b in index.blobs)
    assert delta("portal_mirror_bytes_per_second_count") == 1
    assert delta("portal_mirror_bytes_per_second_sum") > 0


def test_make_run_gives_the_processes_an_emptied_metrics_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    stale = tmp_path / "metrics" / "counter_4242.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old run")
    assert fresh_metrics_dir(tmp_path) == tmp_path / "metrics"
    assert not stale.exists()
    chosen = tmp_path / "elsewhere"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(chosen))
    assert fresh_metrics_dir(tmp_path) == chosen and chosen.is_dir()
