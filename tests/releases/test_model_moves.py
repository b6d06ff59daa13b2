"""PullEvent and ImageVerdict moved to releases.proxy and releases.image_check without moving
their rows: a database migrated before the move keeps them, found through the moved models."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from releases.image_check.models import ImageVerdict, Verdict
from releases.proxy.models import PullEvent

ALIAS = "before-the-move"
# The latest migrations before PullEvent and ImageVerdict left releases' state.
BEFORE = [("releases", "0003_image_verdict_queued_at"),
          ("registries", "0003_mirrorjob_open_uploads"),
          ("portal", "0001_initial")]


@pytest.fixture
def old_database(tmp_path, django_db_blocker):
    """A SQLite file of its own, migrated to ``BEFORE``; yields its connection."""
    connections.settings[ALIAS] = {**connections["default"].settings_dict,
                                   "ENGINE": "django.db.backends.sqlite3",
                                   "NAME": str(tmp_path / "before.sqlite3"), "OPTIONS": {}}
    with django_db_blocker.unblock():
        connection = connections[ALIAS]
        try:
            yield connection
        finally:
            connection.close()
            del connections[ALIAS]
            del connections.settings[ALIAS]


def test_pull_events_and_verdicts_survive_the_move(old_database):
    executor = MigrationExecutor(old_database)
    state = executor.migrate(BEFORE)
    old = state.apps
    team = old.get_model("portal", "Team").objects.using(ALIAS).create(name="Acme")
    # By id, not by instance: since a later portal migration relates to releases.App, the App
    # class an instance comes from is not always the one another historical model's relation
    # expects, and Django refuses such an instance.
    app = old.get_model("releases", "App").objects.using(ALIAS).create(
        team_id=team.pk, name="Shop", slug="shop")
    channel = old.get_model("releases", "Channel").objects.using(ALIAS).create(
        app_id=app.pk, name="Stable", slug="stable", position=0)
    customer = old.get_model("releases", "Customer").objects.using(ALIAS).create(
        app_id=app.pk, channel_id=channel.pk, name="Big Bank", license_id="l" * 40)
    checked = timezone.now()
    old.get_model("releases", "PullEvent").objects.using(ALIAS).create(
        app_id=app.pk, customer_id=customer.pk, image="registry.example.com/team/app",
        reference="1.0", kind="manifest", method="GET", status=200, bytes=1234)
    old.get_model("releases", "ImageVerdict").objects.using(ALIAS).create(
        app_id=app.pk, reference="registry.example.com/team/app:1.0", verdict="private",
        message="Private: customers pull it through the proxy.", checked_at=checked)

    executor = MigrationExecutor(old_database)  # a fresh loader sees the new migrations
    executor.migrate(executor.loader.graph.leaf_nodes())

    event = PullEvent.objects.using(ALIAS).get()
    assert (event.app_id, event.customer_id, event.registry_id) == (app.pk, customer.pk, None)
    assert (event.image, event.reference, event.kind, event.method, event.status, event.bytes) == (
        "registry.example.com/team/app", "1.0", "manifest", "GET", 200, 1234)
    verdict = ImageVerdict.objects.using(ALIAS).get()
    assert (verdict.app_id, verdict.reference, verdict.verdict, verdict.checked_at) == (
        app.pk, "registry.example.com/team/app:1.0", Verdict.PRIVATE, checked)
    assert verdict.message == "Private: customers pull it through the proxy."
    # The moved models write to the same tables too.
    PullEvent.objects.using(ALIAS).create(app_id=app.pk, customer_id=customer.pk, image="x/y",
                                          reference="2.0", kind="blob", status=200)
    assert PullEvent.objects.using(ALIAS).count() == 2
