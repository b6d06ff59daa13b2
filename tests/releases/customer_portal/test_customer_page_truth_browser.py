"""In Chromium: after Check for Updates finds a release, the history marks only it Latest."""

import re

import pytest
from playwright.sync_api import expect

from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT

pytestmark = pytest.mark.browser


def test_check_for_updates_moves_latest_to_the_new_release(page, live_server, customer, alice):
    page.goto(f"{live_server.url}/customer/")
    page.get_by_label("License ID").fill(customer.license_id)
    page.get_by_role("button", name="Sign in").click()
    history = page.locator("#history")
    expect(history.get_by_role("row", name=re.compile("0.0.1"))).to_contain_text("Latest")

    # Meanwhile the vendor promotes a new release to the customer's channel.
    release = Release.create_next(app=customer.app, user=alice, files=[("deployment.yaml", NGINX_DEPLOYMENT)])
    release.promote_to(customer.channel, user=alice, version_label="0.0.2")

    page.get_by_role("link", name="Check for Updates").click()
    expect(page.locator("#updates")).to_contain_text("1 new release")
    assert page.url == f"{live_server.url}/customer/"  # swapped in place, not a new page
    expect(history.get_by_role("row", name=re.compile("0.0.2"))).to_contain_text("Latest")
    expect(history.get_by_role("row", name=re.compile("0.0.1"))).not_to_contain_text("Latest")
    expect(history.get_by_text("Latest", exact=True)).to_have_count(1)

    # Checking again asks after the release now shown: nothing newer.
    page.get_by_role("link", name="Check for Updates").click()
    expect(page.locator("#updates")).to_contain_text("You are up to date: no release newer than sequence 2")
