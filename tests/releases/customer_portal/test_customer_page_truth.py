"""The customer's page tells the truth: how each image is pulled, which release is Latest after
Check for Updates, how long pulled images outlive a removed release; and the vendor's customer
page points at what the customer sees."""

import html
import re

import pytest
from django.utils.html import escape

from registries.models import ExternalRegistry
from releases.customer_portal.access import SESSION_KEY
from releases.image_check.models import ImageVerdict, Verdict
from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT, login

HOME = "/customer/"
ECR = "4999.dkr.ecr.us-east-2.amazonaws.com"
UNLINKED = "ghcr.io/acme/unlinked:1.0"
CHECKING = "quay.io/acme/checking:1.0"
UNKNOWN = "registry.acme.example/never-checked:1.0"
ERROR = "registry.acme.example/broken:1.0"
PUBLIC = "docker.io/library/redis:7"

MANY_IMAGES = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  template:
    spec:
      containers:
        - {{name: private, image: "{ECR}/demo-apps/api:2.1"}}
        - {{name: unlinked, image: "{UNLINKED}"}}
        - {{name: checking, image: "{CHECKING}"}}
        - {{name: unknown, image: "{UNKNOWN}"}}
        - {{name: error, image: "{ERROR}"}}
        - {{name: public, image: "{PUBLIC}"}}
"""


@pytest.fixture(autouse=True)
def _proxy_host(settings):
    settings.PORTAL_PROXY_HOST = "portal.example.com"


@pytest.fixture
def signed_in(client, customer):
    session = client.session
    session[SESSION_KEY] = customer.license_id
    session.save()
    return client


def promote(customer, alice, label, files):
    release = Release.create_next(app=customer.app, user=alice, files=files)
    return release.promote_to(customer.channel, user=alice, version_label=label)


def verdict(app, reference, value):
    ImageVerdict.objects.create(app=app, reference=reference, verdict=value)


def image_rows(page: str) -> dict[str, str]:
    """{image as written: the text of its row} of the Images table."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        written = re.search(r"<td><code>([^<]+)</code>", row)
        if written:
            rows[written.group(1)] = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)))
    return rows


@pytest.mark.parametrize("url", [HOME, "/customer/releases/2/"])
def test_each_image_says_how_it_is_pulled(signed_in, customer, alice, url):
    app = customer.app
    ExternalRegistry.objects.create(team=app.team, endpoint=ECR)
    promote(customer, alice, "0.0.2", [("deployment.yaml", MANY_IMAGES)])
    verdict(app, f"{ECR}/demo-apps/api:2.1", Verdict.PRIVATE)
    verdict(app, UNLINKED, Verdict.UNLINKED)
    verdict(app, CHECKING, Verdict.CHECKING)
    verdict(app, ERROR, Verdict.ERROR)
    verdict(app, PUBLIC, Verdict.PUBLIC)

    rows = image_rows(signed_in.get(url).content.decode())

    private = rows[f"{ECR}/demo-apps/api:2.1"]
    assert "pulled through the portal's proxy" in private
    assert f"portal.example.com/proxy/{app.slug}/{ECR}/demo-apps/api:2.1" in private
    assert "cannot be pulled yet: the vendor must link its registry" in rows[UNLINKED]
    assert "being checked" in rows[CHECKING]
    assert "being checked" in rows[UNKNOWN]
    assert "could not be checked" in rows[ERROR]
    assert "public: pulled directly" in rows[PUBLIC]
    for image in (UNLINKED, CHECKING, UNKNOWN, ERROR):
        assert "public" not in rows[image], image
        assert "pulled directly" not in rows[image], image


def test_a_public_image_the_vendor_proxies_says_proxied(signed_in, customer):
    app = customer.app
    app.proxy_public_images = True
    app.save()
    verdict(app, "docker.io/library/nginx:latest", Verdict.PUBLIC)
    rows = image_rows(signed_in.get(HOME).content.decode())
    assert "pulled through the portal's proxy" in rows["nginx"]
    assert "public: pulled directly" not in rows["nginx"]


def test_no_proxied_image_does_not_claim_they_are_all_public(signed_in, customer, alice):
    promote(customer, alice, "0.0.2", [("deployment.yaml", NGINX_DEPLOYMENT.replace(
        "image: nginx", f"image: {UNLINKED}"))])
    verdict(customer.app, UNLINKED, Verdict.UNLINKED)
    page = signed_in.get(HOME).content.decode()
    assert "pulled from where they are published" not in page
    assert "cannot be pulled yet: the vendor must link its registry" in page


def test_the_history_after_check_for_updates_marks_only_the_newest_latest(signed_in, customer, alice):
    promote(customer, alice, "0.0.2", [("deployment.yaml", NGINX_DEPLOYMENT)])
    response = signed_in.get("/customer/updates/", {"channelSequence": "1"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert "1 new release" in page
    history = re.search(r'<div id="history"[^>]*hx-swap-oob="true"[^>]*>(.*?)</table>', page, flags=re.S)
    assert history, "the htmx answer replaces the version history out of band"
    rows = re.findall(r"<tr>(.*?)</tr>", history.group(1), flags=re.S)
    latest = [r for r in rows if "Latest" in r]
    assert len(latest) == 1 and "0.0.2" in latest[0]
    # The next check asks for what is newer than the release now shown.
    assert "channelSequence=2" in page and 'id="check-updates"' in page


def test_an_up_to_date_check_leaves_the_history_alone(signed_in, customer):
    page = signed_in.get("/customer/updates/", {"channelSequence": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert "You are up to date" in page and "hx-swap-oob" not in page


@pytest.mark.parametrize("days, sentence", [
    (30, "images you already pulled keep working for 30 days"),
    (1, "images you already pulled keep working for 1 day;"),
    (0, "its images stop at once"),
])
def test_the_page_says_how_long_pulled_images_outlive_a_removed_release(signed_in, settings, days, sentence):
    settings.PORTAL_ENTITLEMENT_GRACE_DAYS = days
    page = signed_in.get(HOME).content.decode()
    assert escape(sentence) in page


@pytest.mark.parametrize("persona", ["alice", "bob", "sam"])
def test_the_vendor_sees_the_customer_portal_address_and_how_to_sign_in(client, request, settings, customer, persona):
    settings.PORTAL_URL = "https://portal.example.com"
    login(client, request.getfixturevalue(persona))
    page = client.get(f"/customers/{customer.pk}/").content.decode()
    assert '<a href="https://portal.example.com/customer/"' in page
    assert "sign in with the license file" in page and "license ID" in page
    if persona == "sam":
        assert customer.license_id not in page  # the hint names the credential, never shows it


def test_another_team_does_not_see_the_customer(client, mallory, customer):
    login(client, mallory)
    assert client.get(f"/customers/{customer.pk}/").status_code == 404
