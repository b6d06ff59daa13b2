# ruff: noqa: F811  (pytest fixtures imported from tests/support/registry.py)
"""The private-image check: public, private and linked, private and not linked; the pages."""

from __future__ import annotations

import pytest

from registries.models import ExternalRegistry
from releases.downstream import downstream_for, proxied_repositories
from releases.image_check import selectors, services, tasks
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import Release
from releases.proxy.models import PullEvent
from tests.conftest import login
from tests.support import images
from tests.support.registry import ECR_HOST, MOTO_TOKEN_PASSWORD, start_distribution

PUBLIC_HOST = "public.example.com"


@pytest.fixture(scope="module")
def public_registry(tmp_path_factory):
    registry = start_distribution(tmp_path_factory.mktemp("public"))
    images.push(images.build_single([20_000], seed=3), registry.url, "pub/app", "1.0")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def private_image(ecr_registry):
    image = images.build_single([20_000], seed=4)
    images.push(image, ecr_registry.url, "demo/private", "1.0", auth=("AWS", MOTO_TOKEN_PASSWORD))
    return f"{ECR_HOST}/demo/private:1.0"


@pytest.fixture
def hosts(settings, ecr_env, public_registry):
    settings.PORTAL_REGISTRY_HOST_MAP = f"{ecr_env.extra['host_map']},{PUBLIC_HOST}={public_registry.url}"


@pytest.fixture
def linked(team, aws_users):
    registry = ExternalRegistry(team=team, endpoint=ECR_HOST, provider="ecr",
                                username=aws_users.reader.access_key_id,
                                ecr_account="123456789012", ecr_region="us-east-1")
    registry.secret = aws_users.reader.secret_access_key
    registry.save()
    return registry


def deployment(image: str) -> str:
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
            f"    spec:\n      containers:\n        - name: web\n          image: {image}\n")


@pytest.fixture
def release(sample_app, alice, private_image):
    return Release.create_next(app=sample_app, user=alice, files=[
        ("public.yaml", deployment(f"{PUBLIC_HOST}/pub/app:1.0")),
        ("private.yaml", deployment(private_image)),
    ])


def verdicts(app) -> dict[str, str]:
    return dict(ImageVerdict.objects.filter(app=app).values_list("reference", "verdict"))


def test_public_private_linked_and_private_unlinked(hosts, release, private_image, linked):
    app = release.app
    services.release_check_images(release_id=release.pk)
    found = verdicts(app)
    assert found[f"{PUBLIC_HOST}/pub/app:1.0"] == Verdict.PUBLIC
    assert found[private_image] == Verdict.PRIVATE
    # Not linked any more: customers will fail to pull it.
    linked.delete()
    services.release_check_images(release_id=release.pk, force=True)
    row = ImageVerdict.objects.get(app=app, reference=private_image)
    assert row.verdict == Verdict.UNLINKED and row.fails
    assert "customers will fail to pull" in row.message
    assert selectors.release_failing_images(release) == [private_image]


def test_a_linked_registry_for_another_app_does_not_count(hosts, release, private_image, linked,
                                                          team):
    from releases.models import App

    other = App.create_with_channels(team=team, name="Other", slug="other")
    linked.apps.add(other)
    services.release_check_images(release_id=release.pk)
    assert verdicts(release.app)[private_image] == Verdict.UNLINKED


def test_verdicts_are_cached(hosts, release, linked):
    assert services.release_check_images(release_id=release.pk) == 2
    assert services.release_check_images(release_id=release.pk) == 0


def test_the_downstream_follows_the_verdicts(hosts, release, private_image, linked, customer):
    app = release.app
    services.release_check_images(release_id=release.pk)
    out = downstream_for(customer=customer, release=release)
    proxied = {r.written: r.proxied for r in out.images}
    assert proxied[private_image].endswith(f"/proxy/{app.slug}/{ECR_HOST}/demo/private:1.0")
    assert not proxied[f"{PUBLIC_HOST}/pub/app:1.0"]  # public: left alone
    app.proxy_public_images = True
    app.save()
    out = downstream_for(customer=customer, release=release)
    assert all(r.proxied for r in out.images)


def test_the_allow_list_leaves_out_unpullable_images(hosts, release, private_image, alice):
    services.release_check_images(release_id=release.pk)  # not linked
    release.promote_to(release.app.channels.get(slug="stable"), user=alice, version_label="2")
    assert f"{ECR_HOST}/demo/private" not in proxied_repositories(release.app)


# --- pages --------------------------------------------------------------------------------


