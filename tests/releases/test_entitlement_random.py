"""Seeded random histories: what a license may pull equals the union of the manifest trees of
its entitled releases, plus the pulled ones still in grace, at every step.

Each case builds apps, channels, customers and fake (well-formed) image trees from one seed,
then plays a random history through the product's services: releases pinned at their first
promotion from the private-image check's verdicts, promotions to more channels, demotions,
changes of a customer's channel, tags moved upstream (a fresh verdict with another tree),
pulls (the ``PulledImage`` row the proxy records) and time passing beyond the grace period.
A small model of the rules says what each license may pull; after every step
``entitled_digests`` must agree for every customer.

A failure names its seed; ``ENTITLEMENT_SEED=<seed>`` reruns that case alone
(``ENTITLEMENT_CASES`` sets how many random cases a run plays).
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from releases import services
from releases.entitlements.models import ImagePin, PulledImage
from releases.entitlements.selectors import entitled_digests
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import App, Customer, Promotion, Release
from tests.support import images
from tests.support.manifests import deployment_yaml

CASES = int(os.environ.get("ENTITLEMENT_CASES", "20"))
STEPS = 30
HOST = "registry.example.com"
CHANNELS = ("stable", "beta", "unstable")
AGE_DAYS = 31  # one "time passes" step: longer than a 30-day grace


def _seeds() -> list[int]:
    if os.environ.get("ENTITLEMENT_SEED"):
        return [int(os.environ["ENTITLEMENT_SEED"])]
    return [random.SystemRandom().randrange(1 << 32) for _ in range(CASES)]


# --- fake but well-formed trees -----------------------------------------------------------------


def _digest(rng: random.Random) -> str:
    return "sha256:" + hashlib.sha256(rng.randbytes(16)).hexdigest()


def fake_tree(rng: random.Random, shared_layers: list[str]) -> list[dict]:
    """An index with 1-2 platform manifests, or a single manifest; each with a config and 1-3
    layers, some drawn from ``shared_layers`` (images share base layers)."""

    def manifest() -> list[dict]:
        layers = [rng.choice(shared_layers) if rng.random() < 0.3 else _digest(rng)
                  for _ in range(rng.randint(1, 3))]
        return ([{"digest": _digest(rng), "mediaType": images.OCI_MANIFEST, "size": 500,
                  "kind": "manifest"},
                 {"digest": _digest(rng), "mediaType": images.OCI_CONFIG, "size": 300,
                  "kind": "config"}]
                + [{"digest": d, "mediaType": images.OCI_LAYER, "size": 1000, "kind": "layer"}
                   for d in dict.fromkeys(layers)])

    if rng.random() < 0.3:
        return manifest()
    top = {"digest": _digest(rng), "mediaType": images.OCI_INDEX, "size": 400, "kind": "index"}
    return [top, *(node for _ in range(rng.randint(1, 2)) for node in manifest())]


# --- the model of the rules --------------------------------------------------------------------


@dataclass
class Model:
    grace_days: int
    trees: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # (release, ref) -> pinned
    live: set[tuple[int, int]] = field(default_factory=set)  # (release, channel) not demoted
    release_app: dict[int, int] = field(default_factory=dict)
    channel_of: dict[int, int] = field(default_factory=dict)  # customer -> channel
    app_of: dict[int, int] = field(default_factory=dict)  # customer -> app
    lost_days: dict[tuple[int, int, str], int | None] = field(default_factory=dict)  # pulled pins

    def entitled_pins(self, customer: int) -> set[tuple[int, str]]:
        channel = self.channel_of[customer]
        return {key for key in self.trees if (key[0], channel) in self.live
                and self.release_app[key[0]] == self.app_of[customer]}

    def allowed_pins(self, customer: int) -> set[tuple[int, str]]:
        entitled = self.entitled_pins(customer)
        in_grace = {(r, ref) for (c, r, ref), days in self.lost_days.items()
                    if c == customer and days is not None and days < self.grace_days}
        return entitled | in_grace

    def allowed(self, customer: int) -> set[str]:
        return set().union(*(self.trees[key] for key in self.allowed_pins(customer)))

    def settle(self) -> None:
        """Pulled pins that stopped being entitled start losing now; entitled ones stop."""
        for (customer, release, ref), days in list(self.lost_days.items()):
            entitled = (release, ref) in self.entitled_pins(customer)
            if entitled:
                self.lost_days[customer, release, ref] = None
            elif days is None:
                self.lost_days[customer, release, ref] = 0


# --- the history -------------------------------------------------------------------------------


class History:
    def __init__(self, seed: int, team, user, settings):
        self.rng = rng = random.Random(seed)
        self.user = user
        self.model = Model(grace_days=rng.choice([0, 30]))
        settings.PORTAL_ENTITLEMENT_GRACE_DAYS = self.model.grace_days
        self.apps = [App.create_with_channels(team=team, name=f"app{i}", slug=f"app{i}")
                     for i in range(rng.randint(1, 2))]
        self.shared = [_digest(rng) for _ in range(3)]
        self.customers = []
        for app in self.apps:
            for n in range(rng.randint(1, 3)):
                customer = services.customer_create(customer=Customer(
                    app=app, channel=app.channels.get(slug=rng.choice(CHANNELS)),
                    name=f"{app.slug}-customer-{n}"), user=user)
                self.customers.append(customer)
                self.model.channel_of[customer.pk] = customer.channel_id
                self.model.app_of[customer.pk] = app.pk
            for repo in ("api", "web"):
                for tag in ("1", "2"):
                    self.move_tag(app, f"{HOST}/{app.slug}/{repo}:{tag}")

    def references(self, app) -> list[str]:
        return [f"{HOST}/{app.slug}/{repo}:{tag}" for repo in ("api", "web") for tag in ("1", "2")]

    # Each step changes the world through the product, then the model the same way.

    def move_tag(self, app, reference: str) -> str:
        """The tag now names another image upstream, and a fresh check has seen it."""
        tree = fake_tree(self.rng, self.shared)
        ImageVerdict.objects.update_or_create(app=app, reference=reference, defaults={
            "verdict": Verdict.PUBLIC, "message": "Anyone can pull it.", "checked_at": timezone.now(),
            "digest": tree[0]["digest"], "media_type": tree[0]["mediaType"],
            "size": tree[0]["size"], "tree": tree})
        return f"move {reference}"

    def release(self, app) -> str:
        refs = self.rng.sample(self.references(app), self.rng.randint(1, 3))
        files = [(f"deploy-{i}.yaml", deployment_yaml(f"w{i}", ref)) for i, ref in enumerate(refs)]
        release = Release.create_next(app=app, user=self.user, files=files)
        self.model.release_app[release.pk] = app.pk
        return self.promote(release, self.rng.sample(CHANNELS, self.rng.randint(1, 2)))

    def promote(self, release, channel_slugs) -> str:
        first = release.pinned_at is None and release.promoted_at is None
        channels = [release.app.channels.get(slug=s) for s in channel_slugs]
        services.release_promote(release=release, channels=channels, user=self.user,
                                 version_label=f"{release.sequence}.0")
        if first:  # pinned now: what the verdicts say, frozen from here on
            for ref in {r for r in self.references(release.app)
                        if any(r in f.content for f in release.files.all())}:
                verdict = ImageVerdict.objects.get(app=release.app, reference=ref)
                self.model.trees[release.pk, ref] = {n["digest"] for n in verdict.tree}
        for channel in channels:
            self.model.live.add((release.pk, channel.pk))
        self.model.settle()
        return f"promote release {release.sequence} of {release.app.slug} to {channel_slugs}"

    def promote_again(self, app) -> str:
        promoted = list(app.releases.filter(promoted_at__isnull=False).order_by("pk"))
        if not promoted:
            return self.release(app)
        release = self.rng.choice(promoted)  # from the seed, so a seed replays its history
        free = [s for s in CHANNELS
                if (release.pk, app.channels.get(slug=s).pk) not in self.model.live]
        return self.promote(release, [self.rng.choice(free)]) if free else "nothing to promote"

    def demote(self, app) -> str:
        live = list(Promotion.objects.filter(channel__app=app, demoted_at__isnull=True)
                    .order_by("pk"))
        if not live:
            return "nothing to demote"
        promotion = self.rng.choice(live)
        services.promotion_demote(promotion=promotion, user=self.user)
        # The release stays live on the channel if another promotion of it there is live.
        if not Promotion.objects.filter(release=promotion.release, channel=promotion.channel,
                                        demoted_at__isnull=True).exists():
            self.model.live.discard((promotion.release_id, promotion.channel_id))
        self.model.settle()
        return f"demote release {promotion.release.sequence} from {promotion.channel.slug}"

    def change_channel(self, customer) -> str:
        customer.refresh_from_db()
        customer.channel = customer.app.channels.get(slug=self.rng.choice(CHANNELS))
        services.customer_update(customer=customer, user=self.user)
        self.model.channel_of[customer.pk] = customer.channel_id
        self.model.settle()
        return f"move {customer.name} to {customer.channel.slug}"

    def pull(self, customer) -> str:
        """The license pulls one image it may pull: the row the proxy records."""
        pins = sorted(self.model.allowed_pins(customer.pk))
        if not pins:
            return f"{customer.name} has nothing to pull"
        release_id, ref = self.rng.choice(pins)
        pin = ImagePin.objects.get(release_id=release_id, reference=ref)
        now = timezone.now()
        row, created = PulledImage.objects.get_or_create(customer=customer, pin=pin)
        if not created:
            PulledImage.objects.filter(pk=row.pk).update(last_pulled_at=now)
        self.model.lost_days.setdefault((customer.pk, release_id, ref), None)
        self.model.settle()
        return f"{customer.name} pulls {ref} of release {release_id}"

    def time_passes(self) -> str:
        """Every grace that started is older by more than a 30-day grace period."""
        PulledImage.objects.filter(lost_at__isnull=False).update(
            lost_at=F("lost_at") - timedelta(days=AGE_DAYS))
        for key, days in self.model.lost_days.items():
            if days is not None:
                self.model.lost_days[key] = days + AGE_DAYS
        return f"{AGE_DAYS} days pass"

    def step(self) -> str:
        rng = self.rng
        app = rng.choice(self.apps)
        action = rng.choices(
            ["release", "promote_again", "demote", "change_channel", "pull", "move_tag", "time"],
            weights=[4, 2, 3, 3, 5, 1, 2])[0]
        if action == "release":
            return self.release(app)
        if action == "promote_again":
            return self.promote_again(app)
        if action == "demote":
            return self.demote(app)
        if action == "change_channel":
            return self.change_channel(rng.choice(self.customers))
        if action == "pull":
            return self.pull(rng.choice(self.customers))
        if action == "move_tag":
            return self.move_tag(app, rng.choice(self.references(app)))
        return self.time_passes()


@pytest.mark.parametrize("seed", _seeds(), ids=lambda seed: f"seed={seed}")
def test_allowed_digests_are_the_trees_of_the_entitled_releases(seed, team, alice, settings):
    history = History(seed, team, alice, settings)
    asker = random.Random(seed ^ 0x5EED)
    steps = []
    for n in range(STEPS):
        steps.append(history.step())
        # Not everyone is asked after every step: a grace must start at the change itself, not
        # when the license next asks (time may pass in between).
        for customer in history.customers:
            if n < STEPS - 1 and asker.random() < 0.5:
                continue
            customer.refresh_from_db()
            got, want = entitled_digests(customer), history.model.allowed(customer.pk)
            assert got == want, (
                f"seed {seed} (rerun: ENTITLEMENT_SEED={seed}), grace "
                f"{history.model.grace_days} days, after step {len(steps)}: {customer.name} "
                f"may pull {len(got - want)} digests too many and misses {len(want - got)}.\n"
                "History:\n  " + "\n  ".join(steps))


def test_a_grace_spent_long_ago_restarts_after_the_release_comes_back(team, alice, settings):
    """Found by seed 3943339770: a pulled release is demoted, its grace runs out, it is promoted
    to the customer's channel again and demoted again, with the license asking nothing in
    between. The second demotion starts a new grace; the spent one must not count."""
    history = History(0, team, alice, settings)
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = history.model.grace_days = 30
    app = history.apps[0]
    customer = history.customers[0]
    stable = app.channels.get(slug="stable")
    customer.channel = stable
    services.customer_update(customer=customer, user=alice)
    history.model.channel_of[customer.pk] = stable.pk
    release = Release.create_next(app=app, user=alice, files=[
        ("deploy.yaml", deployment_yaml("w", history.references(app)[0]))])
    history.model.release_app[release.pk] = app.pk
    history.promote(release, ["stable"])
    history.pull(customer)
    tree = history.model.allowed(customer.pk)
    assert tree and entitled_digests(customer) == tree

    def demote() -> None:
        promotion = Promotion.objects.get(release=release, channel=stable, demoted_at__isnull=True)
        services.promotion_demote(promotion=promotion, user=alice)

    demote()
    history.time_passes()
    history.time_passes()
    assert entitled_digests(customer) == set()  # the grace ran out
    history.promote(release, ["stable"])  # entitled again; the license does not ask
    demote()
    assert entitled_digests(customer) == tree  # a new grace, from the second demotion
