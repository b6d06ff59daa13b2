"""What the entitlement tests build: a repository of multi-platform images, the vendor's state
behind a real proxy, and the OCI requests and skopeo runs that ask what a license may pull.

``push_images(registry, tags)`` pushes one two-platform OCI index per tag into ``REPOSITORY``
(own layers per tag, so no blob is shared between tags) and returns ``{tag: UpstreamImage}``:
the index digest, its child manifests' digests and its blobs.

The functions under "inside the server" run in the stack's environment
(``stack.call("tests.support.entitlements.<name>", ...)``) and change the vendor's state through
the product's services, as the vendor's pages do: ``seed_vendor`` (team, apps, the linked
registry, releases checked by the private-image check, promoted, customers made expired,
archived or re-keyed through the customer services), ``demote`` and ``pulled_releases``.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.contrib.auth import get_user_model
from django.utils import timezone

from portal.models import Membership, Role, Team
from registries.models import ExternalRegistry, Provider
from releases import services
from releases.entitlements.models import PulledImage
from releases.image_check.services import release_check_images
from releases.models import App, Customer, Promotion, Release
from tests.support import images
from tests.support.manifests import deployment_yaml
from tests.support.servers import require_binary

REPOSITORY = "acme/app"
REGISTRY_NAME = "vendor"  # the linked registry's Name: the proxied name starts with it
APP = "acme"
OTHER_APP = "otherapp"
MANIFEST_ACCEPT = ", ".join([images.OCI_INDEX, images.OCI_MANIFEST, images.DOCKER_LIST,
                             images.DOCKER_MANIFEST])


@dataclass(frozen=True)
class UpstreamImage:
    tag: str
    digest: str  # the index
    children: tuple[str, ...]  # its platform manifests
    blobs: tuple[str, ...]  # configs and layers
    own_layer: str  # a layer of this image only (not the layer its platforms share)

    @property
    def tree(self) -> set[str]:
        return {self.digest, *self.children, *self.blobs}


def push_images(registry, tags: list[str], *, seed: int = 100) -> dict[str, UpstreamImage]:
    """One small two-platform index per tag in ``REPOSITORY`` of ``registry``."""
    out = {}
    for i, tag in enumerate(tags):
        index = images.build_index(layer_sizes=[3_000], shared_size=2_000, seed=seed + i)
        images.push(index, registry.url, REPOSITORY, tag, auth=registry.auth)
        out[tag] = UpstreamImage(
            tag=tag, digest=index.digest, children=tuple(img.digest for img in index.images),
            blobs=tuple(b.digest for b in index.blobs), own_layer=index.images[0].layers[-1].digest)
    return out


# --- asking the proxy ------------------------------------------------------------------------


def basic(license_id: str) -> dict[str, str]:
    pair = f"{license_id}:{license_id}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


@dataclass(frozen=True)
class Answer:
    status: int
    code: str  # the OCI error code, "" for a 200
    message: str
    digest: str  # sha256 of the body of a 200

    def __str__(self):
        return f"{self.status} {self.code} {self.message!r}".strip()


def ask(client: httpx.Client, license_id: str, path: str) -> Answer:
    """GET ``/v2/proxy/<path>`` as ``license_id`` (a manifest or a blob)."""
    response = client.get(f"/v2/proxy/{path}", headers={**basic(license_id),
                                                        "Accept": MANIFEST_ACCEPT})
    if response.status_code == 200:
        return Answer(200, "", "", "sha256:" + hashlib.sha256(response.content).hexdigest())
    try:
        error = response.json()["errors"][0]
        code, message = error.get("code", ""), error.get("message", "")
    except (ValueError, KeyError, IndexError, TypeError):
        code, message = "", response.text[:200]
    return Answer(response.status_code, code, message, "")


def skopeo(*args: str) -> subprocess.CompletedProcess:
    """skopeo ``args`` (not checked: the caller asserts the outcome)."""
    return subprocess.run([require_binary("skopeo"), *args], capture_output=True, text=True,
                          timeout=120)


def skopeo_raw(host: str, license_id: str, image: str) -> subprocess.CompletedProcess:
    """``skopeo inspect --raw`` of ``docker://<host>/proxy/<image>`` as ``license_id``."""
    return skopeo("inspect", "--raw", "--tls-verify=false", "--creds",
                  f"{license_id}:{license_id}", f"docker://{host}/proxy/{image}")


