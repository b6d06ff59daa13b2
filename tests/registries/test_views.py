"""The registries pages for every persona: alice (admin) and bob (developer) manage, sam (support)
reads, mallory (another team) gets 404."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from portal.models import AuditEvent
from registries.models import ExternalRegistry, Provider, Status
from releases.models import Release
from tests.conftest import login
from tests.registries.product_helpers import make_registry

pytestmark = pytest.mark.django_db

ECR = "123456789012.dkr.ecr.us-east-2.amazonaws.com"
SECRET = "very-secret-value-42"

IMAGE_DEPLOYMENT = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  template:
    spec:
      initContainers: [{{name: init, image: "{ECR}/demo-apps/migrate:1.0"}}]
      containers:
        - name: api
          image: {ECR}/demo-apps/api:2.1
        - name: sidecar
          image: nginx:1.27
"""


@pytest.fixture
def ecr_registry_row(team):
    return make_registry(team, provider=Provider.ECR, endpoint=ECR, username="AKIAEXAMPLE", secret=SECRET,
                         status=Status.CONNECTED)


def add_data(**extra):
    return {"provider": "ecr", "endpoint": ECR, "username": "AKIAEXAMPLE", "password": SECRET,
            "skip_validation": "on", **extra}


@pytest.mark.parametrize("persona", ["alice", "bob"])
def test_developers_and_admins_add_registries(client, request, persona):
    user = request.getfixturevalue(persona)
    login(client, user)
    page = client.get("/registries/").content.decode()
    assert "Add External Registry" in page
    response = client.post("/registries/add/", add_data())
    assert response.status_code == 302
    registry = ExternalRegistry.objects.get()
    assert registry.team == user.membership.team
    assert registry.secret == SECRET and SECRET not in registry.secret_encrypted
    event = AuditEvent.objects.get(action="create")
    assert event.actor == user and event.detail["endpoint"] == ECR
    assert SECRET not in json.dumps(event.detail)


def test_support_sees_the_list_and_statuses_but_cannot_manage(client, sam, ecr_registry_row):
    login(client, sam)
    page = client.get("/registries/").content.decode()
    assert ECR in page and "Connected" in page
    assert "Add External Registry" not in page
    detail = client.get(f"/registries/{ecr_registry_row.pk}/").content.decode()
    assert "Connected" in detail and "Edit" not in detail
    assert SECRET not in page + detail
    pk = ecr_registry_row.pk
    for url in ("/registries/add/", f"/registries/{pk}/edit/", f"/registries/{pk}/test/", f"/registries/{pk}/delete/"):
        assert client.get(url).status_code == 403
        assert client.post(url, add_data()).status_code == 403
    assert ExternalRegistry.objects.count() == 1


def test_another_team_gets_404(client, mallory, ecr_registry_row):
    login(client, mallory)
    assert ECR not in client.get("/registries/").content.decode()
    pk = ecr_registry_row.pk
    for url in (f"/registries/{pk}/", f"/registries/{pk}/edit/", f"/registries/{pk}/test/",
                f"/registries/{pk}/delete/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/registries/{pk}/delete/").status_code == 404
    assert ExternalRegistry.objects.filter(pk=pk).exists()


def test_anonymous_users_are_sent_to_login(client):
    response = client.get("/registries/")
    assert response.status_code == 302 and "login" in response.url


def test_the_password_input_is_always_empty(client, alice, ecr_registry_row):
    login(client, alice)
    page = client.get(f"/registries/{ecr_registry_row.pk}/edit/").content.decode()
    assert 'name="password"' in page and SECRET not in page
    assert "Leave blank to keep the stored one" in page


def test_edit_keeps_the_password_and_audits_what_changed(client, bob, ecr_registry_row):
    login(client, bob)
    data = add_data(password="", test_image="demo-apps/nginx:latest")
    data.pop("skip_validation")
    response = client.post(f"/registries/{ecr_registry_row.pk}/edit/", data)
    assert response.status_code == 302
    ecr_registry_row.refresh_from_db()
    assert ecr_registry_row.secret == SECRET
    assert ecr_registry_row.test_image == "demo-apps/nginx:latest"
    assert ecr_registry_row.status == Status.VALIDATING
    event = AuditEvent.objects.get(action="update")
    assert event.detail["changed"] == ["test_image"]


def test_test_queues_a_validation_with_the_image(client, alice, ecr_registry_row):
    login(client, alice)
    assert 'name="image"' in client.get(f"/registries/{ecr_registry_row.pk}/test/").content.decode()
    response = client.post(f"/registries/{ecr_registry_row.pk}/test/", {"image": "demo-apps/nginx:1.0"})
    assert response.status_code == 302
    ecr_registry_row.refresh_from_db()
    assert ecr_registry_row.status == Status.VALIDATING
    assert AuditEvent.objects.get(action="test").detail["image"] == "demo-apps/nginx:1.0"
    bad = client.post(f"/registries/{ecr_registry_row.pk}/test/", {"image": "Bad Image"})
    assert bad.status_code == 400 and "Bad Image" in bad.content.decode()


