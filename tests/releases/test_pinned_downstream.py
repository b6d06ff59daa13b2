"""What customers install is what was promoted: the rendered downstream and the KOTS download
carry each pinned image as ``name:tag@digest``, built by kubectl kustomize and read by yaml."""

import io
import tarfile

import pytest
import yaml
from django.urls import reverse

from registries.models import ExternalRegistry
from registries.oci.tree import manifest_tree
from registries.reference import parse
from releases.customer_portal.access import SESSION_KEY
from releases.downstream import downstream_for, release_pins
from releases.entitlements.models import ImagePin
from releases.kustomize import pinned_text, proxy_predicate, render_downstream
from releases.models import Release
from tests.releases.customer_portal.test_update_check import basic
from tests.releases.test_downstream import (
    ALL,
    LICENSE,
    PROXY,
    SLUG,
    build,
    deployment,
    final_images,
    render,
    yaml_file,
)
from tests.support.images import build_single, push
from tests.support.registry import make_client, push_test_image

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
D4 = "sha256:" + "4" * 64
WRITTEN_DIGEST = "sha256:" + "ab" * 32
ECR = "4999.dkr.ecr.us-east-2.amazonaws.com"
P = f"{PROXY}/proxy/{SLUG}"
NOTHING_PROXIED = proxy_predicate(linked_hosts=[], proxy_public_images=False)


def key(written: str) -> str:
    return str(parse(written))


# --- the rendered downstream, built by kubectl kustomize ---------------------------------------


def test_the_images_entries_carry_the_tag_and_the_pinned_digest(tmp_path):
    files = [("web.yaml", yaml_file(
        deployment("web", f"{ECR}/demo/api:1.0", "nginx", f"redis@{WRITTEN_DIGEST}"),
        deployment("other", "docker.io/library/nginx", "index.docker.io/library/nginx:latest"),
    ))]
    pins = {key(f"{ECR}/demo/api:1.0"): D1, key("nginx"): D2, key(f"redis@{WRITTEN_DIGEST}"): D3}
    out = render_pinned(files, pins)
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): f"{P}/{ECR}/demo/api:1.0@{D1}",
        ("Deployment", "web", "c1"): f"{P}/nginx:latest@{D2}",
        ("Deployment", "web", "c2"): f"{P}/redis@{WRITTEN_DIGEST}",  # written with a digest: as today
        ("Deployment", "other", "c0"): f"{P}/nginx:latest@{D2}",  # Docker Hub alias spellings
        ("Deployment", "other", "c1"): f"{P}/nginx:latest@{D2}",
    }
    images = yaml.safe_load(out.files["overlays/midstream/kustomization.yaml"])["images"]
    assert {"name": f"{ECR}/demo/api", "newName": f"{P}/{ECR}/demo/api", "newTag": "1.0",
            "digest": D1} in images
    rewrites = {r.written: r for r in out.images}
    assert rewrites["nginx"].proxied == f"{P}/nginx:latest@{D2}"
    assert rewrites["nginx"].how == "images"
    assert rewrites["nginx"].pinned == f"{P}/nginx:latest@{D2}"


def test_a_repository_with_two_tags_is_patched_to_each_pinned_digest(tmp_path):
    files = [("web.yaml", yaml_file(
        deployment("old", "nginx:1.25"), deployment("new", "docker.io/library/nginx:1.27", init=["nginx:1.25"])))]
    out = render_pinned(files, {key("nginx:1.25"): D1, key("nginx:1.27"): D2})
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "old", "c0"): f"{P}/nginx:1.25@{D1}",
        ("Deployment", "new", "c0"): f"{P}/docker.io/library/nginx:1.27@{D2}",
        ("Deployment", "new", "i0"): f"{P}/nginx:1.25@{D1}",
    }
    assert {(r.written, r.how, r.proxied) for r in out.images} == {
        ("nginx:1.25", "patch", f"{P}/nginx:1.25@{D1}"),
        ("docker.io/library/nginx:1.27", "patch", f"{P}/docker.io/library/nginx:1.27@{D2}"),
    }


def test_public_and_own_proxy_host_images_are_pinned_where_they_are(tmp_path):
    own = f"{P}/{ECR}/demo/api:2"
    files = [("web.yaml", yaml_file(
        deployment("web", "nginx:1.27", "library/redis:7", own, "busybox:1.36"),
        deployment("two", "quay.io/org/tool:1", "quay.io/org/tool:2"),
    ))]
    pins = {key("nginx:1.27"): D1, key("redis:7"): D2, key(own): D3,
            key("quay.io/org/tool:1"): D4}  # busybox and tool:2 unresolved: as today
    out = render_pinned(files, pins, is_proxied=NOTHING_PROXIED)
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): f"nginx:1.27@{D1}",
        ("Deployment", "web", "c1"): f"library/redis:7@{D2}",
        ("Deployment", "web", "c2"): f"{own}@{D3}",
        ("Deployment", "web", "c3"): "busybox:1.36",
        ("Deployment", "two", "c0"): f"quay.io/org/tool:1@{D4}",
        ("Deployment", "two", "c1"): "quay.io/org/tool:2",
    }
    rewrites = {r.written: r for r in out.images}
    assert rewrites["nginx:1.27"].pinned == f"nginx:1.27@{D1}"
    assert rewrites["nginx:1.27"].proxied == ""
    assert rewrites["nginx:1.27"].note == "public: pulled directly"
    assert rewrites[own].pinned == f"{own}@{D3}"
    assert rewrites["busybox:1.36"].pinned == "" and rewrites["busybox:1.36"].how == ""
    assert out.proxied_images == []