def test_the_release_page_polls_until_every_verdict_is_in(client, alice, hosts, release, linked,
                                                          private_image):
    login(client, alice)
    page = client.get(f"/apps/{release.app.slug}/releases/{release.sequence}/")
    assert page.status_code == 200
    assert 'id="image-checks"' in page.text and 'hx-trigger="every 2s"' in page.text
    assert "Checking…" in page.text
    services.release_check_images(release_id=release.pk)
    part = client.get(f"/apps/{release.app.slug}/releases/{release.sequence}/images/",
                      HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in part.text
    assert "Private, proxied" in part.text and "Public" in part.text


def test_the_release_page_warns_about_a_failing_image(client, alice, hosts, release):
    services.release_check_images(release_id=release.pk)
    login(client, alice)
    part = client.get(f"/apps/{release.app.slug}/releases/{release.sequence}/images/")
    assert "Customers will fail to pull" in part.text
    assert "cannot be pulled by customers" in part.text


def test_check_again_is_for_editors_only(client, sam, release):
    login(client, sam)
    response = client.post(f"/apps/{release.app.slug}/releases/{release.sequence}/images/")
    assert response.status_code == 403


def test_the_proxy_public_images_toggle(client, alice, sam, sample_app):
    login(client, sam)
    assert client.post(f"/apps/{sample_app.slug}/proxy-public/",
                       {"proxy_public_images": "on"}).status_code == 403
    login(client, alice)
    page = client.get(f"/apps/{sample_app.slug}/edit/")
    assert "Proxy public images too" in page.text
    response = client.post(f"/apps/{sample_app.slug}/proxy-public/", {"proxy_public_images": "on"})
    assert response.status_code == 302
    sample_app.refresh_from_db()
    assert sample_app.proxy_public_images
    client.post(f"/apps/{sample_app.slug}/proxy-public/", {})
    sample_app.refresh_from_db()
    assert not sample_app.proxy_public_images


def test_pull_logs_show_on_the_registry_and_customer_pages(client, alice, customer, linked):
    PullEvent.objects.create(app=customer.app, customer=customer, registry=linked,
                             image=f"{ECR_HOST}/demo/app", reference="1.0", kind="manifest",
                             status=200, bytes=1234)
    login(client, alice)
    registry_page = client.get(f"/registries/{linked.pk}/")
    assert "Pull activity" in registry_page.text and "Big Bank" in registry_page.text
    assert f"{ECR_HOST}/demo/app" in registry_page.text
    customer_page = client.get(f"/customers/{customer.pk}/")
    assert "Pull activity" in customer_page.text and "GET manifest" in customer_page.text


def test_a_blob_cut_short_says_so_in_the_pull_log(client, alice, customer, linked):
    PullEvent.objects.create(app=customer.app, customer=customer, registry=linked,
                             image=f"{ECR_HOST}/demo/app", reference="sha256:" + "a" * 64,
                             kind="blob", status=499, bytes=1 << 20)
    login(client, alice)
    page = client.get(f"/customers/{customer.pk}/").text
    assert "499 cut short" in page and "1.0\xa0MB" in page


# --- every check ends ------------------------------------------------------------------------


def test_an_unexpected_error_is_could_not_check_logged_once(client, alice, hosts, release,
                                                            linked, monkeypatch, caplog):
    from registries.oci.client import RegistryClient

    def broken(self, repository, reference, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(RegistryClient, "head_manifest", broken)
    tasks.check_release_images(release.pk)
    rows = ImageVerdict.objects.filter(app=release.app)
    assert rows.count() == 2
    for row in rows:
        assert row.verdict == Verdict.ERROR
        assert row.message.startswith("Could not check") and "KeyError" in row.message
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all(r.exc_info for r in errors)  # once per image
    assert aws_secret(linked) not in caplog.text
    login(client, alice)
    part = client.get(f"/apps/{release.app.slug}/releases/{release.sequence}/images/",
                      HTTP_HX_REQUEST="true")
    assert part.status_code == 286  # htmx stops polling: every verdict is in
    assert "Could not check" in part.text


def aws_secret(registry) -> str:
    return registry.secret


def test_a_stored_registry_endpoint_the_client_cannot_use_is_could_not_check(sample_app, alice,
                                                                              team):
    registry = ExternalRegistry(team=team, endpoint="256.1.1.1", provider="other",
                                username="u", name="old")
    registry.secret = "old-secret"
    registry.save()
    release = Release.create_next(app=sample_app, user=alice, files=[
        ("app.yaml", deployment("256.1.1.1/team/app:1.0"))])
    tasks.check_release_images(release.pk)
    row = ImageVerdict.objects.get(app=sample_app)
    assert row.verdict == Verdict.ERROR
    assert "Not a valid endpoint" in row.message and "old-secret" not in row.message
