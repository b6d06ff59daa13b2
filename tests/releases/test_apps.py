"""Apps list, create app (slug rules), app overview, channels, archive."""

import pytest

from portal.models import AuditEvent
from releases.models import App, Channel, Release
from tests.conftest import login


def test_the_list_shows_apps_with_their_channels_and_current_versions(client, alice, sample_app):
    content = login(client, alice).get("/apps/").content.decode()
    assert "MySampleECRApp" in content
    assert "Stable" in content and "Beta" in content and "Unstable" in content
    assert "0.0.1" in content
    assert "Create app" in content


def test_the_list_hides_other_teams_and_archived_apps(client, mallory, alice, sample_app, team):
    archived = App.create_with_channels(team=team, name="Old", slug="old")
    archived.archived_at = archived.created_at
    archived.save()
    assert b"MySampleECRApp" not in login(client, mallory).get("/apps/").content
    assert b">Old<" not in login(client, alice).get("/apps/").content


def test_creating_an_app_derives_the_slug_and_adds_three_channels(client, bob, team):
    response = login(client, bob).post("/apps/new/", {"name": "My Sample ECR App", "slug": ""})
    app = App.objects.get(team=team)
    assert response.status_code == 302 and response["Location"] == "/apps/my-sample-ecr-app/"
    assert app.slug == "my-sample-ecr-app"
    assert list(app.channels.values_list("name", flat=True)) == ["Stable", "Beta", "Unstable"]
    assert AuditEvent.objects.filter(action="create", object_type="app", actor_name="bob").exists()


def test_the_slug_can_be_chosen_at_creation(client, alice, team):
    login(client, alice).post("/apps/new/", {"name": "MySampleECRApp", "slug": "mysampleecrapp"})
    assert App.objects.get(team=team).slug == "mysampleecrapp"


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("My App", "lowercase letters, digits and single hyphens"),
        ("my_app", "lowercase letters, digits and single hyphens"),
        ("-app", "lowercase letters, digits and single hyphens"),
        ("a--b", "lowercase letters, digits and single hyphens"),
        ("new", "reserved"),
        ("mysampleecrapp", "already has an app"),
    ],
)
def test_it_rejects_bad_or_taken_slugs_and_keeps_the_input(client, alice, sample_app, slug, message):
    response = login(client, alice).post("/apps/new/", {"name": "Typed name", "slug": slug})
    content = response.content.decode()
    assert response.status_code == 400
    assert message in content
    assert 'value="Typed name"' in content
    assert App.objects.count() == 1


def test_it_rejects_an_empty_name(client, alice, team):
    response = login(client, alice).post("/apps/new/", {"name": "  ", "slug": ""})
    assert b"Enter a name" in response.content or b"This field is required" in response.content
    assert not App.objects.exists()


def test_the_same_slug_is_fine_in_another_team(client, mallory, sample_app):
    login(client, mallory).post("/apps/new/", {"name": "MySampleECRApp", "slug": ""})
    assert App.objects.filter(slug="mysampleecrapp").count() == 2


