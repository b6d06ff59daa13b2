# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py and image_check/test_check.py)
"""Queueing the private-image check: fail fast on a dead broker, and beat's sweep catches up.

A release saved while the broker is down keeps its images "Checking" with nothing queued; the
save does not wait for the broker (one quick attempt, then none for BROKER_BACKOFF), and the
sweep queues the checks once the broker is back, so the panel never stays "Checking…".
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from portal import publish
from releases.image_check import selectors, services, tasks
from releases.image_check.models import CHECK_LEASE, ImageVerdict, Verdict
from releases.models import Release
from tests.conftest import login
from tests.registries.product_helpers import celery_conf
from tests.releases.image_check.test_check import (  # noqa: F401 (fixtures)
    PUBLIC_HOST,
    deployment,
    hosts,
    private_image,
    public_registry,
    release,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def broker_not_known_down(monkeypatch):
    monkeypatch.setattr(publish, "_down_until", {})


@pytest.fixture
def dead_broker():
    with celery_conf(broker_url=f"redis://127.0.0.1:{free_port()}/0", task_always_eager=False) as app:
        yield app


@pytest.fixture
def eager():
    with celery_conf(task_always_eager=True) as app:
        yield app


def rows(app) -> dict[str, tuple[str, object]]:
    return {v.reference: (v.verdict, v.queued_at) for v in ImageVerdict.objects.filter(app=app)}


def save_release(app, user, image, callbacks) -> tuple[Release, float]:
    started = time.perf_counter()
    with callbacks(execute=True):
        release = Release.create_next(app=app, user=user, files=[("d.yaml", deployment(image))])
    return release, time.perf_counter() - started


def test_with_the_broker_down_a_save_fails_fast_and_leaves_the_checks_pending(
        sample_app, alice, dead_broker, django_capture_on_commit_callbacks):
    first, seconds = save_release(sample_app, alice, "example.com/a:1", django_capture_on_commit_callbacks)
    assert seconds < 2.5, f"the first save waited {seconds:.2f} s for a dead broker"
    assert rows(sample_app)["example.com/a:1"] == (Verdict.CHECKING, None)
    # The broker is known down now: the next saves do not try it at all.
    second, seconds = save_release(sample_app, alice, "example.com/b:1", django_capture_on_commit_callbacks)
    assert seconds < 0.5, f"a save waited {seconds:.2f} s for a broker known to be down"
    assert rows(sample_app)["example.com/b:1"] == (Verdict.CHECKING, None)
    assert set(selectors.verdicts_needing_queue().values_list("reference", flat=True)) == {
        "example.com/a:1", "example.com/b:1"}


def test_the_panel_keeps_polling_while_the_broker_is_down(client, alice, release, dead_broker,
                                                          django_capture_on_commit_callbacks):
    login(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        part = client.get(f"/apps/{release.app.slug}/releases/{release.sequence}/images/",
                          HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and "Checking…" in part.text
    assert all(queued is None for _, queued in rows(release.app).values())


def test_the_sweep_queues_the_pending_checks_once_the_broker_is_back(
        hosts, release, private_image, dead_broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.release_queue_image_check(release=release)
    assert selectors.verdicts_needing_queue().count() == 2
    # While the broker is down the sweep queues nothing and keeps the rows pending.
    publish._down_until.clear()
    assert services.verdicts_sweep_pending() == 0
    assert selectors.verdicts_needing_queue().count() == 2
    publish._down_until.clear()
    with celery_conf(task_always_eager=True, broker_url="memory://"):  # the broker is back
        tasks.sweep_image_checks()
    found = {ref: verdict for ref, (verdict, _) in rows(release.app).items()}
    assert found == {f"{PUBLIC_HOST}/pub/app:1.0": Verdict.PUBLIC, private_image: Verdict.UNLINKED}
    assert all(queued is None for _, queued in rows(release.app).values())
    assert selectors.verdicts_needing_queue().count() == 0


def test_the_sweep_leaves_queued_checks_alone_and_requeues_lost_ones(sample_app, eager, monkeypatch):
    now = timezone.now()
    fresh = ImageVerdict.objects.create(app=sample_app, reference="example.com/a:1", queued_at=now)
    lost = ImageVerdict.objects.create(app=sample_app, reference="example.com/b:1",
                                       queued_at=now - CHECK_LEASE - timedelta(seconds=1))
    done = ImageVerdict.objects.create(app=sample_app, reference="example.com/c:1",
                                       verdict=Verdict.PUBLIC, checked_at=now)
    checked = []
    monkeypatch.setattr(services, "check_image",
                        lambda *, app, ref, known=(): checked.append(str(ref))
                        or services.CheckResult(Verdict.PUBLIC, "ok"))
    assert services.verdicts_sweep_pending() == 1
    assert checked == ["example.com/b:1"]
    fresh.refresh_from_db(), lost.refresh_from_db(), done.refresh_from_db()
    assert fresh.verdict == Verdict.CHECKING and lost.verdict == Verdict.PUBLIC
    assert done.checked_at == now


def test_beat_runs_the_sweep():
    entry = settings.CELERY_BEAT_SCHEDULE["releases-sweep-image-checks"]
    assert entry["task"] == "releases.tasks.sweep_image_checks" and entry["schedule"] >= 1
