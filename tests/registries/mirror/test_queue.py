"""Creating a mirror job while the broker is down: the page answers at once and says so; the job
is queued by the sweep once the broker is back on its port."""

import json
import time

import redis
from django.urls import reverse

from portal import publish as publisher
from registries.mirror import services as mirror_services
from registries.mirror.models import QUEUE_UNREACHABLE, MirrorJob
from registries.models import ExternalRegistry, Provider
from tests.conftest import login
from tests.registries.product_helpers import celery_conf
from tests.support.servers import free_port, start_redis, stop_process


def test_with_the_broker_down_a_mirror_job_is_created_at_once_and_queued_when_it_is_back(
        client, bob, team, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    target = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint="127.0.0.1:5999",
                              username="u", insecure=True)
    target.secret = "stored-secret"
    target.save()
    port = free_port()
    login(client, bob)
    with celery_conf(broker_url=f"redis://127.0.0.1:{port}/0", task_always_eager=False):
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("registries-mirror", args=[target.pk]),
                                   {"source": "nginx", "prefix": "demo-apps"})
        elapsed = time.monotonic() - started
        assert response.status_code == 302
        assert elapsed < 2, f"creating the job took {elapsed:.1f} s"
        job = MirrorJob.objects.get()
        assert job.status == MirrorJob.Status.QUEUED
        page = client.get(response.url).content.decode()
        assert "worker queue is unreachable" in page and "starts on its own" in page

        # The broker comes back on the same address. Beat's sweep runs in the worker, which
        # knows nothing of this process's back-off.
        broker = start_redis(tmp_path, port=port)
        try:
            monkeypatch.setattr(publisher, "_down_until", {})
            assert mirror_services.mirror_jobs_sweep(older_than_seconds=0) == 1
            message = json.loads(redis.Redis(port=port).lindex("celery", 0))
        finally:
            stop_process(broker.process)
    assert message["headers"]["task"] == "registries.mirror_tasks.mirror_image"
    assert message["headers"]["argsrepr"] == f"({job.pk},)"
    job.refresh_from_db()
    assert job.status == MirrorJob.Status.QUEUED and job.error == ""
    assert QUEUE_UNREACHABLE not in client.get(response.url).content.decode()