def test_the_slug_preview_answers_htmx_with_a_fragment(client, alice, team):
    response = login(client, alice).get(
        "/apps/new/", {"name": "Hello World 2"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="slug-preview"
    )
    assert b"hello-world-2" in response.content and b"<html" not in response.content


def test_the_overview_shows_channels_current_release_and_latest_releases(client, sam, sample_app):
    content = login(client, sam).get("/apps/mysampleecrapp/").content.decode()
    assert "Unstable" in content and "0.0.1" in content and "Release 1" in content
    assert "Create new release" not in content and "Archive" not in content  # Support changes nothing


def test_the_overview_offers_a_new_release_once_promoted_and_edit_while_a_draft(client, bob, sample_app):
    login(client, bob)
    assert "Create new release" in client.get("/apps/mysampleecrapp/").content.decode()
    Release.create_next(app=sample_app, user=bob, files=[])
    assert "Edit release 2" in client.get("/apps/mysampleecrapp/").content.decode()


def test_the_slug_is_fixed_once_a_release_is_promoted(sample_app, team):
    assert sample_app.slug_is_fixed
    fresh = App.create_with_channels(team=team, name="Fresh", slug="fresh")
    assert not fresh.slug_is_fixed


def test_it_adds_a_custom_channel(client, bob, sample_app):
    response = login(client, bob).post("/apps/mysampleecrapp/channels/new/", {"name": "Nightly"})
    assert response.status_code == 302
    channel = sample_app.channels.get(slug="nightly")
    assert channel.name == "Nightly" and channel.position == 3
    assert AuditEvent.objects.filter(action="create", object_type="channel").exists()


@pytest.mark.parametrize(("name", "message"), [("Beta", "already has a channel"), ("!!!", "at least one letter"),
                                                ("", "required")])
def test_it_rejects_a_duplicate_or_empty_channel_name(client, bob, sample_app, name, message):
    response = login(client, bob).post("/apps/mysampleecrapp/channels/new/", {"name": name})
    assert response.status_code == 400 and message in response.content.decode()
    assert sample_app.channels.count() == 3


def test_it_archives_a_channel_without_customers(client, bob, sample_app):
    response = login(client, bob).post("/apps/mysampleecrapp/channels/beta/archive/")
    assert response.status_code == 302
    assert Channel.objects.get(app=sample_app, slug="beta").is_archived
    assert AuditEvent.objects.filter(action="archive", object_type="channel").exists()
    assert 'href="/apps/mysampleecrapp/channels/beta/"' not in client.get("/apps/mysampleecrapp/").content.decode()


def test_it_refuses_to_archive_a_channel_with_customers(client, alice, customer):
    response = login(client, alice).post("/apps/mysampleecrapp/channels/unstable/archive/", follow=True)
    assert "move them to another channel first" in response.content.decode()
    assert not Channel.objects.get(slug="unstable").is_archived


def test_it_archives_an_app(client, alice, sample_app):
    response = login(client, alice).post("/apps/mysampleecrapp/archive/")
    assert response.status_code == 302
    sample_app.refresh_from_db()
    assert sample_app.is_archived
    assert AuditEvent.objects.filter(action="archive", object_type="app").exists()
    # Archived apps take no new releases.
    assert client.post("/apps/mysampleecrapp/releases/new/").status_code == 403


def test_the_slug_can_change_until_a_release_is_promoted(client, bob, team):
    App.create_with_channels(team=team, name="Fresh", slug="fresh")
    response = login(client, bob).post("/apps/fresh/edit/", {"name": "Fresh App", "slug": "fresh-app"})
    assert response.status_code == 302 and response["Location"] == "/apps/fresh-app/"
    app = App.objects.get(team=team)
    assert (app.name, app.slug) == ("Fresh App", "fresh-app")
    assert AuditEvent.objects.get(action="update", object_type="app").detail == {
        "name": ["Fresh", "Fresh App"], "slug": ["fresh", "fresh-app"]}


def test_the_slug_is_fixed_in_the_settings_once_promoted(client, bob, sample_app):
    login(client, bob)
    assert "disabled" in client.get("/apps/mysampleecrapp/edit/").content.decode().split('name="slug"')[1].split(">")[0]
    client.post("/apps/mysampleecrapp/edit/", {"name": "Renamed", "slug": "hijack"})
    sample_app.refresh_from_db()
    assert (sample_app.name, sample_app.slug) == ("Renamed", "mysampleecrapp")


def test_settings_reject_a_taken_slug(client, bob, sample_app, team):
    App.create_with_channels(team=team, name="Fresh", slug="fresh")
    response = login(client, bob).post("/apps/fresh/edit/", {"name": "Fresh", "slug": "mysampleecrapp"})
    assert response.status_code == 400 and "already has an app" in response.content.decode()
