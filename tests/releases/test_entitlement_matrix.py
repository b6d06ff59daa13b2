# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py)
"""What a license may pull, cell by cell, against the proxy as the Procfile runs it.

One repository of two-platform images in a loopback docker-registry, linked to the team as a
private registry. Its tags stand for the release states of the matrix:

    1.0  released on Stable (the license's channel)           own / promoted
    1.1  released on Stable, pulled by the license, demoted    own / demoted
    3.0  released on Beta                                      other / promoted
    3.1  released on Beta, demoted                             other / demoted
    2.0  in a release never promoted                           own and other / never promoted
    9.9  pushed, in no release                                 "another tag", "another image's blob"

"Demoted within grace" asks the server started with the default grace; "demoted with grace 0"
asks a second web process over the same database with PORTAL_ENTITLEMENT_GRACE_DAYS=0. Both
start after the demotion (the first one is restarted), so no decision cached before it is reused.
Every cell is asserted with plain HTTP (status, OCI code, message); the manifest cells of the
active license are asked again with skopeo, and the images a license may pull whole are copied
with ``skopeo copy --all``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

import pytest

from tests.support.entitlements import (
    APP,
    OTHER_APP,
    REGISTRY_NAME,
    REPOSITORY,
    UpstreamImage,
    ask,
    basic,
    push_images,
    skopeo_copy_all,
    skopeo_raw,
    wait_for,
)
from tests.support.processes import PortalStack
from tests.support.proxy_server import start_proxy_server
from tests.support.registry import distribution_factory  # noqa: F401

pytestmark = pytest.mark.slow

CHANNELS = ("own", "other")
STATES = ("promoted", "demoted within grace", "demoted with grace 0", "never promoted")
REFERENCES = ("promoted tag", "other tag", "pinned digest", "child manifest",
              "blob of the manifest", "blob of another image")
LICENSES = ("active", "expired", "archived", "another app's", "re-keyed")
MANIFEST_REFERENCES = REFERENCES[:4]
TAG_OF = {("own", "promoted"): "1.0", ("own", "demoted"): "1.1", ("other", "promoted"): "3.0",
          ("other", "demoted"): "3.1", ("own", "never promoted"): "2.0",
          ("other", "never promoted"): "2.0"}
UNRELEASED = "9.9"
NOT_ON_CHANNEL = "not part of a release on your channel"
# Customers by license state; "another app's" is a license of OTHER_APP asking for APP's image,
# "re-keyed" the old ID of a license whose ID was regenerated (unknown from then on).
CUSTOMERS = {"active": "Active Co", "expired": "Expired Inc", "archived": "Archived Ltd",
             "another app's": "Other App Customer", "re-keyed": "Rekeyed GmbH"}
LICENSE_REFUSALS = {
    "expired": (403, "DENIED", "expired"),
    "archived": (403, "DENIED", "archived"),
    "another app's": (403, "DENIED", "not for this application"),
    "re-keyed": (401, "UNAUTHORIZED", "unknown license"),
}


@dataclass(frozen=True)
class Expected:
    status: int
    code: str
    message: str  # a fragment of the OCI error message ("" for a 200)


def oracle(channel: str, state: str, reference: str, license: str) -> Expected:
    """The issue's rules for one cell.

    A license that is not valid gets nothing, whatever it asks. A valid license may pull the
    manifests and blobs of its entitled releases (promoted on its channel, not demoted); after a
    demotion, the license that pulled a release keeps pulling it, tag included (an install
    rendered before pins pulls by tag), for the grace period (none with grace 0). Every other
    reference of the repository is refused with "not part of a release on your channel".
    """
    if license in LICENSE_REFUSALS:
        return Expected(*LICENSE_REFUSALS[license])
    denied = Expected(403, "DENIED", NOT_ON_CHANNEL)
    if reference in ("other tag", "blob of another image"):
        return denied
    if channel == "own" and state == "promoted":
        return Expected(200, "", "")
    if channel == "own" and state == "demoted within grace":
        return Expected(200, "", "")  # the license pulled it before the demotion
    return denied


@dataclass
class World:
    images: dict[str, UpstreamImage]
    licenses: dict[str, str]
    grace: PortalStack  # the default grace
    no_grace: PortalStack  # PORTAL_ENTITLEMENT_GRACE_DAYS=0, same database
    pulled_before_demotion: list[int]

    def server(self, state: str) -> PortalStack:
        return self.no_grace if state == "demoted with grace 0" else self.grace

    def image(self, channel: str, state: str) -> UpstreamImage:
        kind = "demoted" if state.startswith("demoted") else state
        return self.images[TAG_OF[channel, kind]]


def proxied_name() -> str:
    return f"{APP}/{REGISTRY_NAME}/{REPOSITORY}"


def path_of(world: World, channel: str, state: str, reference: str) -> str:
    """The proxy path (after /v2/proxy/) of a cell's reference, and whether it is a manifest."""
    image = world.image(channel, state)
    unreleased = world.images[UNRELEASED]
    name = proxied_name()
    return {
        "promoted tag": f"{name}/manifests/{image.tag}",
        "other tag": f"{name}/manifests/{UNRELEASED}",
        "pinned digest": f"{name}/manifests/{image.digest}",
        "child manifest": f"{name}/manifests/{image.children[1]}",
        "blob of the manifest": f"{name}/blobs/{image.own_layer}",
        "blob of another image": f"{name}/blobs/{unreleased.own_layer}",
    }[reference]


