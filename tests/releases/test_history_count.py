"""The history pages' totals come from the sequences (releases and promotions are never deleted,
sequences are gapless), so no query of theirs grows with the data: no COUNT(*) over the history."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releases.models import Release
from releases.selectors import app_release_count, channel_promotion_count
from tests.conftest import login

HISTORY = "/apps/mysampleecrapp/releases/"
UNSTABLE = "/apps/mysampleecrapp/channels/unstable/"
OVERVIEW = "/apps/mysampleecrapp/"


def add_releases(app, user, count, *, promote_every=2):
    """``count`` releases; every ``promote_every``-th promoted to Unstable, every third of those also to Beta."""
    unstable, beta = app.channels.get(slug="unstable"), app.channels.get(slug="beta")
    for i in range(count):
        release = Release.create_next(app=app, user=user, files=[("service.yaml", "kind: Service\n")])
        if i % promote_every == 0:
            promotion = release.promote_to(unstable, user=user, version_label=f"2.{i}.0")
            if i % 3 == 0:
                release.promote_to(beta, user=user, version_label=f"2.{i}.0")
                promotion.demoted_at = promotion.created_at  # a demoted promotion still counts
                promotion.save(update_fields=["demoted_at"])


def history_sql(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.postgres
def test_the_counts_from_the_sequences_equal_the_real_counts(alice, sample_app):
    assert app_release_count(sample_app) == 1
    add_releases(sample_app, alice, 37)
    sample_app.refresh_from_db()
    assert app_release_count(sample_app) == sample_app.releases.count() == 38
    for channel in sample_app.channels.all():
        assert channel_promotion_count(channel) == channel.promotions.count()
    assert [channel_promotion_count(c) for c in sample_app.channels.order_by("position")] == [0, 7, 20]


@pytest.mark.postgres  # also run in make test's PostgreSQL pass: query counts depend on the database
@pytest.mark.parametrize("url", [HISTORY, UNSTABLE, OVERVIEW])
def test_the_history_pages_run_the_same_queries_at_10_and_200_releases_and_no_count(
        client, alice, sample_app, url, django_assert_num_queries):
    login(client, alice)
    add_releases(sample_app, alice, 9)
    few = history_sql(client, url)
    assert not [sql for sql in few if "COUNT(*)" in sql.upper()]
    add_releases(sample_app, alice, 190)
    with django_assert_num_queries(len(few)):
        assert client.get(url).status_code == 200
    assert not [sql for sql in history_sql(client, url + "?page=999") if "COUNT(*)" in sql.upper()]


def test_the_pages_show_the_totals_and_the_last_page_from_the_sequences(client, alice, sample_app):
    add_releases(sample_app, alice, 50)  # 51 releases; 26 promoted to Unstable, plus 0.0.1
    login(client, alice)
    history = client.get(HISTORY).content.decode()
    assert "51 releases, newest first." in history and "Page 1 of 3" in history
    last = client.get(HISTORY, {"page": 999}).content.decode()  # past the end: the last page
    assert "Page 3 of 3" in last and "Release 1<" in last and "Release 2<" not in last
    unstable = client.get(UNSTABLE, {"page": 99}).content.decode()
    assert "Page 2 of 2" in unstable and "0.0.1" in unstable


def test_a_row_shows_what_changed_after_it_was_rendered(client, bob, sam, sample_app):
    """Rendered rows are reused, keyed by everything they show: a change is never served stale."""
    add_releases(sample_app, bob, 1, promote_every=2)  # release 2: Unstable and Beta, Unstable demoted
    Release.create_next(app=sample_app, user=bob, files=[("service.yaml", "kind: Service\n")])  # draft 3
    login(client, bob)
    before = client.get(HISTORY).content.decode()
    assert "Release 3</a> <span class=\"badge warn\">Draft</span>" in before and "/releases/3/edit/" in before
    assert "Stable #1" not in before
    sample_app.releases.get(sequence=1).promote_to(sample_app.channels.get(slug="stable"), user=bob,
                                                    version_label="0.0.1", is_required=True)
    after = client.get(HISTORY).content.decode()
    assert "Stable #1 · 0.0.1</span> <span class=\"badge warn\">Required</span>" in after
    # The same rows for someone who may not edit: no Edit link from bob's rendering.
    assert "/releases/3/edit/" not in login(client, sam).get(HISTORY).content.decode()


@pytest.mark.postgres  # also run in make test's PostgreSQL pass: query counts depend on the database
def test_a_history_page_is_a_range_of_sequences_in_one_query_on_any_page(client, bob, sample_app):
    """Pages are ranges of the gapless sequences: no OFFSET, which grows with the page number, and
    the rows come with their promotions in one query; the newest release is the total, not a query."""
    add_releases(sample_app, bob, 60)  # 61 releases: 3 pages
    login(client, bob)
    first, second, last = (history_sql(client, HISTORY + f"?page={n}") for n in (1, 2, 3))
    for sql in first + second + last:
        assert " OFFSET " not in sql.upper()
    assert len(first) == len(second) == len(last)
    # Session, user, membership; the app, the rows with their promotions, the channel tabs.
    assert len(first) == 6


@pytest.mark.postgres
def test_a_channel_history_page_is_a_range_of_channel_sequences(client, sam, sample_app, bob):
    add_releases(sample_app, bob, 60)  # 31 promotions to Unstable (one demoted in three): 2 pages
    login(client, sam)
    first, second = (history_sql(client, UNSTABLE + f"?page={n}") for n in (1, 2))
    for sql in first + second:
        assert " OFFSET " not in sql.upper()
    assert len(first) == len(second)
    page = client.get(UNSTABLE, {"page": 2}).content.decode()
    # Sequence 1 is 0.0.1, then 2.0.0, 2.2.0, …: page 2 holds sequences 6 (2.8.0) to 1.
    assert "Page 2 of 2" in page and ">2.8.0<" in page and ">0.0.1<" in page and ">2.10.0<" not in page
