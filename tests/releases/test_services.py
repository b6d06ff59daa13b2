"""The release side's services: each does its write and its audit line."""

import pytest
from django.core.exceptions import ValidationError

from portal.models import AuditEvent
from releases import services
from releases.models import App, Channel, Customer, ReleaseFile

pytestmark = pytest.mark.django_db


def audit(action, object_type):
    return list(AuditEvent.objects.filter(action=action, object_type=object_type).order_by("id"))


@pytest.fixture
def draft(sample_app, bob):
    release, _base = services.release_create_draft(app=sample_app, user=bob)
    return release


# --- apps and channels --------------------------------------------------------------------


def test_app_create_makes_the_app_with_its_channels_and_audits(team, bob):
    app = services.app_create(team=team, name="Shop", slug="shop", user=bob)
    assert list(app.channels.values_list("name", flat=True)) == ["Stable", "Beta", "Unstable"]
    [event] = audit("create", "app")
    assert event.actor_name == "bob" and event.team == team
    assert event.detail == {"name": "Shop", "slug": "shop"}


def test_app_create_turns_a_taken_slug_into_a_slug_error(team, bob, sample_app):
    with pytest.raises(ValidationError) as caught:
        services.app_create(team=team, name="Again", slug=sample_app.slug, user=bob)
    assert "slug" in caught.value.error_dict
    assert not audit("create", "app")


def test_app_update_saves_and_audits_the_changes_only(sample_app, bob):
    changes = services.app_update(app=sample_app, name="Renamed", slug=sample_app.slug, user=bob)
    assert changes == {"name": ["MySampleECRApp", "Renamed"]}
    assert App.objects.get(pk=sample_app.pk).name == "Renamed"
    [event] = audit("update", "app")
    assert event.detail == changes


def test_app_update_without_changes_writes_nothing(sample_app, bob):
    assert services.app_update(app=sample_app, name=sample_app.name, slug=sample_app.slug, user=bob) == {}
    assert not audit("update", "app")


def test_app_update_turns_a_taken_slug_into_a_slug_error(team, sample_app, bob):
    App.objects.create(team=team, name="Other", slug="other")
    with pytest.raises(ValidationError) as caught:
        services.app_update(app=sample_app, name=sample_app.name, slug="other", user=bob)
    assert "slug" in caught.value.error_dict
    assert not audit("update", "app")


def test_app_archive_archives_and_audits(sample_app, bob):
    services.app_archive(app=sample_app, user=bob)
    assert App.objects.get(pk=sample_app.pk).is_archived
    assert len(audit("archive", "app")) == 1


def test_channel_create_puts_the_channel_last_and_audits(sample_app, bob):
    channel = services.channel_create(app=sample_app, name="Nightly", slug="nightly", user=bob)
    assert channel.position == max(sample_app.channels.exclude(pk=channel.pk).values_list("position", flat=True)) + 1
    [event] = audit("create", "channel")
    assert event.detail == {"app": sample_app.slug, "name": "Nightly"}


def test_channel_create_turns_a_taken_slug_into_a_name_error(sample_app, bob):
    with pytest.raises(ValidationError) as caught:
        services.channel_create(app=sample_app, name="Beta again", slug="beta", user=bob)
    assert "name" in caught.value.error_dict
    assert not audit("create", "channel")


def test_channel_archive_archives_and_audits_once(sample_app, bob):
    beta = sample_app.channels.get(name="Beta")
    assert services.channel_archive(channel=beta, user=bob) is True
    assert Channel.objects.get(pk=beta.pk).is_archived
    assert services.channel_archive(channel=beta, user=bob) is False
    [event] = audit("archive", "channel")
    assert event.detail == {"app": sample_app.slug}


def test_channel_archive_refuses_a_channel_with_customers(customer, bob):
    with pytest.raises(ValidationError, match="has 1 customer: move them"):
        services.channel_archive(channel=customer.channel, user=bob)
    assert not Channel.objects.get(pk=customer.channel.pk).is_archived
    assert not audit("archive", "channel")


def test_channel_archive_refuses_the_last_channel(sample_app, bob):
    *others, last = sample_app.channels.all()
    for channel in others:
        services.channel_archive(channel=channel, user=bob)
    with pytest.raises(ValidationError, match="at least one channel"):
        services.channel_archive(channel=last, user=bob)


# --- releases -----------------------------------------------------------------------------


def test_release_create_draft_copies_the_newest_release_and_audits(sample_app, bob):
    release, base = services.release_create_draft(app=sample_app, user=bob)
    assert (release.sequence, base.sequence) == (2, 1)
    assert sorted(release.files.values_list("name", flat=True)) == ["deployment.yaml", "service.yaml"]
    [event] = audit("create", "release")
    assert event.detail == {"app": sample_app.slug, "sequence": 2, "from_sequence": 1}


def test_release_create_draft_refuses_a_second_draft(draft, sample_app, bob):
    with pytest.raises(services.DraftExists) as caught:
        services.release_create_draft(app=sample_app, user=bob)
    assert caught.value.release.pk == draft.pk
    assert len(audit("create", "release")) == 1


def test_release_create_draft_of_a_new_app_has_the_default_files(team, bob):
    app = services.app_create(team=team, name="Fresh", slug="fresh", user=bob)
    release, base = services.release_create_draft(app=app, user=bob, from_sequence=7)
    assert base is None and release.files.exists()


def test_release_file_save_creates_updates_and_audits(draft, bob):
    file, changed = services.release_file_save(release=draft, original_name="", name="extra.yaml",
                                               content="a: 1\n", user=bob)
    assert changed and file.position == 2
    file, changed = services.release_file_save(release=draft, original_name="extra.yaml", name="renamed.yaml",
                                               content="a: 1\n", user=bob)
    assert changed and ReleaseFile.objects.get(pk=file.pk).name == "renamed.yaml"
    [created] = audit("create", "releasefile")
    [updated] = audit("update", "releasefile")
    assert created.detail == {"release": draft.sequence, "file": "extra.yaml"}
    assert updated.detail == {"release": draft.sequence, "file": "renamed.yaml", "renamed_from": "extra.yaml"}


