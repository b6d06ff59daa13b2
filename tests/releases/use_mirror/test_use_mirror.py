"""A finished mirror points the newest release's image at the mirrored image."""

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent
from registries.mirror.models import MirrorJob
from registries.models import ExternalRegistry, Provider
from releases.manifests import images_in
from releases.models import Release
from releases.use_mirror.services import rewrite
from tests.conftest import NGINX_DEPLOYMENT, login

ECR = "4999999999999.dkr.ecr.us-east-2.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32
NGINX = "docker.io/library/nginx:latest"
TWO_DOCS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  template:
    spec:
      initContainers:
        - name: init
          image: "docker.io/library/nginx"   # pulled first
      containers:
        - name: web
          image: 'nginx:latest'
        - name: cache
          image: nginx:1.27
        - name: other
          image: redis
"""


# --- the rewrite (pure) ---------------------------------------------------------------------


def test_it_replaces_every_container_image_that_normalises_to_the_source():
    new = f"{ECR}/demo-apps/nginx:latest"
    text, changes = rewrite("db.yaml", TWO_DOCS, source=NGINX, new_image=new)
    assert [(c.line, c.before) for c in changes] == [
        (16, "docker.io/library/nginx"), (19, "nginx:latest")]
    assert f'image: "{new}"   # pulled first\n' in text  # quotes and comment kept
    assert f"image: '{new}'\n" in text
    assert "data:\n  image: nginx\n" in text  # not a container: untouched
    assert "image: nginx:1.27\n" in text and "image: redis\n" in text  # other images untouched
    assert [u.image for u in images_in([("db.yaml", text)])] == [new, new, "nginx:1.27", "redis"]
    # Everything else byte for byte.
    assert text.replace(f'"{new}"', '"docker.io/library/nginx"').replace(
        f"'{new}'", "'nginx:latest'") == TWO_DOCS


def test_it_changes_nothing_in_files_with_syntax_errors_or_without_the_image():
    assert rewrite("x.yaml", "a: [", source=NGINX, new_image="x/y:1") == ("a: [", [])
    assert rewrite("d.yaml", NGINX_DEPLOYMENT, source="docker.io/library/redis:latest",
                   new_image="x/y:1") == (NGINX_DEPLOYMENT, [])


# --- the page -------------------------------------------------------------------------------


@pytest.fixture
def job(team, alice):
    registry = ExternalRegistry(team=team, provider=Provider.ECR, endpoint=ECR, username="AKIA")
    registry.secret = "stored-secret"
    registry.save()
    return MirrorJob.objects.create(
        team=team, registry=registry, created_by=alice, source_reference=NGINX,
        target_repository="demo-apps/nginx", target_tag="latest", status="succeeded",
        result_digest=DIGEST, finished_at=timezone.now())


def url(job, slug="mysampleecrapp"):
    return reverse("releases-release-use-mirror", args=[slug, job.pk])


def deployment(release):
    return release.files.get(name="deployment.yaml").content


def test_bob_creates_a_draft_from_the_promoted_release_with_the_mirrored_image(client, bob, sample_app, job):
    login(client, bob)
    preview = client.get(url(job))
    text = preview.content.decode()
    assert preview.status_code == 200
    assert "Release 1 is promoted" in text and "deployment.yaml, line 18" in text
    assert f"+ image: {ECR}/demo-apps/nginx:latest" in text
    assert Release.objects.filter(app=sample_app).count() == 1  # a GET changes nothing

    response = client.post(url(job), {"pin": "tag"})
    release = Release.objects.get(app=sample_app, sequence=2)
    assert response.status_code == 302
    assert response.url == reverse("releases-release-edit", args=["mysampleecrapp", 2]) + "?file=deployment.yaml"
    assert deployment(release) == NGINX_DEPLOYMENT.replace(
        "image: nginx\n", f"image: {ECR}/demo-apps/nginx:latest\n")
    assert release.is_draft and release.created_by == bob
    assert deployment(Release.objects.get(app=sample_app, sequence=1)) == NGINX_DEPLOYMENT  # frozen
    event = AuditEvent.objects.get(action="update", object_type="release", object_id=str(release.pk))
    assert event.actor == bob and event.detail["mirror_job"] == job.pk
    assert event.detail["from"] == NGINX and event.detail["new_draft_from"] == 1
    page = client.get(response.url)
    assert "Release 2 (a new draft from release 1) now uses" in page.content.decode()


def test_a_draft_is_changed_in_place_and_digest_pinning_works(client, bob, alice, sample_app, job):
    draft = Release.create_next(app=sample_app, user=alice, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
    login(client, bob)
    assert "Draft release 2 is changed in place" in client.get(url(job), {"pin": "digest"}).content.decode()
    client.post(url(job), {"pin": "digest"})
    assert Release.objects.filter(app=sample_app).count() == 2
    assert f"image: {ECR}/demo-apps/nginx@{DIGEST}\n" in deployment(draft)
    # Again: nothing left to change.
    response = client.post(url(job), {"pin": "digest"}, follow=True)
    assert "Nothing changed" in response.content.decode()
    assert AuditEvent.objects.filter(action="update", object_type="release").count() == 1


def test_an_unfinished_mirror_cannot_be_used(client, bob, sample_app, job):
    MirrorJob.objects.filter(pk=job.pk).update(status="running", result_digest="")
    login(client, bob)
    response = client.post(url(job))
    assert response.status_code == 200 and "has not finished copying" in response.content.decode()
    assert Release.objects.filter(app=sample_app).count() == 1


def test_the_pick_page_lists_the_apps_using_the_source(client, bob, sample_app, job):
    login(client, bob)
    response = client.get(reverse("releases-use-mirror-pick", args=[job.pk]))
    assert url(job).encode() in response.content and b"deployment.yaml" in response.content


def test_support_gets_403_and_other_teams_404(client, sam, mallory, sample_app, job):
    login(client, sam)
    assert client.get(url(job)).status_code == 403
    assert client.post(url(job)).status_code == 403
    assert client.get(reverse("releases-use-mirror-pick", args=[job.pk])).status_code == 403
    login(client, mallory)
    assert client.get(url(job)).status_code == 404
    assert client.post(url(job)).status_code == 404
    assert client.get(reverse("releases-use-mirror-pick", args=[job.pk])).status_code == 404
    assert Release.objects.filter(app=sample_app).count() == 1


def test_release_pages_link_each_image_to_the_mirror_form_for_developers(client, bob, sam, sample_app):
    link = reverse("registries-mirror-new") + "?source=nginx&amp;app=mysampleecrapp"
    detail = reverse("releases-release-detail", args=["mysampleecrapp", 1])
    login(client, bob)
    assert link in client.get(detail).content.decode()
    client.post(reverse("releases-release-new", args=["mysampleecrapp"]))
    editor = client.get(reverse("releases-release-edit", args=["mysampleecrapp", 2]))
    assert link in editor.content.decode()
    login(client, sam)
    assert "Mirror image" not in client.get(detail).content.decode()
