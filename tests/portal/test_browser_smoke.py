import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_alice_logs_in_and_sees_her_app(page, live_server, alice, sample_app):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/apps/")
    assert "Apps" in page.content()
