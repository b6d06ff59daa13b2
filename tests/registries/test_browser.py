"""In Chromium: Add External Registry with a wrong secret shows why; the right keys turn Connected.

The portal runs as separate processes (web server, Celery worker, Redis, a SQLite file both see).
"""

import pytest

from tests.support.processes import PortalStack
from tests.support.registry import ECR_HOST, push_test_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def stack(request, tmp_path, ecr_registry, moto_server):
    broker = request.getfixturevalue("redis_server")
    portal = PortalStack(tmp_path, broker.url, seed="team", debug=True, extra_env={
        "LOG_LEVEL": "INFO", "PORTAL_REGISTRY_HOST_MAP": ecr_registry.extra["host_map"]})
    try:
        yield portal.start()
    finally:
        portal.stop()


def test_add_external_registry_shows_the_reason_then_connects(page, stack, aws_users, ecr_registry):
    push_test_image(ecr_registry, "demo-apps/nginx", "latest")
    secrets = [aws_users.reader.secret_access_key, aws_users.wrong_secret.secret_access_key]
    page.goto(f"{stack.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Images").click()
    page.get_by_role("link", name="Add External Registry").click()

    page.get_by_label("Provider").select_option(label="Amazon ECR")
    assert "AWS Access Key ID" in page.locator("#id_username_help").inner_text()
    page.get_by_label("Endpoint").fill(ECR_HOST)
    page.get_by_label("Username").fill(aws_users.wrong_secret.access_key_id)
    page.get_by_label("Password").fill(aws_users.wrong_secret.secret_access_key)
    page.get_by_label("Test image").fill("demo-apps/nginx:latest")
    page.get_by_role("button", name="Add registry").click()

    row = page.locator("#registry-table tr", has_text=ECR_HOST)
    row.locator('[data-status="failed"]').wait_for(timeout=30_000)
    assert "Secret Access Key is wrong" in row.inner_text()

    row.get_by_role("link", name=ECR_HOST).click()
    page.get_by_role("link", name="Edit").click()
    assert page.get_by_label("Password").input_value() == ""
    page.get_by_label("Username").fill(aws_users.reader.access_key_id)
    page.get_by_label("Password").fill(aws_users.reader.secret_access_key)
    page.get_by_role("button", name="Save registry").click()
    page.locator('#status-panel [data-status="connected"]').wait_for(timeout=30_000)
    assert "can read demo-apps/nginx:latest" in page.locator("#status-panel").inner_text()
    assert "ecr:GetAuthorizationToken" in page.locator("#iam-policy").inner_text()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Images").click()
    page.locator('#registry-table [data-status="connected"]').wait_for(timeout=10_000)
    html = page.content()
    for secret in secrets:
        assert secret not in html
