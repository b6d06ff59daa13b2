"""Promote a release to channels (Unstable pre-selected), demote a channel release."""

import pytest
from django.utils import timezone

from portal.models import AuditEvent
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import Promotion, Release
from tests.conftest import login


@pytest.fixture
def draft(sample_app, bob):
    release = Release.create_next(app=sample_app, user=bob, files=[
        (f.name, f.content) for f in sample_app.releases.get(sequence=1).files.all()])
    # Promoting waits for fresh image checks: nginx was checked a moment ago.
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference="docker.io/library/nginx:latest",
        defaults={"verdict": Verdict.PUBLIC, "checked_at": timezone.now()})
    return release


PROMOTE = "/apps/mysampleecrapp/releases/2/promote/"


def test_the_promote_page_preselects_unstable_and_labels_the_button_promote(client, bob, draft):
    content = login(client, bob).get(PROMOTE).content.decode()
    unstable = draft.app.channels.get(slug="unstable")
    assert f'value="{unstable.pk}"' in content
    tag = content.split(f'value="{unstable.pk}"')[1].split(">")[0]
    assert "checked" in tag
    assert '<label for="id_version_label">' in content and '<label for="id_release_notes">' in content
    assert '<button class="btn" type="submit">Promote</button>' in content


def test_it_promotes_to_the_chosen_channels_with_label_notes_and_required(client, bob, draft):
    channels = draft.app.channels
    response = login(client, bob).post(PROMOTE, {
        "channels": [channels.get(slug="unstable").pk, channels.get(slug="beta").pk],
        "version_label": " 0.0.2 ", "release_notes": "Pull nginx from ECR", "is_required": "on"})
    assert response.status_code == 302 and response["Location"] == "/apps/mysampleecrapp/"
    unstable = Promotion.objects.get(channel__slug="unstable", release=draft)
    beta = Promotion.objects.get(channel__slug="beta", release=draft)
    assert (unstable.channel_sequence, beta.channel_sequence) == (2, 1)
    assert unstable.version_label == "0.0.2" and unstable.release_notes == "Pull nginx from ECR"
    assert unstable.is_required and unstable.promoted_by == bob
    draft.refresh_from_db()
    assert not draft.is_draft
    assert AuditEvent.objects.filter(action="promote").count() == 2
    overview = client.get("/apps/mysampleecrapp/").content.decode()
    assert "0.0.2" in overview and "Create new release" in overview


@pytest.mark.parametrize(
    ("data", "message"),
    [({"version_label": "1.0"}, "Choose at least one channel"),
     ({"channels": "unstable", "version_label": "   "}, "Enter a version label"),
     ({"channels": "unstable"}, "Enter a version label")],
)
def test_it_rejects_missing_channels_or_label_and_keeps_the_input(client, bob, draft, data, message):
    if data.get("channels") == "unstable":
        data["channels"] = draft.app.channels.get(slug="unstable").pk
    data["release_notes"] = "Typed notes"
    response = login(client, bob).post(PROMOTE, data)
    content = response.content.decode()
    assert response.status_code == 400 and message in content
    assert "Typed notes" in content
    assert not draft.promotions.exists()


def test_it_refuses_to_promote_a_release_with_problems(client, bob, draft):
    draft.files.filter(name="deployment.yaml").update(content="kind: Deployment\n")
    response = login(client, bob).post(PROMOTE, {"channels": draft.app.channels.get(slug="unstable").pk,
                                                 "version_label": "0.0.2"})
    assert response.status_code == 400 and "Fix the release before promoting it" in response.content.decode()
    assert not draft.promotions.exists()


def test_it_cannot_promote_to_another_apps_or_an_archived_channel(client, bob, draft, team):
    from releases.models import App
    other = App.create_with_channels(team=team, name="Other", slug="other")
    beta = draft.app.channels.get(slug="beta")
    beta.archived_at = beta.created_at
    beta.save()
    login(client, bob)
    for channel in (other.channels.get(slug="unstable"), beta):
        response = client.post(PROMOTE, {"channels": channel.pk, "version_label": "x"})
        assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not draft.promotions.exists()


def test_demote_hides_the_release_and_never_reuses_the_channel_sequence(client, bob, sample_app, draft):
    unstable = sample_app.channels.get(slug="unstable")
    second = draft.promote_to(unstable, user=bob, version_label="0.0.2")
    response = login(client, bob).post(f"/apps/mysampleecrapp/promotions/{second.pk}/demote/")
    assert response.status_code == 302 and response["Location"] == "/apps/mysampleecrapp/channels/unstable/"
    second.refresh_from_db()
    assert second.is_demoted and second.demoted_by == bob
    assert unstable.current_promotion().version_label == "0.0.1"
    assert AuditEvent.objects.filter(action="demote").exists()
    third = Release.create_next(app=sample_app, user=bob, files=[]).promote_to(unstable, user=bob, version_label="3")
    assert third.channel_sequence == 3


def test_the_channel_history_offers_demote_to_developers_only(client, bob, sam, sample_app):
    assert b"Demote" in login(client, bob).get("/apps/mysampleecrapp/channels/unstable/").content
    assert b"Demote" not in login(client, sam).get("/apps/mysampleecrapp/channels/unstable/").content


def test_another_team_cannot_demote(client, mallory, sample_app):
    promotion = Promotion.objects.get()
    assert login(client, mallory).post(f"/apps/mysampleecrapp/promotions/{promotion.pk}/demote/").status_code == 404
    promotion.refresh_from_db()
    assert not promotion.is_demoted


@pytest.mark.parametrize(("verdict", "refusal"), [
    (Verdict.UNLINKED, 'Tick "Promote anyway" to promote a release whose images customers will fail to pull'),
    (Verdict.CHECKING, 'The image checks shown above are still running: wait for them, or tick "Promote anyway".'),
])
def test_the_page_words_image_refusals_in_its_own_terms(client, bob, draft, verdict, refusal):
    ImageVerdict.objects.filter(app=draft.app).update(verdict=verdict, queued_at=timezone.now(), checked_at=(
        None if verdict == Verdict.CHECKING else timezone.now()))
    response = login(client, bob).post(PROMOTE, {"channels": draft.app.channels.get(slug="unstable").pk,
                                                 "version_label": "0.0.2"})
    text = response.content.decode().replace("&quot;", '"')
    assert response.status_code == 400 and refusal in text
    assert "promoteAnyway" not in text
    assert not draft.promotions.exists()