def test_a_proxied_and_a_public_tag_of_one_repository_are_both_pinned(tmp_path):
    files = [("web.yaml", yaml_file(deployment("web", "nginx:1.25", "nginx:1.27")))]
    proxied_125 = lambda ref: ref.tag == "1.25"  # noqa: E731
    out = render_pinned(files, {key("nginx:1.25"): D1, key("nginx:1.27"): D2}, is_proxied=proxied_125)
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): f"{P}/nginx:1.25@{D1}",
        ("Deployment", "web", "c1"): f"nginx:1.27@{D2}",
    }


def test_without_pins_the_downstream_is_byte_for_byte_as_before():
    files = [("web.yaml", yaml_file(deployment("web", "nginx:1.25", "nginx:1.27", f"{ECR}/a:1")))]
    assert render(files).files == render_pinned(files, {}).files
    assert render_pinned(files, {key("redis:7"): D1}).files == render(files).files


def render_pinned(files, pins, is_proxied=ALL):
    return render_downstream(files=files, app_slug=SLUG, license_id=LICENSE, proxy_host=PROXY,
                             is_proxied=is_proxied, registry_names={}, pins=pins)


# --- the KOTS download: the vendor's text with only the image scalars pinned -------------------

STYLED = f"""\
# The web tier: comments, quoting and flow style are the vendor's and stay.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # trailing comment
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: plain
          image: nginx:1.25   # unquoted
        - name: double
          image: "redis:7"
        - {{name: flow, image: 'quay.io/org/tool:1', ports: [{{containerPort: 80}}]}}
        - name: digest
          image: busybox:1.36@{WRITTEN_DIGEST}
        - name: unpinned
          image: alpine:3.20
        - name: anchored
          image: &web "{ECR}/demo/web:2"
        - name: aliased
          image: *web
---
apiVersion: v1
kind: Pod
metadata: {{name: debug}}
spec:
  containers: [{{name: c, image: nginx}}]
"""
STYLED_PINS = {key("nginx:1.25"): D1, key("redis:7"): D2, key("quay.io/org/tool:1"): D3,
               key(f"{ECR}/demo/web:2"): D4, key("nginx"): D1,
               key(f"busybox:1.36@{WRITTEN_DIGEST}"): WRITTEN_DIGEST}
STYLED_PINNED = (STYLED
                 .replace("image: nginx:1.25   #", f"image: nginx:1.25@{D1}   #")
                 .replace('image: "redis:7"', f'image: "redis:7@{D2}"')
                 .replace("image: 'quay.io/org/tool:1'", f"image: 'quay.io/org/tool:1@{D3}'")
                 .replace(f'&web "{ECR}/demo/web:2"', f'&web "{ECR}/demo/web:2@{D4}"')
                 .replace("image: nginx}]", f"image: nginx:latest@{D1}}}]"))


def containers(text) -> dict[str, str]:
    found = {}
    for document in yaml.safe_load_all(text):
        spec = document["spec"].get("template", {}).get("spec") or document["spec"]
        found.update({c["name"]: c["image"] for c in spec["containers"]})
    return found


def test_pinned_text_changes_only_the_image_scalars():
    pinned = pinned_text(STYLED, STYLED_PINS)
    assert pinned == STYLED_PINNED
    assert containers(pinned) == {
        "plain": f"nginx:1.25@{D1}", "double": f"redis:7@{D2}", "flow": f"quay.io/org/tool:1@{D3}",
        "digest": f"busybox:1.36@{WRITTEN_DIGEST}", "unpinned": "alpine:3.20",
        "anchored": f"{ECR}/demo/web:2@{D4}", "aliased": f"{ECR}/demo/web:2@{D4}",
        "c": f"nginx:latest@{D1}",
    }
    assert pinned_text(STYLED, {}) == STYLED
    assert pinned_text("a: [\n", STYLED_PINS) == "a: [\n"  # not YAML: as written


@pytest.fixture
def pinned_release(customer, alice):
    app = customer.app
    release = Release.create_next(app=app, user=alice, files=[
        ("web.yaml", STYLED), ("README.md", "# image: nginx:1.25\n")])
    release.promote_to(customer.channel, user=alice, version_label="2.0")
    for written, digest in STYLED_PINS.items():
        ref = parse(written)
        ImagePin.objects.create(release=release, reference=written, domain=ref.domain, path=ref.path,
                                tag=ref.tag or "", digest=digest)
    ImagePin.objects.create(release=release, reference=key("alpine:3.20"), domain="docker.io",
                            path="library/alpine", tag="3.20", digest="")  # unresolved
    return release


