"""MirrorJob and image_mirror against real loopback registries."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.models import AuditEvent
from registries.mirror import services as mirror_services
from registries.mirror.models import MirrorJob
from registries.models import ExternalRegistry, Provider
from registries.reference import parse
from tests.support.images import build_index, push

KB = 1 << 10


@pytest.fixture(autouse=True)
def _private_registries(settings):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True


def link(team, registry, *, username=None, password=None):
    row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=registry.host,
                           name=f"r{registry.port}", username=username or registry.username,
                           insecure=True)
    row.secret = password or registry.password
    row.save()
    return row


@pytest.fixture
def image(source_registry):
    index = build_index(layer_sizes=[300 * KB, 200 * KB], shared_size=100 * KB)
    push(index, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    return index


@pytest.fixture
def linked(team, source_registry, target_registry):
    return link(team, source_registry), link(team, target_registry)


def create(team, alice, target, source_registry, **kwargs):
    values = dict(team=team, registry=target, source=f"{source_registry.host}/library/app:1.0",
                  target_repository="demo-apps/app", target_tag="1.0", user=alice)
    values.update(kwargs)
    return mirror_services.mirror_create(**values)


def test_the_default_target_is_prefix_last_component_and_tag():
    assert mirror_services.default_target(parse("nginx"), prefix="demo-apps") == (
        "demo-apps/nginx", "latest")
    assert mirror_services.default_target(parse("ghcr.io/org/team/app:2.1"), prefix="/x/") == (
        "x/app", "2.1")
    assert mirror_services.default_target(parse("nginx@sha256:" + "a" * 64)) == ("nginx", "latest")


def test_it_mirrors_an_index_and_records_progress_log_and_digest(
        team, alice, linked, image, source_registry, django_capture_on_commit_callbacks,
        settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from portal.celery import app
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = create(team, alice, linked[1], source_registry)
    finally:
        app.conf.task_always_eager = False
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.result_digest == image.digest
    assert job.source_registry == linked[0]
    assert (job.blobs_done, job.blobs_total) == (7, 7)
    assert job.bytes_done == job.bytes_total == sum(b.size for b in image.blobs)
    assert job.percent == 100 and job.lease_until is None and job.finished_at
    actions = [line["action"] for line in job.log if "digest" in line]
    assert actions == ["copied"] * 7
    assert AuditEvent.objects.filter(action="mirror", object_id=str(job.pk)).exists()


def test_push_credentials_are_used_then_wiped_and_a_rejection_fails_at_once(
        team, alice, linked, image, source_registry, target_registry):
    job = create(team, alice, linked[1], source_registry, push_username="pusher",
                 push_password="not-the-password")
    assert job.push_secret_encrypted and "not-the-password" not in job.push_secret_encrypted
    assert mirror_services.image_mirror(job_id=job.pk).status == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "unauthorized"
    assert "credentials" in job.error and "not-the-password" not in job.error
    assert job.push_username == "" and job.push_secret_encrypted == ""

    good = create(team, alice, linked[1], source_registry, push_username="pusher",
                  push_password=target_registry.password)
    assert mirror_services.image_mirror(job_id=good.pk).status == "succeeded"
    good.refresh_from_db()
    assert good.push_secret_encrypted == "" and good.result_digest == image.digest


def test_a_missing_source_tag_fails_with_a_message(team, alice, linked, image, source_registry):
    job = create(team, alice, linked[1], source_registry,
                 source=f"{source_registry.host}/library/app:nope")
    mirror_services.image_mirror(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "image_not_found"
    assert "library/app:nope" in job.error


def test_a_second_delivery_waits_while_the_lease_is_live_and_takes_over_when_it_expired(
        team, alice, linked, image, source_registry):
    job = create(team, alice, linked[1], source_registry)
    assert MirrorJob.claim(job.pk) is not None
    outcome = mirror_services.image_mirror(job_id=job.pk)
    assert outcome.retry_in and outcome.retry_in > 1
    MirrorJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert mirror_services.image_mirror(job_id=job.pk).status == "succeeded"
    job.refresh_from_db()
    assert job.attempts == 2 and any("Resumed" in line.get("event", "") for line in job.log)


def test_a_repeat_mirror_skips(team, alice, linked, image, source_registry):
    first = create(team, alice, linked[1], source_registry)
    mirror_services.image_mirror(job_id=first.pk)
    again = create(team, alice, linked[1], source_registry)
    mirror_services.image_mirror(job_id=again.pk)
    again.refresh_from_db()
    assert again.status == "succeeded" and again.result_skipped
    assert again.result_digest == image.digest


def test_cancel_ends_a_queued_job_and_flags_a_running_one(team, alice, linked, image,
                                                          source_registry):
    queued = create(team, alice, linked[1], source_registry, push_username="u",
                    push_password="secret-pw")
    mirror_services.mirror_cancel(job=queued)
    assert queued.status == "canceled" and queued.push_secret_encrypted == ""
    assert mirror_services.image_mirror(job_id=queued.pk).status == "canceled"

    running = create(team, alice, linked[1], source_registry)
    MirrorJob.claim(running.pk)
    mirror_services.mirror_cancel(job=running)
    assert running.status == "running" and running.cancel_requested
    # The worker's next lease renewal sees it; a dead worker's job is ended by the next delivery.
    MirrorJob.objects.filter(pk=running.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert mirror_services.image_mirror(job_id=running.pk).status == "canceled"


def test_a_running_copy_stops_soon_after_cancel(team, alice, linked, image, source_registry,
                                                monkeypatch):
    job = create(team, alice, linked[1], source_registry)
    calls = {"n": 0}
    real = mirror_services._Tracker.should_cancel

    def cancel_midway(self):
        calls["n"] += 1
        if calls["n"] == 2:
            MirrorJob.objects.filter(pk=job.pk).update(cancel_requested=True)
            self.last_lease = 0
        return real(self)

    monkeypatch.setattr(mirror_services._Tracker, "should_cancel", cancel_midway)
    assert mirror_services.image_mirror(job_id=job.pk).status == "canceled"
    job.refresh_from_db()
    assert job.status == "canceled" and job.finished_at


def _boom(*args, **kwargs):
    raise RuntimeError("boom while talking to https://pusher:pusher-secret-pw@registry.example")


@pytest.mark.parametrize("seam", [
    "registries.mirror.copy.Copier._copy_blob",          # a blob's worker thread
    "registries.mirror.models.MirrorJob.claim",       # before any copying
    "registries.mirror.models.MirrorJob.mark_succeeded",  # after the copy
])
def test_an_unexpected_error_ends_the_job_failed_with_a_readable_message(
        team, alice, linked, image, source_registry, target_registry, monkeypatch, caplog, seam):
    job = create(team, alice, linked[1], source_registry)
    monkeypatch.setattr(seam, _boom)
    assert mirror_services.image_mirror(job_id=job.pk).status == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "internal"
    assert job.error == "The portal failed unexpectedly while copying; see the worker log."
    assert job.lease_until is None and job.finished_at
    stored = job.error + json.dumps(job.log)
    assert "boom" not in stored and target_registry.password not in stored
    assert "Traceback" not in stored
    # The traceback is in the worker's log.
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
