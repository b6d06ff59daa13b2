"""The customer page in Chromium: sign in, Check for Updates (htmx), View Files."""

import re

import pytest
from playwright.sync_api import expect

from registries.models import ExternalRegistry
from releases.models import Release
from tests.conftest import NGINX_DEPLOYMENT

pytestmark = pytest.mark.browser

ECR = "4999.dkr.ecr.us-east-2.amazonaws.com"


def test_a_customer_checks_for_updates_and_views_the_proxied_image(page, live_server, settings, customer, alice):
    settings.PORTAL_PROXY_HOST = "portal.example.com"
    app = customer.app
    ExternalRegistry.objects.create(team=app.team, endpoint=ECR, name="ecr")

    page.goto(f"{live_server.url}/customer/")
    page.get_by_label("License ID").fill(customer.license_id)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Version History")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("0.0.1"))).to_be_visible()

    # Meanwhile the vendor promotes the walkthrough's release with the private ECR image.
    release = Release.create_next(app=app, user=alice, files=[
        ("deployment.yaml", NGINX_DEPLOYMENT.replace("image: nginx", f"image: {ECR}/demo-apps/nginx:latest")),
    ])
    release.promote_to(customer.channel, user=alice, version_label="0.0.2", release_notes="Private image.")

    page.get_by_role("link", name="Check for Updates").click()
    updates = page.locator("#updates")
    expect(updates).to_contain_text("1 new release")
    expect(updates).to_contain_text("0.0.2")
    assert page.url == f"{live_server.url}/customer/"  # htmx swapped the fragment in place

    updates.get_by_role("link", name="View Files").click()
    page.wait_for_url(f"{live_server.url}/customer/releases/2/")
    kustomization = page.get_by_role("region", name="overlays/midstream/kustomization.yaml")
    expect(kustomization).to_contain_text(f"newName: portal.example.com/proxy/{app.slug}/{ECR}/demo-apps/nginx")
    expect(kustomization).to_contain_text(f"name: {ECR}/demo-apps/nginx")
    expect(page.locator("pre.commands")).to_contain_text(
        f"podman pull portal.example.com/proxy/{app.slug}/{ECR}/demo-apps/nginx:latest"
    )
