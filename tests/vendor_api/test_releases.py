"""Release routes: create from a spec, list, get, update a draft, promote, demote."""

import base64
import gzip
import json

import pytest
from django.utils import timezone

from portal.models import AuditEvent, Role
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import Promotion, Release
from tests.conftest import NGINX_DEPLOYMENT, NGINX_SERVICE
from vendor_api import releases as release_routes

from .conftest import make_token

SPEC = [{"name": "deployment.yaml", "path": "deployment.yaml", "content": NGINX_DEPLOYMENT},
        {"name": "service.yaml", "path": "service.yaml", "content": NGINX_SERVICE}]


@pytest.fixture
def dev_token(bob):
    return make_token(bob, role=Role.DEVELOPER)


@pytest.fixture
def nginx_checked(sample_app):
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.PUBLIC, "checked_at": timezone.now()})


def test_it_creates_a_release_from_a_spec_string(api, dev_token, sample_app):
    response = api.post("/app/mysampleecrapp/release", dev_token, {"spec": json.dumps(SPEC)})
    assert response.status_code == 201, response.content
    release = response.json()["release"]
    assert release["sequence"] == 2 and release["isReleaseNotEditable"] is False
    assert [f["name"] for f in json.loads(release["spec"])] == ["deployment.yaml", "service.yaml"]
    assert sample_app.releases.get(sequence=2).files.count() == 2
    assert AuditEvent.objects.filter(action="create", object_type="release").get().actor_name == "token ci"


def test_it_creates_a_release_from_spec_gzip_as_replicateds_cli_sends(api, dev_token, sample_app):
    packed = base64.b64encode(gzip.compress(json.dumps(SPEC).encode())).decode()
    response = api.post("/app/mysampleecrapp/release", dev_token, {"spec_gzip": packed})
    assert response.status_code == 201, response.content


def test_it_refuses_bad_yaml_with_line_and_column(api, dev_token, sample_app):
    spec = [{"name": "deployment.yaml", "content": "kind: Deployment\nmetadata: [\n"}]
    response = api.post("/app/mysampleecrapp/release", dev_token, {"spec": spec})
    assert response.status_code == 400
    body = response.json()
    assert "need" in body["message"]
    problems = " ".join(body["errors"]["deployment.yaml"])
    assert "Line 3, column 1" in problems or "line" in problems.lower()
    assert sample_app.releases.count() == 1


def test_it_refuses_a_bad_file_name_with_the_editors_text(api, dev_token, sample_app):
    response = api.post("/app/mysampleecrapp/release", dev_token, {"spec": [{"name": "../x.txt", "content": ""}]})
    assert response.status_code == 400
    assert "../x.txt.name" in response.json()["errors"]


def test_it_lists_releases_newest_first_with_constant_queries(api, dev_token, sample_app, bob,
                                                            django_assert_max_num_queries):
    for _ in range(3):
        Release.create_next(app=sample_app, user=bob, files=[("a.yaml", "a: 1\n")])
    api.get("/apps", dev_token)  # the token's last use is written once a minute: not in the count
    with django_assert_max_num_queries(8):
        body = api.get("/app/mysampleecrapp/releases?pageSize=2", dev_token).json()
    assert [r["sequence"] for r in body["releases"]] == [4, 3] and body["totalCount"] == 4
    assert body["releases"][0]["spec"] == ""
    for _ in range(10):
        Release.create_next(app=sample_app, user=bob, files=[("a.yaml", "a: 1\n")])
    with django_assert_max_num_queries(8):
        body = api.get("/app/mysampleecrapp/releases?pageSize=20&currentPage=0", dev_token).json()
    assert len(body["releases"]) == 14
    first = next(r for r in body["releases"] if r["sequence"] == 1)
    assert first["channels"][0]["name"] == "Unstable" and first["channels"][0]["releaseLabel"] == "0.0.1"


