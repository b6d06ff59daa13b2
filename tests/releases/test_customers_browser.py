"""The customer pages in Chromium: htmx search and the app → channel choice, keyboard only."""

import pytest

from releases.models import App, Customer
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/apps/")


def test_alice_creates_a_customer_and_finds_it(page, live_server, alice, sample_app):
    other = App.create_with_channels(team=sample_app.team, name="Other App", slug="other-app")
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/customers/new/")
    assert page.get_by_label("Channel").input_value() == str(sample_app.channels.get(name="Unstable").pk)
    page.get_by_label("App").select_option(label="Other App")
    # htmx swaps in the other app's channels, Unstable chosen.
    page.wait_for_function(
        f"document.querySelector('#id_channel').value === '{other.channels.get(name='Unstable').pk}'"
    )
    page.get_by_label("Channel").select_option(label="Beta")
    page.get_by_label("Name").fill("Globex")
    page.get_by_label("Email").fill("it@globex.example")
    page.get_by_label("License type").select_option("paid")
    page.get_by_role("button", name="Create customer").click()
    page.wait_for_url(f"{live_server.url}/customers/*/")
    customer = Customer.objects.get(name="Globex")
    assert (customer.app, customer.channel.name, customer.license_type) == (other, "Beta", "paid")
    assert customer.license_id in page.content()

    page.goto(f"{live_server.url}/customers/")
    page.get_by_label("Search").fill("globex")
    page.wait_for_url("**/customers/?q=globex*")
    assert page.locator("#customer-results tbody tr").count() == 1


def test_sam_reads_customers_without_buttons(page, live_server, sam, customer):
    log_in(page, live_server, "sam")
    page.goto(f"{live_server.url}/customers/{customer.pk}/")
    assert page.get_by_role("heading", name="Big Bank").is_visible()
    assert page.get_by_role("link", name="Download license").count() == 0
    assert customer.license_id not in page.content()
