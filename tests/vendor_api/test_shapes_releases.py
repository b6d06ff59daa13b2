"""Apps, channels and releases answer Replicated's client in its own shapes.

Each route gets the request body Replicated's client sends (fixtures/app.json, channel.json,
release.json, transcribed from its Go types) and must answer with Replicated's keys, each with
the same JSON type. And a promotion the image checks stop is refused in the API's own terms.
"""

import base64
import gzip
import json
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from portal.models import Role
from releases.image_check.models import ImageVerdict, Verdict
from tests.conftest import NGINX_DEPLOYMENT, NGINX_SERVICE
from tests.vendor_api.conftest import make_token
from tests.vendor_api.shapes import assert_shape, expand, replicated
from vendor_api import releases as release_routes

pytestmark = pytest.mark.django_db


@pytest.fixture
def dev_token(bob):
    return make_token(bob, role=Role.DEVELOPER)


@pytest.fixture
def nginx_checked(sample_app):
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.PUBLIC, "checked_at": timezone.now()})


def check(response, fixture: dict, name: str, status: int = 200) -> dict:
    """``response`` has the status and the shape of Replicated's ``<name>_response``."""
    assert response.status_code == fixture.get(f"{name}_status", status), response.content
    body = response.json()
    assert_shape(body, expand(fixture, fixture[f"{name}_response"]), nullable=fixture.get("nullable", ()))
    return body


def spec_gzip(files) -> str:
    """The body's ``spec_gzip`` as Replicated's client builds it from a ``--yaml-dir``."""
    spec = [{"name": name, "path": name, "content": content, "children": []} for name, content in files]
    return base64.b64encode(gzip.compress(json.dumps(spec).encode())).decode()


NGINX = [("deployment.yaml", NGINX_DEPLOYMENT), ("service.yaml", NGINX_SERVICE)]


# --- apps ------------------------------------------------------------------------------------


def test_list_apps_answers_replicateds_apps_with_their_channels(api, dev_token, sample_app):
    shape = replicated("app")
    body = check(api.get(f"/apps?{urlencode(shape['list_query'])}", dev_token), shape, "list")
    channels = {c["name"]: c for c in body["apps"][0]["channels"]}
    assert channels["Unstable"]["releaseLabel"] == "0.0.1" and channels["Unstable"]["releaseSequence"] == 1


def test_create_app_takes_replicateds_request(api, admin_token, team):
    shape = replicated("app")
    body = check(api.post("/app", admin_token, shape["create_request"]), shape, "create")
    assert body["app"]["name"] == "My Sample App"
    assert [c["name"] for c in body["app"]["channels"]] == ["Stable", "Beta", "Unstable"]


# --- channels --------------------------------------------------------------------------------


def test_list_channels_takes_replicateds_query(api, dev_token, sample_app):
    shape = replicated("channel")
    response = api.get(f"/app/{sample_app.pk}/channels?{urlencode(shape['list_query'])}", dev_token)
    body = check(response, shape, "list")
    assert [c["name"] for c in body["channels"]] == ["Unstable"]
    assert body["channels"][0]["currentVersion"] == "0.0.1"


def test_create_and_get_a_channel_as_replicateds_client_does(api, dev_token, sample_app):
    shape = replicated("channel")
    body = check(api.post(f"/app/{sample_app.pk}/channel", dev_token, shape["create_request"]), shape, "create")
    assert body["channel"]["name"] == "Nightly"
    check(api.get(f"/app/{sample_app.pk}/channel/{body['channel']['id']}", dev_token), shape, "get")


def test_demote_answers_replicateds_channel_release(api, dev_token, sample_app):
    shape = replicated("channel")
    unstable = sample_app.channels.get(name="Unstable")
    body = check(api.post(f"/app/{sample_app.pk}/channel/{unstable.pk}/release/1/demote", dev_token), shape, "demote")
    assert body["release"]["isDemoted"] is True and body["release"]["demotedAt"]


# --- releases --------------------------------------------------------------------------------


