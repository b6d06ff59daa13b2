"""Mirroring pages (issue 4)."""

import pytest
from django.urls import reverse

from registries.mirror_models import MirrorJob
from registries.models import ExternalRegistry, Provider
from tests.conftest import login


@pytest.fixture
def target(team):
    row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint="127.0.0.1:5999",
                           username="u", insecure=True)
    row.secret = "stored-secret"
    row.save()
    return row


def test_the_form_defaults_the_target_to_prefix_name_and_tag(client, bob, target,
                                                             django_capture_on_commit_callbacks,
                                                             monkeypatch):
    sent = []
    monkeypatch.setattr("registries.mirror_services._send", sent.append)
    login(client, bob)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("registries-mirror", args=[target.pk]),
                               {"source": "nginx", "prefix": "demo-apps",
                                "push_username": "pusher", "push_password": "push-secret-1"})
    job = MirrorJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("registries-mirror-detail",
                                                                   args=[job.pk])
    assert (job.source_reference, job.target_repository, job.target_tag) == (
        "docker.io/library/nginx:latest", "demo-apps/nginx", "latest")
    assert sent == [job.pk]  # the task gets the id only
    assert job.push_secret == "push-secret-1"
    page = client.get(response.url)
    assert b"docker.io/library/nginx:latest" in page.content
    assert b"push-secret-1" not in page.content and b"stored-secret" not in page.content


def test_bad_input_is_rejected_with_a_message_and_kept(client, bob, target):
    login(client, bob)
    response = client.post(reverse("registries-mirror", args=[target.pk]),
                           {"source": "Not An Image", "target_repository": "Bad/Repo",
                            "platforms": "amd64"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "cannot contain spaces" in text and "lowercase" in text and "os/architecture" in text
    assert 'value="Bad/Repo"' in text
    assert not MirrorJob.objects.exists()


def test_support_sees_jobs_but_cannot_start_or_cancel(client, sam, alice, target):
    job = MirrorJob.objects.create(team=target.team, registry=target, created_by=alice,
                                   source_reference="docker.io/library/nginx:latest",
                                   target_repository="demo-apps/nginx", target_tag="latest")
    login(client, sam)
    assert client.get(reverse("registries-mirror", args=[target.pk])).status_code == 403
    assert client.post(reverse("registries-mirror-cancel", args=[job.pk])).status_code == 403
    assert client.get(reverse("registries-mirror-detail", args=[job.pk])).status_code == 200
    listing = client.get(reverse("registries-mirror-list"), {"status": "queued", "q": "nginx"})
    assert b"demo-apps/nginx" in listing.content
    assert b"demo-apps/nginx" not in client.get(reverse("registries-mirror-list"),
                                                 {"status": "failed"}).content


def test_other_teams_get_404(client, mallory, alice, target):
    job = MirrorJob.objects.create(team=target.team, registry=target, created_by=alice,
                                   source_reference="docker.io/library/nginx:latest",
                                   target_repository="demo-apps/nginx", target_tag="latest")
    login(client, mallory)
    assert client.get(reverse("registries-mirror-detail", args=[job.pk])).status_code == 404
    assert client.get(reverse("registries-mirror", args=[target.pk])).status_code == 404
    assert client.post(reverse("registries-mirror-cancel", args=[job.pk])).status_code == 404


def test_polling_stops_when_the_job_is_done_and_cancel_works(client, bob, alice, target):
    job = MirrorJob.objects.create(team=target.team, registry=target, created_by=alice,
                                   source_reference="docker.io/library/nginx:latest",
                                   target_repository="demo-apps/nginx", target_tag="latest")
    login(client, bob)
    url = reverse("registries-mirror-detail", args=[job.pk])
    live = client.get(url, HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and b'hx-trigger="every 1s"' in live.content
    client.post(reverse("registries-mirror-cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == "canceled"
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and b"hx-trigger" not in done.content