def test_delete_asks_for_confirmation_and_warns_about_promoted_releases(client, alice, sample_app,
                                                                        ecr_registry_row):
    release = Release.create_next(app=sample_app, user=alice, files=[("api.yaml", IMAGE_DEPLOYMENT)])
    release.promote_to(sample_app.channels.get(name="Stable"), user=alice, version_label="1.0.0")
    login(client, alice)
    page = client.get(f"/registries/{ecr_registry_row.pk}/delete/").content.decode()
    assert "Promoted releases use images from this registry" in page
    assert f"{ECR}/demo-apps/api:2.1" in page
    assert ExternalRegistry.objects.filter(pk=ecr_registry_row.pk).exists()
    response = client.post(f"/registries/{ecr_registry_row.pk}/delete/")
    assert response.status_code == 302
    assert not ExternalRegistry.objects.exists()
    assert AuditEvent.objects.get(action="delete").detail["endpoint"] == ECR


def test_delete_without_promoted_uses_says_so(client, alice, sample_app, ecr_registry_row):
    Release.create_next(app=sample_app, user=alice, files=[("api.yaml", IMAGE_DEPLOYMENT)])  # a draft
    login(client, alice)
    page = client.get(f"/registries/{ecr_registry_row.pk}/delete/").content.decode()
    assert "No promoted release uses images from this registry" in page


def test_detail_shows_a_valid_least_privilege_policy(client, sam, alice, sample_app, ecr_registry_row):
    Release.create_next(app=sample_app, user=alice, files=[("api.yaml", IMAGE_DEPLOYMENT)])
    login(client, sam)
    response = client.get(f"/registries/{ecr_registry_row.pk}/")
    policy = json.loads(response.context["policy_json"])
    pull, token = policy["Statement"]
    assert sorted(pull["Resource"]) == [
        "arn:aws:ecr:us-east-2:123456789012:repository/demo-apps/api",
        "arn:aws:ecr:us-east-2:123456789012:repository/demo-apps/migrate",
    ]
    assert "ecr:BatchGetImage" in pull["Action"] and "ecr:PutImage" not in pull["Action"]
    assert token == {"Sid": "GetRegistryToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken",
                     "Resource": "*"}
    assert "Copy policy" in response.content.decode()


def test_detail_policy_covers_the_account_when_no_release_uses_it(client, alice, ecr_registry_row):
    login(client, alice)
    policy = json.loads(client.get(f"/registries/{ecr_registry_row.pk}/").context["policy_json"])
    assert policy["Statement"][0]["Resource"] == "arn:aws:ecr:us-east-2:123456789012:repository/*"


def test_list_polls_while_validating_and_stops_when_done(client, alice, team):
    registry = make_registry(team, status=Status.VALIDATING)
    login(client, alice)
    page = client.get("/registries/").content.decode()
    assert 'hx-trigger="every 500ms"' in page
    fragment = client.get("/registries/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode() and "Validating" in fragment.content.decode()
    registry.mark_result(ok=False, message="Nope, fix it.", revision=registry.revision)
    final = client.get("/registries/", HTTP_HX_REQUEST="true")
    assert final.status_code == 286
    body = final.content.decode()
    assert "Failed" in body and "Nope, fix it." in body and "hx-trigger" not in body


@pytest.mark.parametrize(("validating_for", "interval"), [
    (0, "150ms"), (1.5, "150ms"), (3, "500ms"), (29, "500ms"), (30, "2s"), (600, "2s")])
def test_the_poll_is_short_while_a_validation_is_young_and_backs_off(client, alice, team,
                                                                      validating_for, interval):
    """A validation takes well under a second: poll fast then, and back off if it does not end."""
    queued_at = timezone.now() - dt.timedelta(seconds=validating_for)
    registry = make_registry(team, status=Status.VALIDATING, queued_at=queued_at)
    login(client, alice)
    for url in ("/registries/", f"/registries/{registry.pk}/"):
        assert f'hx-trigger="every {interval}"' in client.get(url).content.decode()
        fragment = client.get(url, HTTP_HX_REQUEST="true")
        assert fragment.status_code == 200
        assert f'hx-trigger="every {interval}"' in fragment.content.decode()


def test_the_list_polls_at_the_pace_of_its_youngest_validation(client, alice, team):
    now = timezone.now()
    make_registry(team, endpoint="old.example.com", status=Status.VALIDATING,
                  queued_at=now - dt.timedelta(minutes=5))
    make_registry(team, endpoint="new.example.com", status=Status.VALIDATING, queued_at=now)
    make_registry(team, endpoint="done.example.com", status=Status.CONNECTED, queued_at=now)
    login(client, alice)
    assert 'hx-trigger="every 150ms"' in client.get("/registries/").content.decode()


def test_detail_polls_its_status_panel(client, alice, team):
    registry = make_registry(team, status=Status.PENDING, status_message="queued")
    login(client, alice)
    assert client.get(f"/registries/{registry.pk}/", HTTP_HX_REQUEST="true").status_code == 200
    registry.mark_result(ok=True, message="Works.", revision=registry.revision)
    response = client.get(f"/registries/{registry.pk}/", HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and "Connected" in response.content.decode()


def test_list_shows_provider_endpoint_name_and_times(client, alice, team):
    make_registry(team, provider=Provider.QUAY, endpoint="quay.io", name="quay-main")
    login(client, alice)
    page = client.get("/registries/").content.decode()
    assert "Quay" in page and "quay.io" in page and "quay-main" in page and "Never" in page