def skopeo_copy_all(host: str, license_id: str, image: str, target) -> subprocess.CompletedProcess:
    """``skopeo copy --all`` of ``docker://<host>/proxy/<image>`` into an OCI layout."""
    return skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds",
                  f"{license_id}:{license_id}", f"docker://{host}/proxy/{image}",
                  f"oci:{target}:copy")


def wait_for(check, *, seconds: float, step: float = 0.2):
    """``check()`` once it is truthy, or its last (falsy) value when the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# --- inside the server (manage.py shell) ------------------------------------------------------

def seed_vendor(*, registry: dict, releases: list[dict], customers: list[dict]) -> dict:
    """Team Acme with alice, apps ``APP`` and ``OTHER_APP``, the registry linked to ``APP``.

    ``registry``: {endpoint, username, password}. ``releases``: [{key, image, channels: [slug]}]
    in order; each is created, its images checked by the private-image check, then promoted to
    its channels (none: a draft). ``customers``: [{name, app?, channel, state}] with state
    ``active``, ``expired``, ``archived`` or ``rekeyed`` (its license ID regenerated: the old one
    is returned). Returns {"licenses": {name: id}, "promotions": {key: {channel: pk}}}.
    """
    team = Team.objects.create(name="Acme")
    alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-1234")
    Membership.objects.create(user=alice, team=team, role=Role.ADMIN)
    apps = {slug: App.create_with_channels(team=team, name=slug, slug=slug)
            for slug in (APP, OTHER_APP)}
    linked = ExternalRegistry(team=team, provider=Provider.OTHER, endpoint=registry["endpoint"],
                              username=registry["username"], name=REGISTRY_NAME, insecure=True)
    linked.secret = registry["password"]
    linked.save()
    linked.apps.add(apps[APP])

    app = apps[APP]
    out = {"licenses": {}, "promotions": {}}
    for n, spec in enumerate(releases):
        release = Release.create_next(app=app, user=alice,
                                      files=[("deployment.yaml", deployment_yaml("web", spec["image"]))])
        release_check_images(release_id=release.pk, force=True)
        promotions = services.release_promote(
            release=release, channels=[app.channels.get(slug=s) for s in spec["channels"]],
            user=alice, version_label=f"1.0.{n}") if spec["channels"] else []
        out["promotions"][spec["key"]] = {p.channel.slug: p.pk for p in promotions}

    for spec in customers:
        owner = apps[spec.get("app", APP)]
        customer = services.customer_create(
            customer=Customer(app=owner, channel=owner.channels.get(slug=spec["channel"]),
                              name=spec["name"]), user=alice)
        license_id = customer.license_id
        if spec["state"] == "expired":
            customer.expires_at = timezone.now() - timedelta(days=1)
            services.customer_update(customer=customer, user=alice)
        elif spec["state"] == "archived":
            services.customer_archive(customer=customer, user=alice)
        elif spec["state"] == "rekeyed":
            services.license_regenerate(customer=customer, user=alice)
        out["licenses"][spec["name"]] = license_id
    return out


def demote(*, promotion_ids: list[int]) -> dict:
    """Demote these promotions through the demote service (as the vendor's demote button)."""
    alice = get_user_model().objects.get(username="alice")
    for promotion in Promotion.objects.filter(pk__in=promotion_ids):
        services.promotion_demote(promotion=promotion, user=alice)
    return {"demoted": len(promotion_ids)}


def pulled_releases(*, customer: str) -> dict:
    """The sequences of the releases whose pins ``customer`` (by name) has pulled."""
    rows = PulledImage.objects.filter(customer__name=customer).select_related("pin__release")
    return {"sequences": sorted({row.pin.release.sequence for row in rows})}
