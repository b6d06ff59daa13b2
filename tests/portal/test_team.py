import pytest
from django.contrib.auth import get_user_model

from portal.models import AuditEvent, Membership, Role
from tests.conftest import PASSWORD, login

NEW_PASSWORD = "plum tiger cactus 42"


def logs_in(client, username, password) -> bool:
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return response.status_code == 302


def test_admins_see_the_members_with_their_roles(client, alice, bob, sam, mallory):
    content = login(client, alice).get("/team/").content.decode()
    for name in ("alice", "bob", "sam"):
        assert name in content
    assert "mallory" not in content
    assert "Add member" in content


def test_admins_add_a_member(client, alice):
    response = login(client, alice).post("/team/add/", {
        "username": "carol", "email": "carol@example.com", "password": NEW_PASSWORD, "role": "support",
    })
    assert response.status_code == 302
    carol = get_user_model().objects.get(username="carol")
    assert carol.membership.team == alice.membership.team and carol.membership.role == Role.SUPPORT
    assert carol.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="add_member")
    assert event.object_repr == "carol" and event.detail["role"] == "support"
    assert NEW_PASSWORD not in str(event.detail)
    assert logs_in(client.__class__(), "carol", NEW_PASSWORD)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"username": "bob", "password": NEW_PASSWORD, "role": "developer"}, "That username is taken"),
        ({"username": "dave", "password": "123", "role": "developer"}, "too short"),
        ({"username": "dave", "password": NEW_PASSWORD, "role": "owner"}, "Select a valid choice"),
        ({"username": "da ve!", "password": NEW_PASSWORD, "role": "developer"}, "Enter a valid username"),
        ({"username": "dave", "email": "x", "password": NEW_PASSWORD, "role": "developer"}, "valid email"),
    ],
)
def test_adding_rejects_bad_input_and_keeps_it(client, alice, bob, data, message):
    response = login(client, alice).post("/team/add/", data)
    assert response.status_code == 400
    content = response.content.decode()
    assert message in content
    assert f'value="{data["username"]}"' in content
    assert data["password"] not in content  # passwords are never echoed back
    assert not get_user_model().objects.filter(username="dave").exists()


def test_admins_change_a_role(client, alice, bob):
    login(client, alice).post(f"/team/{bob.membership.pk}/role/", {"role": "support"})
    bob.membership.refresh_from_db()
    assert bob.membership.role == Role.SUPPORT
    event = AuditEvent.objects.get(action="change_role")
    assert event.detail == {"from": "developer", "to": "support"}


def test_the_last_admin_cannot_step_down(client, alice, bob):
    response = login(client, alice).post(f"/team/{alice.membership.pk}/role/", {"role": "developer"}, follow=True)
    alice.membership.refresh_from_db()
    assert alice.membership.role == Role.ADMIN
    assert b"only Admin" in response.content


def test_an_admin_can_step_down_when_another_admin_remains(client, alice, bob):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    response = login(client, alice).post(f"/team/{alice.membership.pk}/role/", {"role": "developer"})
    assert response["Location"] == "/apps/"
    alice.membership.refresh_from_db()
    assert alice.membership.role == Role.DEVELOPER


def test_admins_remove_a_member_after_confirming(client, alice, bob):
    login(client, alice)
    assert b"Remove bob?" in client.get(f"/team/{bob.membership.pk}/remove/").content
    assert Membership.objects.filter(user=bob).exists()
    client.post(f"/team/{bob.membership.pk}/remove/")
    bob.refresh_from_db()
    assert not Membership.objects.filter(user=bob).exists()
    assert not bob.is_active
    assert AuditEvent.objects.filter(action="remove_member", object_repr="bob").exists()
    assert not logs_in(client.__class__(), "bob", PASSWORD)


def test_a_removed_member_loses_access_at_once(client, alice, bob, sample_app):
    bob_client = client.__class__()
    login(bob_client, bob)
    assert bob_client.get("/apps/").status_code == 200
    login(client, alice).post(f"/team/{bob.membership.pk}/remove/")
    assert bob_client.get("/apps/").status_code == 302  # logged out


def test_admins_cannot_remove_themselves(client, alice):
    login(client, alice).post(f"/team/{alice.membership.pk}/remove/")
    assert Membership.objects.filter(user=alice).exists()
    assert b"Remove</a>" not in client.get("/team/").content  # no button for oneself when alone


@pytest.mark.parametrize("url", ["/team/{pk}/role/", "/team/{pk}/remove/"])
def test_another_teams_member_is_a_404(client, mallory, bob, url):
    response = login(client, mallory).post(url.format(pk=bob.membership.pk), {"role": "admin"})
    assert response.status_code == 404
    bob.membership.refresh_from_db()
    assert bob.membership.role == Role.DEVELOPER


def test_admins_set_a_members_password(client, alice, bob):
    login(client, alice)
    assert b"Set a new password for bob" in client.get(f"/team/{bob.membership.pk}/password/").content
    bad = client.post(f"/team/{bob.membership.pk}/password/", {"password": "1234"})
    assert bad.status_code == 400 and b"too short" in bad.content and b"1234" not in bad.content
    client.post(f"/team/{bob.membership.pk}/password/", {"password": NEW_PASSWORD})
    bob.refresh_from_db()
    assert bob.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="set_password")
    assert event.object_repr == "bob" and NEW_PASSWORD not in str(event.detail)