def expected_digest(world: World, channel: str, state: str, reference: str) -> str:
    image = world.image(channel, state)
    return {"promoted tag": image.digest, "pinned digest": image.digest,
            "child manifest": image.children[1], "blob of the manifest": image.own_layer}[reference]


def cell_name(channel, state, reference, license) -> str:
    return f"channel={channel} state={state!r} reference={reference!r} license={license}"


@pytest.fixture(scope="module")
def world(distribution_factory, tmp_path_factory):
    registry = distribution_factory({"vendor-puller": "vendor-registry-pw-1"})
    pushed = push_images(registry, ["1.0", "1.1", "3.0", "3.1", "2.0", UNRELEASED])
    image = f"{registry.host}/{REPOSITORY}"
    extra = {"PORTAL_PROXY_AUTH_FAILURE_LIMIT": "100000"}  # the refused cells are failed logins
    grace = start_proxy_server(tmp_path_factory.mktemp("entitlements"), extra=extra)
    no_grace = None
    try:
        seeded = grace.call("tests.support.entitlements.seed_vendor", registry={
            "endpoint": registry.host, "username": registry.username,
            "password": registry.password,
        }, releases=[
            {"key": "own-promoted", "image": f"{image}:1.0", "channels": ["stable"]},
            {"key": "own-demoted", "image": f"{image}:1.1", "channels": ["stable"]},
            {"key": "other-promoted", "image": f"{image}:3.0", "channels": ["beta"]},
            {"key": "other-demoted", "image": f"{image}:3.1", "channels": ["beta"]},
            {"key": "draft", "image": f"{image}:2.0", "channels": []},
        ], customers=[
            {"name": CUSTOMERS["active"], "channel": "stable", "state": "active"},
            {"name": CUSTOMERS["expired"], "channel": "stable", "state": "expired"},
            {"name": CUSTOMERS["archived"], "channel": "stable", "state": "archived"},
            {"name": CUSTOMERS["re-keyed"], "channel": "stable", "state": "rekeyed"},
            {"name": CUSTOMERS["another app's"], "app": OTHER_APP, "channel": "stable",
             "state": "active"},
        ])
        licenses = {state: seeded["licenses"][name] for state, name in CUSTOMERS.items()}

        # The running install: the active license pulls release 1.1 whole, then it is demoted.
        target = tmp_path_factory.mktemp("before-demotion") / "oci"
        copied = skopeo_copy_all(grace.host, licenses["active"], f"{proxied_name()}:1.1", target)
        assert copied.returncode == 0, f"pulling 1.1 before its demotion: {copied.stderr[-2000:]}"
        # The proxy records the pull off the response path: wait for it, or go on and let the
        # grace cells say it was never recorded.
        pulled = wait_for(lambda: grace.call("tests.support.entitlements.pulled_releases",
                                             customer=CUSTOMERS["active"])["sequences"],
                          seconds=15)
        promotions = seeded["promotions"]
        grace.call("tests.support.entitlements.demote", promotion_ids=[
            promotions["own-demoted"]["stable"], promotions["other-demoted"]["beta"]])
        grace.restart_web()  # forget the decisions cached before the demotion
        no_grace = PortalStack(
            tmp_path_factory.mktemp("no-grace"), names=("web",), seed=None, migrate=False,
            debug=True, web_args=("--log-level", "warning"), extra_env={
                **extra, "LOG_LEVEL": "WARNING", "PORTAL_ENTITLEMENT_GRACE_DAYS": "0",
                "PORTAL_SQLITE_PATH": str(grace.directory / "portal.sqlite3"),
                "PORTAL_VAR_DIR": str(grace.directory / "var"),
            }).start()
        yield World(pushed, licenses, grace, no_grace, pulled)
    finally:
        if no_grace is not None:
            no_grace.stop()
        grace.stop()


@pytest.fixture(scope="module")
def clients(world):
    with world.grace.client() as grace, world.no_grace.client() as no_grace:
        yield {"grace": grace, "no grace": no_grace}


