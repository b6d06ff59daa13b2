"""The update check the admin console calls: /release/<slug>/pending and /release/<slug>."""

import base64
import io
import logging
import tarfile
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from releases.models import App, Customer, Release
from tests.conftest import NGINX_DEPLOYMENT

PENDING = "/release/mysampleecrapp/pending"
DOWNLOAD = "/release/mysampleecrapp"


def basic(username, password=None):
    password = username if password is None else password
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def unstable(sample_app):
    return sample_app.channels.get(name="Unstable")


def promote(app, channel, alice, label, *, files=None, notes="", required=False):
    release = Release.create_next(app=app, user=alice, files=files or [("deployment.yaml", NGINX_DEPLOYMENT)])
    return release.promote_to(channel, user=alice, version_label=label, release_notes=notes, is_required=required)


def test_it_lists_the_channel_releases_newer_than_the_sequence(client, customer, unstable, alice):
    second = promote(customer.app, unstable, alice, "0.0.2", notes="Faster.", required=True)
    demoted = promote(customer.app, unstable, alice, "0.0.3-bad")
    demoted.demote(user=alice)
    promote(customer.app, unstable, alice, "0.0.4")
    promote(customer.app, customer.app.channels.get(name="Stable"), alice, "1.0.0")  # another channel

    response = client.get(PENDING, **basic(customer.license_id))
    assert response.status_code == 200
    releases = response.json()["channelReleases"]
    assert [r["versionLabel"] for r in releases] == ["0.0.1", "0.0.2", "0.0.4"]
    assert [r["channelSequence"] for r in releases] == [1, 2, 4]

    response = client.get(PENDING, {"channelSequence": "1"}, **basic(customer.license_id))
    (first, later) = response.json()["channelReleases"]
    assert first == {
        "channelSequence": 2,
        "releaseSequence": second.release.sequence,
        "versionLabel": "0.0.2",
        "isRequired": True,
        "createdAt": second.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "releaseNotes": "Faster.",
    }
    assert later["versionLabel"] == "0.0.4"

    response = client.get(PENDING, {"channelSequence": "4"}, **basic(customer.license_id))
    assert response.json() == {"channelReleases": []}


def test_created_at_is_rfc3339_utc(client, customer):
    promotion = customer.channel.promotions.get()
    (release,) = client.get(PENDING, **basic(customer.license_id)).json()["channelReleases"]
    assert release["createdAt"] == promotion.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_bad_sequence_is_a_400(client, customer):
    response = client.get(PENDING, {"channelSequence": "-1"}, **basic(customer.license_id))
    assert response.status_code == 400
    assert "channelSequence" in response.json()["error"]


@pytest.mark.parametrize("headers", [
    {},
    basic("not-a-license"),
    {"HTTP_AUTHORIZATION": "Bearer abc"},
    {"HTTP_AUTHORIZATION": "Basic !!!"},
])
def test_an_unknown_license_gets_a_401_with_a_basic_challenge(client, customer, headers):
    for url in (PENDING, DOWNLOAD):
        response = client.get(url, **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Basic ")
        assert response.json()["error"]


def test_username_and_password_must_both_be_the_license_id(client, customer):
    response = client.get(PENDING, **basic(customer.license_id, "something-else"))
    assert response.status_code == 401


def test_an_archived_license_gets_a_403(client, customer):
    customer.archived_at = timezone.now()
    customer.save()
    response = client.get(PENDING, **basic(customer.license_id))
    assert response.status_code == 403
    assert "archived" in response.json()["error"]


def test_an_expired_license_gets_a_403(client, customer):
    customer.expires_at = timezone.now() - timedelta(minutes=1)
    customer.save()
    for url in (PENDING, DOWNLOAD):
        response = client.get(url, **basic(customer.license_id))
        assert response.status_code == 403
        assert "expired" in response.json()["error"]


def test_another_apps_slug_gets_a_403(client, customer, team, alice):
    other = App.create_with_channels(team=team, name="Other", slug="other")
    for url in ("/release/other/pending", "/release/other"):
        response = client.get(url, **basic(customer.license_id))
        assert response.status_code == 403
        assert response.json() == {"error": "This license is not for this application."}
    assert other.pk


def test_an_archived_app_gets_a_403(client, customer):
    App.objects.filter(pk=customer.app.pk).update(archived_at=timezone.now())
    assert client.get(PENDING, **basic(customer.license_id)).status_code == 403


def test_it_downloads_a_release_as_tar_gz(client, customer, unstable, alice):
    promote(customer.app, unstable, alice, "0.0.2", files=[("app.yaml", "kind: ConfigMap\n")])
    response = client.get(DOWNLOAD, {"channelSequence": "1"}, **basic(customer.license_id))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["deployment.yaml", "service.yaml"]
        assert tar.extractfile("deployment.yaml").read().decode() == NGINX_DEPLOYMENT

    newest = client.get(DOWNLOAD, **basic(customer.license_id))
    with tarfile.open(fileobj=io.BytesIO(newest.content), mode="r:gz") as tar:
        assert tar.getnames() == ["app.yaml"]


def test_a_demoted_or_unknown_release_is_a_404(client, customer, unstable, alice):
    promotion = promote(customer.app, unstable, alice, "0.0.2")
    promotion.demote(user=alice)
    for sequence in ("2", "99"):
        response = client.get(DOWNLOAD, {"channelSequence": sequence}, **basic(customer.license_id))
        assert response.status_code == 404
        assert response.json()["error"]


def test_the_update_check_needs_no_csrf_token_and_only_gets(customer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.get(PENDING, **basic(customer.license_id)).status_code == 200
    assert client.post(PENDING, **basic(customer.license_id)).status_code == 405


def test_the_license_id_is_never_logged(client, customer, caplog):
    caplog.set_level(logging.DEBUG)
    client.get(PENDING, **basic(customer.license_id))
    client.get(PENDING, **basic(customer.license_id + "x"))
    customer.archived_at = timezone.now()
    customer.save()
    client.get(PENDING, **basic(customer.license_id))
    assert customer.license_id not in caplog.text
    assert Customer.objects.count() == 1


def test_wrong_license_ids_are_throttled_per_address_while_a_valid_one_still_works(client, customer, settings):
    settings.PORTAL_PROXY_AUTH_FAILURE_LIMIT = 3
    for _ in range(3):
        assert client.get(PENDING, **basic("0" * 40)).status_code == 401
    refused = client.get(PENDING, **basic("0" * 40))
    assert refused.status_code == 429
    assert "Too many failed attempts with a license ID from this address: try again in 5 minutes." == refused.json()["error"]
    assert 0 < int(refused["Retry-After"]) <= 300
    assert client.get(DOWNLOAD, **basic("1" * 40)).status_code == 429  # downloads count too
    # Many installs share one outbound address: a valid license is not locked out by the others.
    assert client.get(PENDING, **basic(customer.license_id)).status_code == 200
    assert client.get(DOWNLOAD, **basic(customer.license_id)).status_code == 200
    # Another address is not affected.
    assert client.get(PENDING, REMOTE_ADDR="10.0.0.2", **basic("0" * 40)).status_code == 401
