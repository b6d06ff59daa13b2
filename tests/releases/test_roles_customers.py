"""Every role against every page of customers, licenses, team and audit; another team gets 404."""

import pytest

from portal.models import AuditEvent
from releases.models import Customer
from tests.conftest import login

# (method, url, admin, developer, support). {c} = the customer, {m} = bob's membership.
PAGES = [
    ("get", "/customers/", 200, 200, 200),
    ("get", "/customers/{c}/", 200, 200, 200),
    ("get", "/customers/new/", 200, 403, 403),
    ("post", "/customers/new/", 302, 403, 403),
    ("get", "/customers/{c}/edit/", 200, 403, 403),
    ("post", "/customers/{c}/edit/", 302, 403, 403),
    ("post", "/customers/{c}/archive/", 302, 403, 403),
    ("post", "/customers/{c}/unarchive/", 302, 403, 403),
    ("get", "/customers/{c}/regenerate/", 200, 403, 403),
    ("post", "/customers/{c}/regenerate/", 302, 403, 403),
    ("get", "/customers/{c}/license/", 200, 403, 403),
    ("get", "/team/", 200, 403, 403),
    ("post", "/team/add/", 302, 403, 403),
    ("post", "/team/{m}/role/", 302, 403, 403),
    ("get", "/team/{m}/remove/", 200, 403, 403),
    ("post", "/team/{m}/remove/", 302, 403, 403),
    ("get", "/team/{m}/password/", 200, 403, 403),
    ("post", "/team/{m}/password/", 302, 403, 403),
    ("get", "/audit/", 200, 403, 403),
    ("get", "/accounts/password_change/", 200, 200, 200),
]

OBJECT_PAGES = [(method, url) for method, url, *_ in PAGES if "{" in url]


def post_data(customer, url):
    if url.startswith("/customers/new/"):
        return {"name": "New Co", "app": customer.app.pk, "channel": customer.channel.pk, "license_type": "dev"}
    if url.endswith("/edit/"):
        return {"name": "Big Bank", "channel": customer.channel.pk, "license_type": "paid"}
    if url == "/team/add/":
        return {"username": "carol", "password": "plum tiger cactus 42", "role": "support"}
    if url.endswith("/password/"):
        return {"password": "plum tiger cactus 42"}
    if url.endswith("/role/"):
        return {"role": "support"}
    return {}


@pytest.mark.parametrize("method, url, admin, developer, support", PAGES)
@pytest.mark.parametrize("persona", ["alice", "bob", "sam"])
def test_every_role_against_every_page(request, client, customer, alice, bob, sam,
                                       persona, method, url, admin, developer, support):
    user = request.getfixturevalue(persona)
    expected = {"alice": admin, "bob": developer, "sam": support}[persona]
    target = url.format(c=customer.pk, m=bob.membership.pk)
    before = AuditEvent.objects.exclude(action="login").count()
    login(client, user)
    response = getattr(client, method)(target, post_data(customer, url))
    assert response.status_code == expected
    if expected == 403:
        assert AuditEvent.objects.exclude(action="login").count() == before  # nothing changed


@pytest.mark.parametrize("method, url", OBJECT_PAGES)
def test_another_team_gets_404_for_every_object(client, customer, bob, mallory, method, url):
    target = url.format(c=customer.pk, m=bob.membership.pk)
    license_id = customer.license_id
    response = getattr(login(client, mallory), method)(target, post_data(customer, url))
    assert response.status_code == 404
    customer.refresh_from_db()
    assert customer.license_id == license_id and customer.archived_at is None
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("persona", ["bob", "sam"])
def test_readers_see_no_buttons_they_cannot_use(request, client, customer, persona):
    login(client, request.getfixturevalue(persona))
    listing = client.get("/customers/").content.decode()
    detail = client.get(f"/customers/{customer.pk}/").content.decode()
    assert "New customer" not in listing
    for label in ("Download license", "Edit", "Archive", "Regenerate", customer.license_id):
        assert label not in detail
    nav = client.get("/apps/").content.decode()
    assert "/team/" not in nav and "/audit/" not in nav


def test_admins_see_their_buttons(client, alice, customer):
    detail = login(client, alice).get(f"/customers/{customer.pk}/").content.decode()
    for label in ("Download license", "Edit", "Archive customer", "Regenerate license ID"):
        assert label in detail


def test_pages_need_a_login(client, customer):
    for method, url, *_ in PAGES:
        response = getattr(client, method)(url.format(c=customer.pk, m=1))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
