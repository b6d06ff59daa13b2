"""Mirroring pages."""

import pytest
from django.urls import reverse

from registries.mirror.models import MirrorJob
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
    monkeypatch.setattr("registries.mirror.services._send", sent.append)
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
    assert response.status_code == 400
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


# --- the team-level entry point: from a release's image list -------------------------------


@pytest.fixture
def second(team):
    row = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint="127.0.0.1:5998",
                           username="u2", insecure=True)
    row.secret = "stored-secret-2"
    row.save()
    return row


def test_from_a_release_the_source_is_prefilled_and_the_target_registry_chosen(
        client, bob, target, second, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr("registries.mirror.services._send", lambda pk: None)
    login(client, bob)
    url = reverse("registries-mirror-new")
    form = client.get(url, {"source": "nginx", "app": "mysampleecrapp"}).content.decode()
    assert 'name="source" value="nginx"' in form and 'value="mysampleecrapp"' in form
    assert "Choose a linked registry" in form and "127.0.0.1:5998" in form

    missing = client.post(url, {"source": "nginx", "app": "mysampleecrapp"})
    assert "Choose the registry to copy the image into." in missing.content.decode()
    assert not MirrorJob.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"source": "nginx", "prefix": "demo-apps", "registry": second.pk,
                                     "app": "mysampleecrapp"})
    job = MirrorJob.objects.get()
    assert job.registry == second and job.target_repository == "demo-apps/nginx"
    assert response.url == reverse("registries-mirror-detail", args=[job.pk]) + "?app=mysampleecrapp"
    # Once it succeeded, the job page offers to use it in that app's draft.
    MirrorJob.objects.filter(pk=job.pk).update(status="succeeded", result_digest="sha256:" + "a" * 64)
    page = client.get(response.url).content.decode()
    assert reverse("releases-release-use-mirror", args=["mysampleecrapp", job.pk]) in page
    use = reverse("releases-release-use-mirror", args=["mysampleecrapp", job.pk])
    assert use in client.get(response.url, HTTP_HX_REQUEST="true").content.decode()  # polled part
    # Without an origin app: a page to pick one.
    plain = client.get(reverse("registries-mirror-detail", args=[job.pk])).content.decode()
    assert reverse("releases-use-mirror-pick", args=[job.pk]) in plain


def test_one_registry_is_preselected_and_other_teams_registries_refused(
        client, bob, target, mallory, monkeypatch):
    monkeypatch.setattr("registries.mirror.services._send", lambda pk: None)
    theirs = ExternalRegistry(team=mallory.membership.team, provider=Provider.OTHER,
                              endpoint="127.0.0.1:5997", username="m", insecure=True)
    theirs.secret = "theirs"
    theirs.save()
    login(client, bob)
    url = reverse("registries-mirror-new")
    form = client.get(url, {"source": "nginx", "app": "<script>"}).content.decode()
    assert "Choose a linked registry" not in form and "127.0.0.1:5997" not in form
    assert "<script>" not in form
    refused = client.post(url, {"source": "nginx", "registry": theirs.pk})
    assert "Choose one of your linked registries." in refused.content.decode()
    assert not MirrorJob.objects.exists()


def test_without_a_linked_registry_the_form_says_to_add_one(client, bob):
    login(client, bob)
    page = client.get(reverse("registries-mirror-new"), {"source": "nginx"}).content.decode()
    assert "Link a registry to copy images into first." in page and 'id="mirror-form"' not in page


def test_support_cannot_open_the_team_level_form(client, sam, target):
    login(client, sam)
    assert client.get(reverse("registries-mirror-new"), {"source": "nginx"}).status_code == 403