def test_it_updates_a_draft_and_refuses_a_promoted_release(api, dev_token, sample_app, bob):
    Release.create_next(app=sample_app, user=bob, files=[("a.yaml", "a: 1\n")])
    response = api.put("/app/mysampleecrapp/release/2", dev_token, {"spec": SPEC})
    assert response.status_code == 200, response.content
    assert sorted(sample_app.releases.get(sequence=2).files.values_list("name", flat=True)) == [
        "deployment.yaml", "service.yaml"]
    response = api.put("/app/mysampleecrapp/release/1", dev_token, {"spec": SPEC})
    assert response.status_code == 409 and "frozen" in response.json()["message"]


def test_it_promotes_with_label_notes_and_required(api, dev_token, sample_app, nginx_checked):
    api.post("/app/mysampleecrapp/release", dev_token, {"spec": SPEC})
    unstable = sample_app.channels.get(slug="unstable")
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, {
        "channelIds": [str(unstable.pk), "beta"], "versionLabel": "1.2.3", "releaseNotes": "From CI",
        "isRequired": True})
    assert response.status_code == 200, response.content
    channels = {c["name"]: c for c in response.json()["release"]["channels"]}
    assert channels["Unstable"]["channelSequence"] == 2 and channels["Beta"]["channelSequence"] == 1
    promotion = Promotion.objects.get(channel=unstable, channel_sequence=2)
    assert promotion.version_label == "1.2.3" and promotion.is_required and promotion.release_notes == "From CI"


def test_promote_refuses_a_missing_label_with_the_forms_text(api, dev_token, sample_app, nginx_checked):
    api.post("/app/mysampleecrapp/release", dev_token, {"spec": SPEC})
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, {"channelIds": ["unstable"]})
    assert response.status_code == 400
    assert response.json()["errors"]["versionLabel"] == ["Enter a version label, such as 1.0.1."]


def test_promote_needs_promote_anyway_for_failing_images(api, dev_token, sample_app):
    api.post("/app/mysampleecrapp/release", dev_token, {"spec": SPEC})
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.UNLINKED, "checked_at": timezone.now()})
    body = {"channelIds": ["unstable"], "versionLabel": "1.0.0"}
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, body)
    assert response.status_code == 400, response.content
    assert "set promoteAnyway" in response.json()["errors"]["promoteAnyway"][0]
    assert response.json()["errors"]["images"] == ["docker.io/library/nginx:latest"]
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, {**body, "promoteAnyway": True})
    assert response.status_code == 200, response.content


def test_promote_waits_for_running_checks_then_refuses(api, dev_token, sample_app, monkeypatch):
    monkeypatch.setattr(release_routes, "PROMOTE_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(release_routes, "PROMOTE_POLL_SECONDS", 0.1)
    api.post("/app/mysampleecrapp/release", dev_token, {"spec": SPEC})
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.CHECKING, "checked_at": None, "queued_at": timezone.now()})
    body = {"channelIds": ["unstable"], "versionLabel": "1.0.0"}
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, body)
    assert response.status_code == 400, response.content
    assert "still running" in response.json()["errors"]["promoteAnyway"][0]
    response = api.post("/app/mysampleecrapp/release/2/promote", dev_token, {**body, "promoteAnyway": True})
    assert response.status_code == 200, response.content


def test_it_demotes_a_channel_release(api, dev_token, sample_app):
    response = api.post("/app/mysampleecrapp/channel/unstable/release/1/demote", dev_token)
    assert response.status_code == 200, response.content
    assert response.json()["release"]["isDemoted"] is True
    assert Promotion.objects.get(channel__slug="unstable", channel_sequence=1).is_demoted


def test_the_support_role_reads_but_cannot_create(api, sam, sample_app):
    token = make_token(sam, role=Role.SUPPORT)
    assert api.get("/app/mysampleecrapp/releases", token).status_code == 200
    response = api.post("/app/mysampleecrapp/release", token, {"spec": SPEC})
    assert response.status_code == 403 and "role" in response.json()["message"]