def kots_download(client, customer) -> dict[str, str]:
    response = client.get(f"/release/{customer.app.slug}", **basic(customer.license_id))
    assert response.status_code == 200, response.content
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}


def test_release_pins_are_the_resolved_digests_in_one_query(pinned_release, django_assert_num_queries):
    with django_assert_num_queries(1):
        pins = release_pins(pinned_release)
    assert pins == STYLED_PINS


def test_the_kots_download_serves_pinned_images_and_view_files_keeps_the_vendors_text(
        client, customer, pinned_release):
    files = kots_download(client, customer)
    assert files["web.yaml"] == STYLED_PINNED
    assert files["README.md"] == "# image: nginx:1.25\n"
    out = downstream_for(customer=customer, release=pinned_release)
    assert out.files["upstream/web.yaml"] == STYLED
    assert out.files["base/web.yaml"] == STYLED


def test_without_pins_the_kots_download_is_the_files_as_written(client, customer, alice):
    release = Release.create_next(app=customer.app, user=alice, files=[("web.yaml", STYLED)])
    release.promote_to(customer.channel, user=alice, version_label="2.0")
    assert kots_download(client, customer) == {"web.yaml": STYLED}


# --- a tag moved upstream after promotion ------------------------------------------------------


def test_a_tag_moved_upstream_still_installs_the_promoted_digest(
        settings, tmp_path, client, customer, alice, distribution_registry):
    settings.PORTAL_ALLOW_PRIVATE_REGISTRIES = True
    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    registry = distribution_registry
    app = customer.app
    ExternalRegistry.objects.create(team=app.team, endpoint=registry.host, name="loop")
    written = f"{registry.host}/demo/moving:1.0"
    promoted_digest = push_test_image(registry, "demo/moving", "1.0")

    release = Release.create_next(app=app, user=alice, files=[("web.yaml", yaml_file(deployment("web", written)))])
    release.promote_to(customer.channel, user=alice, version_label="2.0")
    # The pin as promotion takes it: the tree the tag resolved to then.
    upstream = make_client(registry.host, *registry.auth)
    tree = manifest_tree(upstream, "demo/moving", "1.0")
    ImagePin.objects.create(release=release, reference=key(written), domain=registry.host,
                            path="demo/moving", tag="1.0", digest=tree[0]["digest"], tree=tree)
    assert tree[0]["digest"] == promoted_digest

    moved_digest = push(build_single([2_000], seed=7), registry.url, "demo/moving", "1.0", auth=registry.auth)
    assert manifest_tree(upstream, "demo/moving", "1.0")[0]["digest"] == moved_digest != promoted_digest

    out = downstream_for(customer=customer, release=release)
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): f"proxy.example.com/proxy/{app.slug}/loop/demo/moving:1.0@{promoted_digest}"}
    (image,) = containers(kots_download(client, customer)["web.yaml"]).values()
    assert image == f"{written}@{promoted_digest}"


def test_view_files_shows_the_pinned_references(client, customer, alice):
    release = Release.create_next(app=customer.app, user=alice, files=[
        ("web.yaml", yaml_file(deployment("web", "nginx:1.25", f"{ECR}/demo/web:2")))])
    promotion = release.promote_to(customer.channel, user=alice, version_label="2.0")
    for written, digest in ((f"{ECR}/demo/web:2", D1), ("nginx:1.25", D2)):
        ref = parse(written)
        ImagePin.objects.create(release=release, reference=key(written), domain=ref.domain,
                                path=ref.path, tag=ref.tag, digest=digest)
    ExternalRegistry.objects.create(team=customer.app.team, endpoint=ECR, name="ecr")
    session = client.session
    session[SESSION_KEY] = customer.license_id
    session.save()
    response = client.get(reverse("releases-portal-files", args=[promotion.channel_sequence]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"/{ECR}/demo/web:2@{D1}</code>" in page  # proxied, pinned
    assert f"<code>nginx:1.25@{D2}</code>" in page  # public, pulled directly, pinned


def test_an_own_proxy_host_image_named_like_a_proxied_one_keeps_its_own_pin(tmp_path):
    """Kustomize applies images: entries after patches, by name: ``<proxy>/…/nginx`` kept where
    it is must not become an entry that also matches what ``nginx`` was rewritten to."""
    own = f"{P}/nginx:1"
    files = [("web.yaml", yaml_file(deployment("web", "nginx:1.25", own)))]
    out = render_pinned(files, {key("nginx:1.25"): D1, key(own): D2})
    assert final_images(build(tmp_path, out)) == {
        ("Deployment", "web", "c0"): f"{P}/nginx:1.25@{D1}",
        ("Deployment", "web", "c1"): f"{own}@{D2}",
    }
