"""In Chromium: the S3 option of Add External Registry shows for Amazon ECR only."""

import pytest

from tests.support.processes import PortalStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LABEL = "Let customers download layers directly from AWS S3"


@pytest.fixture
def stack(tmp_path):
    portal = PortalStack(tmp_path, names=("web",), seed="team", debug=True)
    try:
        yield portal.start()
    finally:
        portal.stop()


def test_the_option_follows_the_provider_and_is_unticked_when_it_goes(page, stack):
    page.goto(f"{stack.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{stack.url}/registries/add/")
    option = page.get_by_label(LABEL)
    assert page.get_by_label("Provider").input_value() == "ecr" and option.is_visible()
    option.check()
    page.get_by_label("Provider").select_option(label="Docker Hub")
    assert not option.is_visible() and not option.is_checked()
    page.get_by_label("Provider").select_option(label="Amazon ECR")
    assert option.is_visible() and not option.is_checked()