def test_release_file_save_without_changes_is_not_audited(draft, bob):
    file = draft.files.get(name="service.yaml")
    _file, changed = services.release_file_save(release=draft, original_name=file.name, name=file.name,
                                                content=file.content, user=bob)
    assert not changed
    assert not audit("update", "releasefile")


def test_release_file_save_refuses_a_promoted_release(sample_app, bob):
    promoted = sample_app.releases.get(sequence=1)
    with pytest.raises(services.ReleaseFrozen):
        services.release_file_save(release=promoted, original_name="", name="x.yaml", content="", user=bob)
    assert not promoted.files.filter(name="x.yaml").exists()


def test_release_file_save_of_a_vanished_file_raises(draft, bob):
    with pytest.raises(ReleaseFile.DoesNotExist):
        services.release_file_save(release=draft, original_name="gone.yaml", name="gone.yaml", content="",
                                   user=bob)


def test_release_file_delete_deletes_and_audits(draft, bob):
    file_pk = draft.files.get(name="service.yaml").pk
    services.release_file_delete(release=draft, name="service.yaml", user=bob)
    assert not draft.files.filter(name="service.yaml").exists()
    [event] = audit("delete", "releasefile")
    assert event.detail == {"release": draft.sequence, "file": "service.yaml", "id": file_pk}


def test_release_file_delete_refuses_a_promoted_release(sample_app, bob):
    promoted = sample_app.releases.get(sequence=1)
    with pytest.raises(services.ReleaseFrozen):
        services.release_file_delete(release=promoted, name="service.yaml", user=bob)
    assert promoted.files.filter(name="service.yaml").exists()
    assert not audit("delete", "releasefile")


def test_release_promote_puts_the_release_on_each_channel_with_one_audit_line_each(draft, sample_app, bob):
    channels = list(sample_app.channels.filter(name__in=["Beta", "Unstable"]))
    promotions = services.release_promote(release=draft, channels=channels, user=bob, version_label="0.0.2",
                                          failing_images=["private.example/app:1"])
    assert {p.channel.name for p in promotions} == {"Beta", "Unstable"}
    draft.refresh_from_db()
    assert not draft.is_draft
    events = audit("promote", "promotion")
    assert len(events) == 2
    assert {e.detail["channel"] for e in events} == {"Beta", "Unstable"}
    assert all(e.detail["failing_images"] == ["private.example/app:1"] for e in events)
    assert all(e.detail["version_label"] == "0.0.2" and e.detail["release"] == draft.sequence for e in events)


def test_promotion_demote_demotes_and_audits_once(sample_app, bob):
    promotion = sample_app.channels.get(name="Unstable").current_promotion()
    assert services.promotion_demote(promotion=promotion, user=bob) is True
    assert services.promotion_demote(promotion=promotion, user=bob) is False
    promotion.refresh_from_db()
    assert promotion.is_demoted and promotion.demoted_by == bob
    [event] = audit("demote", "promotion")
    assert event.detail["version_label"] == "0.0.1"


# --- customers ----------------------------------------------------------------------------


def test_customer_create_saves_and_audits_without_the_license_id(sample_app, alice):
    customer = Customer(app=sample_app, channel=sample_app.channels.get(name="Beta"), name="Shop",
                        email="it@shop.example")
    services.customer_create(customer=customer, user=alice)
    assert customer.pk is not None
    [event] = audit("create", "customer")
    assert event.detail["channel"] == "Beta"
    assert customer.license_id not in str(event.detail)


def test_customer_update_audits_the_changes_only(customer, alice):
    customer.name = "Bigger Bank"
    assert services.customer_update(customer=customer, user=alice) == {"name": ["Big Bank", "Bigger Bank"]}
    assert Customer.objects.get(pk=customer.pk).name == "Bigger Bank"
    assert services.customer_update(customer=customer, user=alice) == {}
    assert Customer.objects.get(pk=customer.pk).license_sequence == 2  # one step for the one change
    [event] = audit("update", "customer")
    assert event.detail == {"changes": {"name": ["Big Bank", "Bigger Bank"]}, "license_sequence": 2}


def test_customer_archive_and_restore_each_write_and_audit_once(customer, alice):
    assert services.customer_archive(customer=customer, user=alice) is True
    assert Customer.objects.get(pk=customer.pk).is_archived
    assert services.customer_archive(customer=customer, user=alice) is False
    assert services.customer_restore(customer=customer, user=alice) is True
    assert not Customer.objects.get(pk=customer.pk).is_archived
    assert services.customer_restore(customer=customer, user=alice) is False
    assert len(audit("archive", "customer")) == 1
    assert len(audit("unarchive", "customer")) == 1


def test_customer_archive_sees_an_archive_made_elsewhere(customer, alice):
    Customer.objects.get(pk=customer.pk).archive()
    assert services.customer_archive(customer=customer, user=alice) is False
    assert not audit("archive", "customer")


def test_license_regenerate_replaces_the_id_and_audits(customer, alice):
    old_id, old_sequence = customer.license_id, customer.license_sequence
    services.license_regenerate(customer=customer, user=alice)
    stored = Customer.objects.get(pk=customer.pk)
    assert stored.license_id != old_id and stored.license_sequence == old_sequence + 1
    [event] = audit("regenerate_license", "customer")
    assert event.detail == {"license_sequence": old_sequence + 1}
    assert stored.license_id not in str(event.detail)
