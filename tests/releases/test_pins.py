"""Pins: the image check records the manifest tree each image resolved to, and the release's
first promotion freezes it as the release's pins; later promotions reuse them.

A real docker-registry on loopback stands in for a public registry (``public.example.com``
through the host map); skopeo, which nobody here wrote, says what it serves.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import timedelta

import httpx
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from registries.oci.client import RegistryClient
from releases import services as release_services
from releases.entitlements import tasks
from releases.entitlements.models import ImagePin, PinSource
from releases.image_check import services
from releases.image_check.models import VERDICT_TTL, ImageVerdict, Verdict
from releases.models import App, Release
from tests.conftest import login
from tests.support import images
from tests.support.registry import start_distribution
from tests.support.servers import require_binary

PUBLIC_HOST = "public.example.com"
PROXY_HOST = "portal.example.com"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("pins"))
    yield registry
    registry.stop()


@pytest.fixture
def hosts(settings, registry):
    settings.PORTAL_REGISTRY_HOST_MAP = f"{PUBLIC_HOST}={registry.url}"
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    settings.PORTAL_PROXY_HOST = PROXY_HOST


def deployment(*refs: str) -> str:
    containers = "".join(f"        - name: c{i}\n          image: {ref}\n"
                         for i, ref in enumerate(refs))
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
            f"    spec:\n      containers:\n{containers}")


def new_release(app, user, *refs: str) -> Release:
    return Release.create_next(app=app, user=user, files=[("web.yaml", deployment(*refs))])


def skopeo_raw(registry, image: str) -> bytes:
    skopeo = require_binary("skopeo")
    return subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false",
                           f"docker://{registry.host}/{image}"],
                          check=True, capture_output=True, timeout=60).stdout


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def verdict(app, ref: str) -> ImageVerdict:
    return ImageVerdict.objects.get(app=app, reference=ref)


def promote(release, user, slug: str, label: str):
    return release_services.release_promote(
        release=release, channels=[release.app.channels.get(slug=slug)], user=user,
        version_label=label)


# --- the check records the tree ----------------------------------------------------------------


def test_the_verdict_records_the_tree_skopeo_shows_for_an_index(hosts, registry, sample_app,
                                                                 alice):
    index = images.build_index(layer_sizes=[3000], shared_size=2000, seed=21)
    images.push(index, registry.url, "pub/multi", "1.0")
    release = new_release(sample_app, alice, f"{PUBLIC_HOST}/pub/multi:1.0")
    services.release_check_images(release_id=release.pk)

    raw = skopeo_raw(registry, "pub/multi:1.0")
    top = json.loads(raw)
    expected = [{"digest": digest_of(raw), "mediaType": top["mediaType"], "size": len(raw),
                 "kind": "index"}]
    for child in top["manifests"]:
        child_raw = skopeo_raw(registry, f"pub/multi@{child['digest']}")
        assert digest_of(child_raw) == child["digest"]
        body = json.loads(child_raw)
        expected.append({"digest": child["digest"], "mediaType": body["mediaType"],
                         "size": len(child_raw), "kind": "manifest"})
        for kind, desc in [("config", body["config"])] + [("layer", d) for d in body["layers"]]:
            node = {"digest": desc["digest"], "mediaType": desc["mediaType"],
                    "size": desc["size"], "kind": kind}
            if all(n["digest"] != node["digest"] for n in expected):  # the shared layer once
                expected.append(node)

    row = verdict(sample_app, f"{PUBLIC_HOST}/pub/multi:1.0")
    assert row.verdict == Verdict.PUBLIC
    assert row.tree == expected
    assert (row.digest, row.media_type, row.size) == (digest_of(raw), top["mediaType"], len(raw))


def test_a_reference_written_with_a_digest_resolves_to_that_digest(hosts, registry, sample_app,
                                                                   alice):
    index = images.build_index(layer_sizes=[1000], shared_size=1000, seed=22)
    images.push(index, registry.url, "pub/multi", "digest-test")
    child = index.images[1].digest
    ref = f"{PUBLIC_HOST}/pub/multi@{child}"
    release = new_release(sample_app, alice, ref)
    services.release_check_images(release_id=release.pk)
    row = verdict(sample_app, ref)
    assert row.digest == child and row.tree[0]["digest"] == child
    assert [n["kind"] for n in row.tree] == ["manifest", "config", "layer", "layer"]


def test_a_recheck_of_an_unchanged_image_reads_only_its_head(hosts, registry, sample_app, alice,
                                                              monkeypatch):
    images.push(images.build_single([1000], seed=32), registry.url, "pub/same", "1.0")
    ref = f"{PUBLIC_HOST}/pub/same:1.0"
    release = new_release(sample_app, alice, ref)
    services.release_check_images(release_id=release.pk)
    tree = verdict(sample_app, ref).tree
    gets = []
    real_get = RegistryClient.get_manifest
    monkeypatch.setattr(RegistryClient, "get_manifest",
                        lambda self, *a, **kw: gets.append(a) or real_get(self, *a, **kw))
    services.release_check_images(release_id=release.pk, force=True)
    assert gets == [] and verdict(sample_app, ref).tree == tree
    moved = images.push(images.build_single([1000], seed=33), registry.url, "pub/same", "1.0")
    services.release_check_images(release_id=release.pk, force=True)
    assert gets == [("pub/same", moved)] and verdict(sample_app, ref).digest == moved


def test_a_verdict_that_reads_nothing_clears_what_an_earlier_one_resolved(hosts, registry,
                                                                          sample_app, alice):
    ref = f"{PUBLIC_HOST}/pub/gone:1.0"
    release = new_release(sample_app, alice, ref)
    ImageVerdict.objects.update_or_create(app=sample_app, reference=ref, defaults={
        "verdict": Verdict.PUBLIC, "digest": "sha256:" + "a" * 64, "size": 5,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "tree": [{"digest": "sha256:" + "a" * 64}]})
    services.release_check_images(release_id=release.pk, force=True)
    row = verdict(sample_app, ref)
    assert row.verdict == Verdict.UNLINKED
    assert (row.digest, row.media_type, row.size, row.tree) == ("", "", 0, [])


# --- images written on the portal's own proxy host -------------------------------------------------


def test_an_image_on_the_portals_own_proxy_is_checked_through_its_upstream(hosts, registry,
                                                                         sample_app, alice):
    digest = images.push(images.build_single([1500], seed=23), registry.url, "pub/own", "2.0")
    ref = f"{PROXY_HOST}/proxy/{sample_app.slug}/{PUBLIC_HOST}/pub/own:2.0"
    release = new_release(sample_app, alice, ref)
    services.release_check_images(release_id=release.pk)
    row = verdict(sample_app, ref)
    assert row.verdict == Verdict.PUBLIC and not row.fails
    assert row.digest == digest
    promote(release, alice, "beta", "2.0")
    pin = ImagePin.objects.get(release=release)
    assert (pin.reference, pin.domain, pin.path, pin.tag, pin.digest) == (
        ref, PUBLIC_HOST, "pub/own", "2.0", digest)


def test_an_image_under_another_apps_slug_fails(hosts, registry, sample_app, alice, team):
    App.create_with_channels(team=team, name="Other", slug="other")
    images.push(images.build_single([1500], seed=24), registry.url, "pub/theirs", "1.0")
    ref = f"{PROXY_HOST}/proxy/other/{PUBLIC_HOST}/pub/theirs:1.0"
    release = new_release(sample_app, alice, ref)
    services.release_check_images(release_id=release.pk)
    row = verdict(sample_app, ref)
    assert row.fails and row.digest == ""
    assert "another application's image" in row.message
    assert "cannot pull it" in row.message


# --- the first promotion pins; later promotions reuse -------------------------------------------------


def test_the_first_promotion_pins_and_a_later_one_reuses_the_pins_after_the_tag_moved(
        hosts, registry, sample_app, alice):
    first = images.push(images.build_index(layer_sizes=[1200], shared_size=800, seed=25),
                        registry.url, "pub/app", "1.0")
    ref = f"{PUBLIC_HOST}/pub/app:1.0"
    release = new_release(sample_app, alice, ref, ref, "nginx")  # one pin per distinct image
    services.release_check_images(release_id=release.pk)
    checked = verdict(sample_app, ref)

    promote(release, alice, "unstable", "1.0")
    release.refresh_from_db()
    assert release.pinned_at is not None
    pins = {p.reference: p for p in ImagePin.objects.filter(release=release)}
    assert set(pins) == {ref, "docker.io/library/nginx:latest"}
    pin = pins[ref]
    assert (pin.domain, pin.path, pin.tag, pin.digest) == (PUBLIC_HOST, "pub/app", "1.0", first)
    assert (pin.media_type, pin.size, pin.tree) == (checked.media_type, checked.size, checked.tree)
    assert pin.source == PinSource.PROMOTION and pin.pinned_at == release.pinned_at
    # nginx was never resolved here (no network): pinned at its first pull.
    assert pins["docker.io/library/nginx:latest"].digest == ""
    assert pins["docker.io/library/nginx:latest"].pinned_at is None

    moved = images.push(images.build_single([900], seed=26), registry.url, "pub/app", "1.0")
    services.release_check_images(release_id=release.pk, force=True)
    assert verdict(sample_app, ref).digest == moved != first
    pinned_at = release.pinned_at
    promote(release, alice, "stable", "1.0")
    release.refresh_from_db()
    assert release.pinned_at == pinned_at
    assert ImagePin.objects.filter(release=release).count() == 2
    assert ImagePin.objects.get(release=release, reference=ref).digest == first


def test_an_image_promoted_anyway_is_pinned_unresolved(client, hosts, registry, sample_app, alice):
    ref = f"{PUBLIC_HOST}/pub/missing:1.0"
    release = new_release(sample_app, alice, ref)
    services.release_check_images(release_id=release.pk)
    assert verdict(sample_app, ref).fails
    response = login(client, alice).post(
        f"/apps/{sample_app.slug}/releases/{release.sequence}/promote/",
        {"channels": sample_app.channels.get(slug="unstable").pk, "version_label": "9",
         "promote_anyway": "on"})
    assert response.status_code == 302
    pin = ImagePin.objects.get(release=release)
    assert (pin.digest, pin.tree, pin.pinned_at) == ("", [], None)


def test_the_release_page_shows_the_pinned_digests(client, hosts, registry, sample_app, alice):
    digest = images.push(images.build_single([700], seed=27), registry.url, "pub/page", "1.0")
    release = new_release(sample_app, alice, f"{PUBLIC_HOST}/pub/page:1.0")
    services.release_check_images(release_id=release.pk)
    page = login(client, alice).get(f"/apps/{sample_app.slug}/releases/{release.sequence}/")
    assert "Pinned" not in page.text
    promote(release, alice, "unstable", "1")
    page = client.get(f"/apps/{sample_app.slug}/releases/{release.sequence}/")
    assert f"Pinned: customers get <code>{digest}</code>" in page.text


# --- a stale verdict is checked again before promoting --------------------------------------------


def test_a_stale_verdict_is_checked_again_and_promoting_waits_for_it(client, hosts, registry,
                                                                      sample_app, alice):
    digest = images.push(images.build_single([800], seed=28), registry.url, "pub/stale", "1.0")
    ref = f"{PUBLIC_HOST}/pub/stale:1.0"
    release = new_release(sample_app, alice, ref)
    ImageVerdict.objects.update_or_create(app=sample_app, reference=ref, defaults={
        "verdict": Verdict.PUBLIC, "checked_at": timezone.now() - VERDICT_TTL - timedelta(seconds=1),
        "digest": "sha256:" + "b" * 64})
    url = f"/apps/{sample_app.slug}/releases/{release.sequence}/promote/"
    page = login(client, alice).get(url)
    assert page.status_code == 200
    assert verdict(sample_app, ref).verdict == Verdict.CHECKING
    assert 'id="promote-checks"' in page.text and 'hx-trigger="every 2s"' in page.text
    assert "Checking…" in page.text

    data = {"channels": sample_app.channels.get(slug="unstable").pk, "version_label": "3",
            "release_notes": "Typed notes"}
    response = client.post(url, data)
    assert response.status_code == 400
    assert "The image checks shown above are still running: wait for them" in response.text
    assert "Typed notes" in response.text
    assert not release.promotions.exists()

    services.release_check_images(release_id=release.pk)  # the worker's check
    part = client.get(url, HTTP_HX_REQUEST="true")
    assert part.status_code == 286  # every verdict is in: htmx stops polling
    assert "Public" in part.text and digest in part.text
    assert client.post(url, data).status_code == 302
    assert ImagePin.objects.get(release=release).digest == digest


def test_promote_anyway_does_not_wait_for_the_checks(client, hosts, sample_app, alice):
    ref = f"{PUBLIC_HOST}/pub/never-checked:1.0"
    release = new_release(sample_app, alice, ref)
    url = f"/apps/{sample_app.slug}/releases/{release.sequence}/promote/"
    response = login(client, alice).post(url, {
        "channels": sample_app.channels.get(slug="unstable").pk, "version_label": "4",
        "promote_anyway": "on"})
    assert response.status_code == 302
    assert ImagePin.objects.get(release=release).digest == ""


# --- beat: backfill and re-check ----------------------------------------------------------------------


def test_backfill_pins_releases_promoted_before_pins_existed(hosts, registry, sample_app, alice):
    digest = images.push(images.build_single([600], seed=29), registry.url, "pub/old", "1.0")
    release = new_release(sample_app, alice, f"{PUBLIC_HOST}/pub/old:1.0")
    # Promoted the way it was before pins: no check, no pins.
    release.promote_to(sample_app.channels.get(slug="stable"), user=alice, version_label="old")
    assert not ImagePin.objects.filter(release=release).exists()
    tasks.backfill_pins()
    release.refresh_from_db()
    assert release.pinned_at is not None
    pin = ImagePin.objects.get(release=release)
    assert (pin.digest, pin.source) == (digest, PinSource.BACKFILL)
    # Release 1 of the sample app (nginx, no network here) is pinned unresolved.
    assert ImagePin.objects.get(release__sequence=1, release__app=sample_app).digest == ""
    tasks.backfill_pins()  # nothing left: no second set
    assert ImagePin.objects.filter(release=release).count() == 1


def test_the_recheck_warns_when_a_pinned_digest_is_gone_and_clears_when_it_is_back(
        client, settings, hosts, registry, sample_app, alice):
    image = images.build_single([500], seed=30)
    digest = images.push(image, registry.url, "pub/expiring", "1.0")
    release = new_release(sample_app, alice, f"{PUBLIC_HOST}/pub/expiring:1.0")
    services.release_check_images(release_id=release.pk)
    promote(release, alice, "unstable", "5")
    warning = (f"Customers can no longer pull release {release.sequence}: "
               f"<code>{PUBLIC_HOST}/pub/expiring:1.0@{digest}</code> is gone from {PUBLIC_HOST}")

    tasks.recheck_pins()
    assert ImagePin.objects.get(release=release).missing_at is None

    # A lifecycle policy expires it upstream.
    assert httpx.delete(f"{registry.url}/v2/pub/expiring/manifests/{digest}").status_code == 202
    tasks.recheck_pins()
    pin = ImagePin.objects.get(release=release)
    assert pin.missing_at is not None and pin.checked_at is not None
    login(client, alice)
    assert warning in client.get(f"/apps/{sample_app.slug}/").text
    assert warning in client.get(f"/apps/{sample_app.slug}/releases/{release.sequence}/").text

    # The registry cannot be asked: nothing changes.
    settings.PORTAL_REGISTRY_HOST_MAP = f"{PUBLIC_HOST}=http://127.0.0.1:9"
    tasks.recheck_pins()
    assert ImagePin.objects.get(release=release).missing_at == pin.missing_at

    settings.PORTAL_REGISTRY_HOST_MAP = f"{PUBLIC_HOST}={registry.url}"
    images.push(image, registry.url, "pub/expiring", "1.0")
    tasks.recheck_pins()
    assert ImagePin.objects.get(release=release).missing_at is None
    assert warning not in client.get(f"/apps/{sample_app.slug}/").text


def test_beat_schedules_the_backfill_and_the_recheck():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert schedule["releases-backfill-pins"]["task"] == "releases.entitlements.tasks.backfill_pins"
    assert schedule["releases-recheck-pins"]["task"] == "releases.entitlements.tasks.recheck_pins"