def test_create_release_takes_replicateds_spec_gzip_with_children(api, dev_token, sample_app):
    shape = replicated("release")
    assert set(shape["spec"][0]) == {"name", "path", "content", "children"}
    body = check(api.post(f"/app/{sample_app.pk}/release", dev_token, {"spec_gzip": spec_gzip(NGINX)}),
                 shape, "create")
    assert body["release"]["sequence"] == 2 and body["release"]["isReleaseNotEditable"] is False
    assert [f["path"] for f in json.loads(body["release"]["spec"])] == ["deployment.yaml", "service.yaml"]


def test_update_release_takes_replicateds_spec_gzip(api, dev_token, sample_app):
    shape = replicated("release")
    api.post(f"/app/{sample_app.pk}/release", dev_token, {"spec_gzip": spec_gzip(NGINX)})
    response = api.put(f"/app/{sample_app.pk}/release/2", dev_token, {"spec_gzip": spec_gzip(NGINX[:1])})
    check(response, shape, "get", status=shape["update_status"])
    assert sample_app.releases.get(sequence=2).files.count() == 1


def test_list_and_get_releases_answer_replicateds_kots_app_release(api, dev_token, sample_app):
    shape = replicated("release")
    body = check(api.get(f"/app/{sample_app.pk}/releases?{urlencode(shape['list_query'])}", dev_token), shape, "list")
    assert body["releases"][0]["channels"][0]["releaseLabel"] == "0.0.1"
    body = check(api.get(f"/app/{sample_app.pk}/release/1", dev_token), shape, "get")
    unstable = body["release"]["channels"][0]
    assert unstable["name"] == "Unstable" and unstable["releaseSequence"] == 1 and unstable["channelSequence"] == 1


def test_promote_takes_replicateds_request_and_answers_its_response(api, dev_token, sample_app, nginx_checked):
    shape = replicated("release")
    api.post(f"/app/{sample_app.pk}/release", dev_token, {"spec_gzip": spec_gzip(NGINX)})
    unstable = sample_app.channels.get(name="Unstable")
    request = {**shape["promote_request"], "channelIds": [str(unstable.pk)]}
    body = check(api.post(f"/app/{sample_app.pk}/release/2/promote", dev_token, request), shape, "promote")
    assert body["airgapBuilds"] == []
    promoted = body["release"]["channels"][0]
    assert promoted["releaseLabel"] == "1.2.3" and promoted["channelSequence"] == 2
    assert promoted["releaseSequence"] == 2


# --- promotion refusals in the API's terms ---------------------------------------------------


def _promote(api, token, app):
    return api.post(f"/app/{app.slug}/release/2/promote", token, {"channelIds": ["unstable"], "versionLabel": "1.0.0"})


def test_failing_images_are_refused_with_set_promote_anyway(api, dev_token, sample_app):
    api.post(f"/app/{sample_app.slug}/release", dev_token, {"spec_gzip": spec_gzip(NGINX)})
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.UNLINKED, "checked_at": timezone.now()})
    response = _promote(api, dev_token, sample_app)
    assert response.status_code == 400, response.content
    body = response.json()
    text = body["message"] + " ".join(body["errors"]["promoteAnyway"])
    assert "set promoteAnyway" in text
    assert "Tick" not in text and "shown above" not in text


def test_running_checks_are_refused_with_set_promote_anyway(api, dev_token, sample_app, monkeypatch):
    monkeypatch.setattr(release_routes, "PROMOTE_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(release_routes, "PROMOTE_POLL_SECONDS", 0.1)
    api.post(f"/app/{sample_app.slug}/release", dev_token, {"spec_gzip": spec_gzip(NGINX)})
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.CHECKING, "checked_at": None, "queued_at": timezone.now()})
    response = _promote(api, dev_token, sample_app)
    assert response.status_code == 400, response.content
    body = response.json()
    text = body["message"] + " ".join(body["errors"]["promoteAnyway"])
    assert "still running" in text and "set promoteAnyway" in text
    assert "tick" not in text.lower() and "shown above" not in text