CELLS = list(itertools.product(CHANNELS, STATES, REFERENCES, LICENSES))


@pytest.mark.parametrize(("channel", "state", "reference", "license"), CELLS,
                         ids=[" | ".join(cell) for cell in CELLS])
def test_cell(world, clients, channel, state, reference, license):
    expected = oracle(channel, state, reference, license)
    client = clients["no grace" if state == "demoted with grace 0" else "grace"]
    answer = ask(client, world.licenses[license], path_of(world, channel, state, reference))
    where = cell_name(channel, state, reference, license)
    if state == "demoted within grace" and channel == "own" and not world.pulled_before_demotion:
        where += " (the pull before the demotion was never recorded as a PulledImage)"
    assert (answer.status, answer.code) == (expected.status, expected.code), (
        f"{where}: expected {expected.status} {expected.code}, got {answer}")
    assert expected.message.lower() in answer.message.lower(), (
        f"{where}: expected a message with {expected.message!r}, got {answer}")
    if expected.status == 200:
        assert answer.digest == expected_digest(world, channel, state, reference), (
            f"{where}: served other content than the pinned digest")


SKOPEO_CELLS = [(c, s, r, "active") for c, s, r in itertools.product(
    CHANNELS, STATES, MANIFEST_REFERENCES)] + [
    ("own", "promoted", "promoted tag", license) for license in LICENSE_REFUSALS]


@pytest.mark.parametrize(("channel", "state", "reference", "license"), SKOPEO_CELLS,
                         ids=[" | ".join(cell) for cell in SKOPEO_CELLS])
def test_cell_with_skopeo(world, channel, state, reference, license):
    expected = oracle(channel, state, reference, license)
    image = world.image(channel, state)
    server = world.server(state)
    name = proxied_name()
    spelled = {"promoted tag": f"{name}:{image.tag}", "other tag": f"{name}:{UNRELEASED}",
               "pinned digest": f"{name}@{image.digest}",
               "child manifest": f"{name}@{image.children[1]}"}[reference]
    result = skopeo_raw(server.host, world.licenses[license], spelled)
    where = cell_name(channel, state, reference, license)
    if expected.status == 200:
        assert result.returncode == 0, f"{where}: skopeo failed: {result.stderr[-1500:]}"
        from_manifest = json.loads(result.stdout)
        assert from_manifest["schemaVersion"] == 2
        got = "sha256:" + hashlib.sha256(result.stdout.encode()).hexdigest()
        assert got == expected_digest(world, channel, state, reference), where
    else:
        assert result.returncode != 0, f"{where}: skopeo read what it must not: {result.stdout[:300]}"
        assert expected.message.lower() in result.stderr.lower(), (
            f"{where}: skopeo's error does not say {expected.message!r}: {result.stderr[-1500:]}")


@pytest.mark.parametrize(("state", "by"), [
    ("promoted", "tag"), ("promoted", "digest"), ("demoted within grace", "digest"),
    ("demoted with grace 0", "digest")])
def test_copy_all_of_an_image_the_license_pulled_or_may_pull(world, tmp_path, state, by):
    image = world.image("own", state)
    expected = oracle("own", state, "promoted tag" if by == "tag" else "pinned digest", "active")
    reference = f":{image.tag}" if by == "tag" else f"@{image.digest}"
    result = skopeo_copy_all(world.server(state).host, world.licenses["active"],
                             proxied_name() + reference, tmp_path / "oci")
    where = f"skopeo copy --all of the own channel's {state} release by {by}"
    if expected.status != 200:
        assert result.returncode != 0, f"{where}: copied what it must not"
        assert expected.message in result.stderr.lower(), f"{where}: {result.stderr[-1500:]}"
        return
    assert result.returncode == 0, f"{where}: {result.stderr[-1500:]}"
    index = json.loads((tmp_path / "oci" / "index.json").read_text())["manifests"][0]
    assert index["digest"] == image.digest, where
    stored = {f"sha256:{p.name}" for p in (tmp_path / "oci" / "blobs" / "sha256").iterdir()}
    assert stored == image.tree, f"{where}: the copy holds other digests than the pinned tree"


@pytest.mark.parametrize(("server", "tags"), [("grace", ["1.0", "1.1"]), ("no grace", ["1.0"])])
def test_tags_list_shows_only_the_tags_the_license_may_pull(world, clients, server, tags):
    """The live release's tag, and within grace the tag of the demoted release it pulled."""
    response = clients[server].get(f"/v2/proxy/{proxied_name()}/tags/list",
                                   headers=basic(world.licenses["active"]))
    assert response.status_code == 200, response.text
    assert sorted(response.json()["tags"]) == tags
