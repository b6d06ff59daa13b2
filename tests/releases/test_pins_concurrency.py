"""Promotions of one release racing: it is pinned once (PostgreSQL row locks).

Without the release's row lock two first promotions both find ``pinned_at`` NULL: the second
keeps the first one's pins (unique per release and image) but stamps its own ``pinned_at``, so
the pins and the release disagree about when the release was frozen.
"""

import pytest
from django.db import connection
from django.utils import timezone

from releases import services
from releases.entitlements.models import ImagePin
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import App, Channel, Release
from tests.releases.test_concurrency import race

pytestmark = [pytest.mark.postgres, pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

IMAGES = [f"registry.example.com/app/c{i}:1.0" for i in range(6)]


@pytest.fixture(autouse=True)
def _needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("Row-lock concurrency runs in make test's PostgreSQL pass (DATABASE_URL=postgres://...).")


def test_concurrent_first_promotions_pin_a_release_once(team, alice):
    app = App.create_with_channels(team=team, name="Race", slug="race")
    for i in range(4):
        Channel.objects.get_or_create(app=app, slug=f"extra{i}",
                                      defaults={"name": f"Extra {i}", "position": 10 + i})
    channels = list(app.channels.all())
    for round_ in range(3):
        content = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
                   "  template:\n    spec:\n      containers:\n" + "".join(
                       f"        - name: c{i}\n          image: {image}\n"
                       for i, image in enumerate(IMAGES)))
        release = Release.create_next(app=app, user=alice, files=[("web.yaml", content)])
        for i, image in enumerate(IMAGES):
            ImageVerdict.objects.update_or_create(app=app, reference=image, defaults={
                "verdict": Verdict.PUBLIC, "checked_at": timezone.now(),
                "digest": f"sha256:{round_}{i:063d}", "tree": [{"digest": f"sha256:{round_}{i:063d}"}]})

        def promote(i, release_pk=release.pk, label=f"{round_}"):
            return services.release_promote(release=Release.objects.get(pk=release_pk),
                                            channels=[channels[i]], user=alice,
                                            version_label=f"{label}.{i}")

        race(promote, count=len(channels))

        release.refresh_from_db()
        pins = ImagePin.objects.filter(release=release)
        assert pins.count() == len(IMAGES)
        assert {p.pinned_at for p in pins} == {release.pinned_at}
        assert release.promotions.count() == len(channels)
