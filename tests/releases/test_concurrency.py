"""Concurrent saves and promotions give unique, gapless sequences (PostgreSQL row locks).

Threads each open their own database connection, wait at a barrier, then race. Run by
``make test`` against PostgreSQL; SQLite has no row locks (it serialises whole writes), so
there these tests are left to the PostgreSQL pass.
"""

import threading

import pytest
from django.db import connection, connections

from releases.demo import DEMO_FILES
from releases.models import App, Channel, Release

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

THREADS = 8
ROUNDS = 3


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        # make test deselects these from the SQLite pass; run alone on SQLite, they say why.
        pytest.skip("Row-lock concurrency runs in make test's PostgreSQL pass (DATABASE_URL=postgres://...).")


def race(work, count=THREADS):
    """Run ``work(i)`` in ``count`` threads started together; return results, re-raise errors."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as error:  # noqa: BLE001 - reported in the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def app(team, alice):
    return App.create_with_channels(team=team, name="Race", slug="race")


def test_concurrent_create_next_gives_unique_gapless_sequences(app, alice):
    for _ in range(ROUNDS):
        race(lambda i: Release.create_next(app=App.objects.get(pk=app.pk), user=alice,
                                           files=list(DEMO_FILES)).sequence)
    sequences = sorted(app.releases.values_list("sequence", flat=True))
    assert sequences == list(range(1, THREADS * ROUNDS + 1))
    app.refresh_from_db()
    assert app.next_release_sequence == THREADS * ROUNDS + 1
    assert all(r.files.count() == 2 for r in app.releases.all())


def test_concurrent_promotions_give_unique_gapless_channel_sequences(app, alice):
    releases = [Release.create_next(app=app, user=alice, files=list(DEMO_FILES)) for _ in range(THREADS)]
    unstable = app.channels.get(slug="unstable")
    race(lambda i: releases[i].promote_to(Channel.objects.get(pk=unstable.pk), user=alice,
                                          version_label=f"1.0.{i}").channel_sequence)
    assert sorted(unstable.promotions.values_list("channel_sequence", flat=True)) == list(range(1, THREADS + 1))
    unstable.refresh_from_db()
    assert unstable.next_channel_sequence == THREADS + 1


def test_promoting_one_release_to_one_channel_from_many_threads_keeps_sequences_gapless(app, alice):
    release = Release.create_next(app=app, user=alice, files=list(DEMO_FILES))
    channels = list(app.channels.all())
    race(lambda i: release.promote_to(channels[i % len(channels)], user=alice, version_label=f"v{i}"),
         count=len(channels) * 3)
    for channel in channels:
        assert sorted(channel.promotions.values_list("channel_sequence", flat=True)) == [1, 2, 3]
    release.refresh_from_db()
    assert release.promoted_at is not None


def test_saves_and_new_drafts_racing_through_the_pages_leave_one_draft(app, alice, client):
    """Many "Create new release" clicks at once: one new draft, the others are sent to it."""
    from django.test import Client

    release = Release.create_next(app=app, user=alice, files=list(DEMO_FILES))
    release.promote_to(app.channels.get(slug="unstable"), user=alice, version_label="1")

    def click(_i):
        c = Client()
        c.force_login(alice)
        return c.post("/apps/race/releases/new/")["Location"]

    locations = race(click)
    assert set(locations) == {"/apps/race/releases/2/edit/"}
    assert sorted(app.releases.values_list("sequence", flat=True)) == [1, 2]
