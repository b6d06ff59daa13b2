"""What a license may pull (releases/entitlements/selectors.py, grace.py) and the proxy's decision
on it (access.py, decisions.py), from the database: pins written by hand, no registry.

The HTTP behaviour against the real server (skopeo, a moved tag, the first pull) is in
test_proxy_entitlements.py.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registries.models import ExternalRegistry
from releases import kustomize, services
from releases.entitlements.models import ImagePin, PulledImage
from releases.entitlements.selectors import entitled_digests, entitlement
from releases.models import Customer, Release
from releases.proxy import access, decisions, pull_log
from releases.proxy.access import Access, Refusal
from releases.proxy.models import PullEvent
from tests.conftest import login

HOST = "registry.example.com"
REPO = "team/app"
NAME = f"{HOST}/{REPO}"


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def tree(label: str) -> list[dict]:
    """An index, one child manifest, its config and layer, named after ``label``."""
    return [{"digest": digest(f"{label}-{kind}"), "mediaType": "x", "size": 1, "kind": kind}
            for kind in ("index", "manifest", "config", "layer")]


def header_for(license_id: str) -> str:
    return "Basic " + base64.b64encode(f"{license_id}:{license_id}".encode()).decode()


@pytest.fixture
def registry(settings, team, sample_app):
    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    registry = ExternalRegistry(team=team, endpoint=HOST, provider="other", username="u")
    registry.secret = "pw"
    registry.save()
    registry.apps.add(sample_app)
    return registry


@pytest.fixture
def no_network(monkeypatch):
    """A decision makes no network call: the client is a stand-in that fails if used."""
    monkeypatch.setattr(access, "registry_pull_client", lambda **kwargs: "client")


@pytest.fixture
def make_release(sample_app, alice):
    def make(label: str, *, tag: str = "1.0", channels=("Unstable",), pinned: bool = True,
             unresolved: bool = False, repo: str = REPO) -> Release:
        release = Release.create_next(app=sample_app, user=alice, files=[
            ("web.yaml", f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n"
                         f"  containers: [{{name: web, image: '{HOST}/{repo}:{tag}'}}]\n")])
        for name in channels:
            release.promote_to(sample_app.channels.get(name=name), user=alice,
                               version_label=label)
        if pinned:
            nodes = [] if unresolved else tree(label)
            ImagePin.objects.create(release=release, reference=f"{HOST}/{repo}:{tag}",
                                    domain=HOST, path=repo, tag=tag,
                                    digest=nodes[0]["digest"] if nodes else "", tree=nodes)
            Release.objects.filter(pk=release.pk).update(pinned_at=timezone.now())
        return release
    return make


def pin_of(release) -> ImagePin:
    return release.pins.get()


def demote(release, channel_name="Unstable", user=None):
    promotion = release.promotions.get(channel__name=channel_name)
    services.promotion_demote(promotion=promotion, user=user)


def decide(customer, name=NAME):
    return access.decide(header=header_for(customer.license_id), address="10.0.0.1",
                         app_slug=customer.app.slug, name=name)


# --- the selector --------------------------------------------------------------------------------


def test_a_license_may_pull_the_trees_of_every_live_release_on_its_channel_only(
        customer, make_release, registry):
    old, new = make_release("old"), make_release("new", tag="2.0")
    make_release("beta", tag="3.0", channels=("Beta",))
    gone = make_release("gone", tag="4.0")
    demote(gone)
    make_release("draft", tag="5.0", channels=())
    assert entitled_digests(customer) == pin_of(old).digests | pin_of(new).digests
    assert len(entitled_digests(customer)) == 8


def test_a_tag_resolves_to_the_newest_live_release_using_it(customer, make_release, registry):
    first = make_release("first")
    second = make_release("second")  # the same tag, another digest
    repo = entitlement(customer).repository(HOST, REPO)
    assert repo.tags["1.0"].digest == pin_of(second).digest
    assert repo.tags["1.0"].release_id == second.pk
    assert repo.allows_digest(pin_of(first).digest)  # the older release stays pullable
    demote(second)
    repo = entitlement(customer).repository(HOST, REPO)
    assert repo.tags["1.0"].digest == pin_of(first).digest


# --- grace -----------------------------------------------------------------------------------------


@pytest.fixture
def pulled(customer, make_release, registry):
    """Release "one" on Unstable, pulled by ``customer``; a second customer never pulled it."""
    release = make_release("one")
    PulledImage.objects.create(customer=customer, pin=pin_of(release))
    other = Customer.objects.create(app=customer.app, channel=customer.channel, name="Never Pulled")
    return release, other


def test_a_license_that_pulled_a_demoted_release_keeps_it_for_the_grace_period(
        settings, customer, pulled, alice):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = 30
    release, other = pulled
    demote(release, user=alice)
    row = PulledImage.objects.get(customer=customer)
    assert row.lost_at is not None  # started by the demotion itself
    assert entitled_digests(customer) == pin_of(release).digests
    assert entitled_digests(other) == set()  # never pulled: cannot start
    PulledImage.objects.filter(pk=row.pk).update(lost_at=timezone.now() - timedelta(days=31))
    assert entitled_digests(customer) == set()


def test_grace_zero_revokes_at_once(settings, customer, pulled, alice):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = 0
    release, _ = pulled
    demote(release, user=alice)
    assert entitled_digests(customer) == set()


def test_a_change_of_channel_starts_grace_and_coming_back_ends_it(settings, customer, pulled,
                                                                  alice):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = 30
    release, _ = pulled
    unstable = customer.channel
    customer.channel = customer.app.channels.get(name="Stable")
    services.customer_update(customer=customer, user=alice)
    assert PulledImage.objects.get(customer=customer).lost_at is not None
    assert entitled_digests(customer) == pin_of(release).digests
    customer.channel = unstable
    services.customer_update(customer=customer, user=alice)
    entitled_digests(customer)
    assert PulledImage.objects.get(customer=customer).lost_at is None


def test_grace_starts_lazily_for_a_change_made_elsewhere(settings, customer, pulled):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = 30
    release, _ = pulled
    release.promotions.update(demoted_at=timezone.now())  # no service, no signal
    assert entitled_digests(customer) == pin_of(release).digests
    assert PulledImage.objects.get(customer=customer).lost_at is not None


@pytest.mark.parametrize("days, says", [
    (30, "Licenses that already pulled its images keep pulling them for 30 days"),
    (1, "keep pulling them for 1 day;"),
    (0, "Its images stop being pullable at once"),
])
def test_the_demote_confirmation_tells_the_grace_period(settings, client, alice, sample_app,
                                                        days, says):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = days
    page = login(client, alice).get(f"/apps/{sample_app.slug}/channels/unstable/")
    assert says in page.content.decode()


def test_two_first_pulls_agree_on_the_pin(customer, make_release, registry, no_network,
                                          monkeypatch):
    make_release("first-pull", unresolved=True)
    result = decide(customer)
    target = access.manifest_target(result, "1.0")
    monkeypatch.setattr(access, "manifest_tree", lambda client, repo, ref: [
        {"digest": ref, "mediaType": "x", "size": 1, "kind": "manifest"}])
    assert access.freeze_first_pull(result, target.pin, digest("a")) == digest("a")
    # A concurrent first pull that saw the tag move keeps the pin the first one froze.
    assert access.freeze_first_pull(result, target.pin, digest("b")) == digest("a")
    pin = ImagePin.objects.get(pk=target.pin.pin_id)
    assert (pin.digest, pin.source, pin.tree[0]["digest"]) == (digest("a"), "first_pull",
                                                              digest("a"))


# --- the decision and each reference ---------------------------------------------------------------


def test_a_cold_decision_on_pinned_images_reads_no_release_file(customer, make_release, registry,
                                                                no_network, monkeypatch):
    make_release("one")
    # The app's first release (nginx) pinned too: no legacy release is live.
    Release.objects.filter(pinned_at__isnull=True).update(pinned_at=timezone.now())

    def no_files(*args, **kwargs):
        raise AssertionError("a pinned decision reads no release file")

    monkeypatch.setattr(kustomize, "proxied_repositories", no_files)
    with CaptureQueriesContext(connection) as queries:
        result = decide(customer)
    assert isinstance(result, Access), result
    assert not [q for q in queries if "releases_releasefile" in q["sql"]]
    assert len(queries) <= 6, [q["sql"] for q in queries]


def test_each_reference_is_checked_against_the_pins(customer, make_release, registry, no_network):
    release = make_release("one")
    other_channel = make_release("beta", tag="2.0", channels=("Beta",))
    result = decide(customer)
    pin = pin_of(release)
    target = access.manifest_target(result, "1.0")
    assert (target.reference, target.pin.release_id) == (pin.digest, release.pk)
    for node in pin.tree:
        assert not isinstance(access.manifest_target(result, node["digest"]), Refusal)
        assert access.blob_refusal(result, node["digest"]) is None
    for refused in (access.manifest_target(result, "2.0"),
                    access.manifest_target(result, pin_of(other_channel).digest),
                    access.blob_refusal(result, pin_of(other_channel).tree[-1]["digest"])):
        assert (refused.status, refused.code) == (403, "DENIED")
        assert "not part of a release on your channel" in refused.message
    assert access.allowed_tags(result) == ["1.0"]


def test_an_image_of_another_channel_only_is_refused_by_name(customer, make_release, registry,
                                                             no_network):
    make_release("beta", channels=("Beta",))
    result = decide(customer)
    assert isinstance(result, Refusal) and result.status == 403


def test_names_on_the_portals_own_proxy_are_never_resolved(customer, make_release, registry,
                                                           no_network):
    make_release("one")
    result = decide(customer, name=f"proxy.example.com/proxy/{customer.app.slug}/{NAME}")
    assert isinstance(result, Refusal) and result.status == 403
    assert "own proxy" in result.message
    other = access.decide(header=header_for(customer.license_id), address="10.0.0.1",
                          app_slug="otherapp", name=NAME)
    assert isinstance(other, Refusal) and other.status in (403, 404)


def test_a_legacy_release_is_allowed_by_repository_on_its_channel_only(
        customer, make_release, registry, no_network):
    make_release("legacy", tag="7.0", channels=("Beta",), pinned=False)
    assert isinstance(decide(customer), Refusal)  # another channel's legacy release
    make_release("legacy", tag="8.0", pinned=False)
    result = decide(customer)
    assert isinstance(result, Access), result
    assert access.manifest_target(result, "anything").reference == "anything"
    assert access.allowed_tags(result) is None  # every upstream tag, as before pins


def test_an_unresolved_pin_passes_its_tag_upstream(customer, make_release, registry, no_network):
    make_release("first-pull", unresolved=True)
    result = decide(customer)
    target = access.manifest_target(result, "1.0")
    assert target.reference == "1.0" and target.pin.digest == ""
    assert result.entitlement.unresolved


# --- the decision cache ----------------------------------------------------------------------------


def test_a_demotion_empties_the_decision_cache_in_this_process(customer, make_release, registry,
                                                               no_network, alice):
    release = make_release("one")
    header = header_for(customer.license_id)
    first = decisions.authorize(header=header, address="10.0.0.1", app_slug=customer.app.slug,
                                name=NAME)
    assert isinstance(first, Access)
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is first
    demote(release, user=alice)
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is None
    again = decisions.authorize(header=header, address="10.0.0.1", app_slug=customer.app.slug,
                                name=NAME)
    assert isinstance(again, Refusal) and again.status == 403


def test_a_promotion_and_a_pin_change_empty_the_decision_cache(customer, make_release, registry,
                                                               no_network):
    make_release("one")
    header = header_for(customer.license_id)
    decisions.authorize(header=header, address="10.0.0.1", app_slug=customer.app.slug, name=NAME)
    make_release("two", tag="2.0")
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is None
    result = decisions.authorize(header=header, address="10.0.0.1", app_slug=customer.app.slug,
                                 name=NAME)
    assert access.allowed_tags(result) == ["1.0", "2.0"]
    pin = ImagePin.objects.get(tag="2.0")
    pin.missing_at = timezone.now()
    pin.save()
    assert decisions.cached_access(header=header, app_slug=customer.app.slug, name=NAME) is None


# --- pulled images -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_pull_log_writer_records_first_and_last_pulls_of_pins(customer, make_release,
                                                                  registry, no_network,
                                                                  monkeypatch):
    release = make_release("one")
    result = decide(customer)
    pin = pin_of(release)
    pins = result.entitlement.manifest_pins[pin.digest]
    assert pins == (pin.pk,)
    writer = pull_log.PullLogWriter()

    def pull(reference, status=200):
        writer.put(pull_log.pull_event(access=result, reference=reference, kind="manifest",
                                       method="GET", status=status, size=1,
                                       release_id=release.pk, pins=pins))
        assert writer.flush(timeout=30)
        return PulledImage.objects.get(customer=customer, pin=pin)

    first = pull("1.0")
    assert pull("1.0", status=404).last_pulled_at == first.last_pulled_at
    # Within RECORD_EVERY a pair is not written again (a pull is many requests)...
    assert pull(pin.digest).last_pulled_at == first.last_pulled_at
    monkeypatch.setattr(pull_log, "RECORD_EVERY", 0.0)
    again = pull(pin.digest)  # ...after it, the last pull moves on
    writer.close()
    assert again.first_pulled_at == first.first_pulled_at
    assert again.last_pulled_at > first.last_pulled_at
    assert customer.pull_events.filter(release=release).count() == 4


def test_the_pull_log_shows_the_release_served_and_the_drift(client, alice, customer, make_release,
                                                             registry):
    release = make_release("1.0")
    PullEvent.objects.create(app=customer.app, customer=customer, registry=registry, image=NAME,
                             reference="1.0", kind="manifest", status=200, release=release,
                             note=f"tag 1.0 moved upstream to {digest('new')}; served the "
                                  f"pinned {pin_of(release).digest}")
    login(client, alice)
    page = client.get(f"/customers/{customer.pk}/").content.decode()
    assert f"release {release.sequence}" in page
    assert f"moved upstream to {digest('new')}" in page
