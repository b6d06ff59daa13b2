"""The walkthrough in a browser: step 3 "Update Definition Files" of using-ecr-for-private-images.md.

alice opens MySampleECRApp, points deployment.yaml at the ECR image, saves, promotes to Unstable
and finds the new release and its one-line diff in the history.
"""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases.image_check.models import ImageVerdict, Verdict
from releases.models import Promotion
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ECR_IMAGE = "4999999999999.dkr.ecr.us-east-2.amazonaws.com/demo-apps/nginx"


def test_alice_points_deployment_yaml_at_ecr_promotes_and_sees_the_diff(page, live_server, alice, sample_app):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/apps/")

    page.get_by_role("link", name="MySampleECRApp").click()
    expect(page.get_by_role("heading", name="MySampleECRApp")).to_be_visible()
    page.get_by_role("button", name="Create new release").click()
    expect(page.get_by_role("heading", name="Edit release 2")).to_be_visible()

    editor = page.get_by_label("Content of the file (YAML)")
    text = editor.input_value()
    assert "image: nginx\n" in text
    editor.fill(text.replace("image: nginx\n", f"image: {ECR_IMAGE}\n"))
    editor.press("End")  # a keyup: the live check (htmx) lists the new image
    check = page.locator("#yaml-check")
    expect(check).to_contain_text("YAML OK")
    expect(check).to_contain_text(ECR_IMAGE)

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved deployment.yaml")

    # No worker runs here: stand in for its image check, which found the image private and
    # readable through the linked registry (promoting waits for fresh verdicts).
    ImageVerdict.objects.update_or_create(
        app=sample_app, reference=f"{ECR_IMAGE}:latest",
        defaults={"verdict": Verdict.PRIVATE, "checked_at": timezone.now()})
    page.get_by_role("link", name="Promote…").click()
    expect(page.get_by_label("Unstable")).to_be_checked()
    page.get_by_label("Version label").fill("0.0.2")
    page.get_by_label("Release notes").fill("Pull nginx from our ECR repository")
    page.get_by_role("button", name="Promote", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Release 2 promoted to Unstable as 0.0.2")

    page.get_by_role("link", name="Release history").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Release 2", exact=True))
    expect(row).to_contain_text("Unstable #2 · 0.0.2")
    expect(row).to_contain_text("Pull nginx from our ECR repository")
    row.get_by_role("link", name="Diff").click()

    expect(page).to_have_url(re.compile(r"/apps/mysampleecrapp/releases/2/diff/$"))
    diff = page.get_by_role("region", name="Diff of deployment.yaml")
    expect(diff.locator(".line.del")).to_have_text(["-          image: nginx"])
    expect(diff.locator(".line.add")).to_have_text([f"+          image: {ECR_IMAGE}"])
    assert Promotion.objects.filter(channel__slug="unstable", version_label="0.0.2", release__sequence=2).exists()
