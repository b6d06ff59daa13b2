"""The promote page in a browser: a stale verdict is checked again, and the page shows the
image moving from "Checking…" to its verdict and digest (htmx polling), then promotes and pins."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from releases.entitlements.models import ImagePin
from releases.image_check import services
from releases.image_check.models import VERDICT_TTL, ImageVerdict, Verdict
from tests.conftest import PASSWORD
from tests.releases.test_pins import PUBLIC_HOST, hosts, new_release, registry  # noqa: F401
from tests.support import images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_promote_page_shows_each_check_reaching_its_verdict(page, live_server, alice,
                                                                sample_app, hosts, registry):  # noqa: F811
    digest = images.push(images.build_single([900], seed=31), registry.url, "pub/live", "1.0")
    ref = f"{PUBLIC_HOST}/pub/live:1.0"
    release = new_release(sample_app, alice, ref)
    ImageVerdict.objects.update_or_create(app=sample_app, reference=ref, defaults={
        "verdict": Verdict.PUBLIC, "checked_at": release.created_at - VERDICT_TTL
        - timedelta(minutes=1)})

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/apps/")
    page.goto(f"{live_server.url}/apps/{sample_app.slug}/releases/{release.sequence}/promote/")

    row = page.locator("#promote-checks li").filter(has_text=ref)
    expect(row).to_have_attribute("data-verdict", "checking")
    expect(row).to_contain_text("Checking…")

    services.release_check_images(release_id=release.pk)  # the worker's check

    expect(row).to_have_attribute("data-verdict", "public", timeout=15_000)
    expect(row).to_contain_text(digest)
    page.get_by_label("Version label").fill("7.0")
    page.get_by_role("button", name="Promote", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"Release {release.sequence} promoted")
    assert ImagePin.objects.get(release=release).digest == digest
