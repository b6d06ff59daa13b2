import logging

import pytest

from portal.models import AuditEvent
from portal.observability.logs import JsonFormatter
from releases.models import App, Customer
from tests.conftest import login


def make_customers(app, count, prefix="Customer"):
    channel = app.channels.get(name="Unstable")
    Customer.objects.bulk_create(
        Customer(app=app, channel=channel, name=f"{prefix} {i:04d}", email=f"c{i}@example.com") for i in range(count)
    )


def test_the_list_shows_the_teams_customers(client, alice, customer):
    response = login(client, alice).get("/customers/")
    assert response.status_code == 200
    assert b"Big Bank" in response.content and b"MySampleECRApp" in response.content
    assert b"New customer" in response.content


def test_the_list_hides_other_teams_customers(client, mallory, customer):
    response = login(client, mallory).get("/customers/")
    assert b"Big Bank" not in response.content


@pytest.mark.parametrize("query", ["bank", "BIGBANK.example", "ops@"])
def test_it_searches_by_name_and_email(client, alice, customer, sample_app, query):
    make_customers(sample_app, 3, prefix="Other")
    response = login(client, alice).get("/customers/", {"q": query})
    assert b"Big Bank" in response.content
    assert b"Other 0001" not in response.content


def test_search_answers_htmx_with_the_results_only(client, alice, customer):
    response = login(client, alice).get(
        "/customers/", {"q": "big"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="customer-results"
    )
    assert b'id="customer-results"' in response.content
    assert b"<html" not in response.content and b"Big Bank" in response.content


def test_it_paginates_25_per_page(client, alice, sample_app):
    make_customers(sample_app, 30)
    login(client, alice)
    first = client.get("/customers/").content.decode()
    assert "Customer 0024" in first and "Customer 0025" not in first
    assert "Page 1 of 2" in first
    second = client.get("/customers/", {"page": 2}).content.decode()
    assert "Customer 0025" in second and "Customer 0029" in second


def test_pagination_keeps_the_search(client, alice, sample_app):
    make_customers(sample_app, 30)
    content = login(client, alice).get("/customers/", {"q": "customer"}).content.decode()
    assert "?q=customer&amp;page=2" in content


@pytest.mark.postgres
@pytest.mark.parametrize("count", [2, 120])
def test_the_list_uses_a_constant_number_of_queries(client, alice, sample_app, count, django_assert_max_num_queries):
    other = App.create_with_channels(team=sample_app.team, name="Other", slug="other")
    make_customers(sample_app, count)
    make_customers(other, count, prefix="Other")
    login(client, alice)
    with django_assert_max_num_queries(8):
        response = client.get("/customers/", {"q": "o"})
    assert response.status_code == 200


def test_archived_customers_are_hidden_unless_asked(client, alice, customer, django_user_model):
    login(client, alice)
    client.post(f"/customers/{customer.pk}/archive/")
    assert b">Big Bank</a>" not in client.get("/customers/").content
    assert b">Big Bank</a>" in client.get("/customers/", {"archived": "on"}).content


def test_admins_create_a_customer_on_unstable_by_default(client, alice, sample_app):
    login(client, alice)
    form = client.get("/customers/new/").context["form"]
    assert form["channel"].value() == sample_app.channels.get(name="Unstable").pk
    response = client.post("/customers/new/", {
        "name": "Acme Corp", "email": "it@acme.example", "app": sample_app.pk,
        "channel": sample_app.channels.get(name="Unstable").pk, "license_type": "trial",
        "expires_on": "2031-02-03",
    })
    customer = Customer.objects.get(name="Acme Corp")
    assert response.status_code == 302 and response["Location"] == f"/customers/{customer.pk}/"
    assert customer.license_type == "trial"
    assert customer.expires_at.isoformat() == "2031-02-03T00:00:00+00:00"
    event = AuditEvent.objects.get(action="create", object_type="customer")
    assert event.actor == alice and event.detail["channel"] == "Unstable"


def test_create_rejects_bad_input_and_keeps_it(client, alice, sample_app):
    response = login(client, alice).post("/customers/new/", {
        "name": "  ", "email": "not-an-email", "app": sample_app.pk,
        "channel": sample_app.channels.get(name="Stable").pk, "license_type": "gold", "expires_on": "soon",
    })
    assert response.status_code == 400
    content = response.content.decode()
    assert "Enter the customer&#x27;s name." in content or "This field is required." in content
    assert "Enter a valid email address." in content
    assert "Select a valid choice." in content
    assert "Enter a valid date." in content
    assert 'value="not-an-email"' in content and 'value="soon"' in content
    assert 'aria-invalid="true"' in content
    assert not Customer.objects.exists()


def test_create_rejects_a_channel_of_another_app(client, alice, sample_app):
    other = App.create_with_channels(team=sample_app.team, name="Other", slug="other")
    response = login(client, alice).post("/customers/new/", {
        "name": "X", "app": sample_app.pk, "channel": other.channels.first().pk, "license_type": "dev",
    })
    assert response.status_code == 400 and not Customer.objects.exists()


def test_create_rejects_another_teams_app(client, mallory, sample_app):
    response = login(client, mallory).post("/customers/new/", {
        "name": "X", "app": sample_app.pk, "channel": sample_app.channels.first().pk, "license_type": "dev",
    })
    assert response.status_code == 400 and not Customer.objects.exists()


def test_choosing_an_app_offers_its_channels(client, alice, sample_app):
    other = App.create_with_channels(team=sample_app.team, name="Other", slug="other")
    response = login(client, alice).get(
        "/customers/new/", {"app": other.pk}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="channel-field"
    )
    content = response.content.decode()
    assert 'id="channel-field"' in content and "<html" not in content
    assert f'value="{other.channels.get(name="Unstable").pk}" selected' in content
    assert f'value="{sample_app.channels.get(name="Unstable").pk}"' not in content


def test_admins_change_the_channel(client, alice, customer, sample_app):
    stable = sample_app.channels.get(name="Stable")
    response = login(client, alice).post(f"/customers/{customer.pk}/edit/", {
        "name": "Big Bank", "email": "ops@bigbank.example", "channel": stable.pk, "license_type": "paid",
    })
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.channel == stable and customer.license_type == "paid"
    assert customer.license_sequence == 2
    event = AuditEvent.objects.get(action="update")
    assert event.detail["changes"]["channel"] == ["Unstable", "Stable"]


def test_the_edit_form_shows_the_expiry(client, alice, customer):
    login(client, alice)
    client.post(f"/customers/{customer.pk}/edit/", {
        "name": "Big Bank", "channel": customer.channel.pk, "license_type": "dev", "expires_on": "2030-05-06",
    })
    assert b'value="2030-05-06"' in client.get(f"/customers/{customer.pk}/edit/").content


def test_archive_keeps_the_customer(client, alice, customer):
    response = login(client, alice).post(f"/customers/{customer.pk}/archive/")
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.archived_at is not None
    assert AuditEvent.objects.filter(action="archive", object_id=str(customer.pk)).exists()
    client.post(f"/customers/{customer.pk}/unarchive/")
    customer.refresh_from_db()
    assert customer.archived_at is None


def test_archive_needs_a_post(client, alice, customer):
    assert login(client, alice).get(f"/customers/{customer.pk}/archive/").status_code == 405


def test_regenerate_asks_then_replaces_the_license_id(client, alice, customer):
    old = customer.license_id
    login(client, alice)
    confirm = client.get(f"/customers/{customer.pk}/regenerate/")
    assert b"stops working" in confirm.content
    customer.refresh_from_db()
    assert customer.license_id == old  # a GET changes nothing
    client.post(f"/customers/{customer.pk}/regenerate/")
    customer.refresh_from_db()
    assert customer.license_id != old
    assert not Customer.objects.filter(license_id=old).exists()
    assert AuditEvent.objects.filter(action="regenerate_license").count() == 1


def test_no_license_id_in_audit_entries_or_logs(client, alice, customer, sample_app, caplog):
    caplog.set_level(logging.DEBUG)
    ids = [customer.license_id]
    login(client, alice)
    client.post(f"/customers/{customer.pk}/edit/", {
        "name": "Big Bank 2", "channel": sample_app.channels.get(name="Beta").pk, "license_type": "paid",
    })
    client.post(f"/customers/{customer.pk}/regenerate/")
    customer.refresh_from_db()
    ids.append(customer.license_id)
    client.get(f"/customers/{customer.pk}/license/")
    client.get(f"/customers/{customer.pk}/")
    client.post(f"/customers/{customer.pk}/archive/")
    client.post("/customers/new/", {"name": "N", "app": sample_app.pk,
                                    "channel": sample_app.channels.first().pk, "license_type": "dev"})
    ids.append(Customer.objects.get(name="N").license_id)
    client.get("/customers/999999/")  # a 404 is logged
    events = list(AuditEvent.objects.values_list("action", "object_repr", "detail"))
    assert len(events) >= 5
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    # The request lines too, as PORTAL_LOG_FORMAT=json writes them (their fields included).
    assert any(r.name == "portal.requests" for r in caplog.records)
    logged += " ".join(JsonFormatter().format(r) for r in caplog.records)
    for license_id in ids:
        assert license_id not in str(events)
        assert license_id not in logged


def test_the_detail_page_shows_the_license_id_to_admins_only(client, alice, bob, sam, customer):
    assert customer.license_id.encode() in login(client, alice).get(f"/customers/{customer.pk}/").content
    for user in (bob, sam):
        content = login(client, user).get(f"/customers/{customer.pk}/").content
        assert customer.license_id.encode() not in content
        assert b"Download license" not in content


def test_sql_is_never_logged_since_its_parameters_hold_license_ids():
    assert logging.getLogger("django.db.backends").getEffectiveLevel() >= logging.INFO


def test_an_all_archived_list_says_so(client, alice, customer):
    login(client, alice)
    client.post(f"/customers/{customer.pk}/archive/")
    assert b"Every customer is archived" in client.get("/customers/").content


def test_the_list_rows_escape_names_and_show_license_type_and_expiry(client, alice, sample_app):
    from datetime import timedelta

    from django.utils import timezone

    channel = sample_app.channels.get(name="Beta")
    Customer.objects.create(app=sample_app, channel=channel, name="<b>Evil</b> & Co", email="",
                            license_type="paid", expires_at=timezone.now() - timedelta(days=1))
    content = login(client, alice).get("/customers/").content.decode()
    assert "<b>Evil</b>" not in content and "&lt;b&gt;Evil&lt;/b&gt; &amp; Co" in content
    assert '<span class="badge ok">Paid</span>' in content and '<span class="badge bad">Expired ' in content
    assert "<td>Beta</td>" in content and "<td>—</td>" in content
