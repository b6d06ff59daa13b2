import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from portal.models import AuditEvent
from tests.conftest import PASSWORD, login

WRONG = "wrong-password-Zebra-91"


def attempt(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_the_login_page_is_labelled(client, db):
    content = client.get("/accounts/login/").content.decode()
    assert '<label for="id_username">' in content and '<label for="id_password">' in content


def test_a_good_login_goes_to_the_apps(client, alice):
    response = attempt(client, "alice", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/apps/"


def test_a_failed_login_does_not_leak(client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    wrong_password = attempt(client, "alice", WRONG)
    unknown_user = attempt(client, "nobody", WRONG)
    assert wrong_password.status_code == unknown_user.status_code == 400
    for response in (wrong_password, unknown_user):
        content = response.content.decode()
        assert "Please enter a correct username and password" in content
        assert WRONG not in content  # the password is never echoed back
    # The same words whether or not the user exists.
    assert wrong_password.context["form"].errors == unknown_user.context["form"].errors
    assert WRONG not in caplog.text
    assert not AuditEvent.objects.filter(action="login").exists()


def test_repeated_failures_lock_the_login(client, alice):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert attempt(client, "alice", WRONG).status_code == 400
    locked = attempt(client, "alice", WRONG)
    assert locked.status_code in (403, 429)
    assert b"Too many failed logins" in locked.content
    # Even the right password is refused while locked.
    again = attempt(client, "alice", PASSWORD)
    assert b"Too many failed logins" in again.content
    assert "_auth_user_id" not in client.session


def test_a_lock_does_not_stop_others(client, alice, bob):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "alice", WRONG)
    assert attempt(client, "bob", PASSWORD).status_code == 302


def test_logout_needs_a_post(client, alice):
    login(client, alice)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get("/apps/").status_code == 302


def test_password_change(client, alice):
    login(client, alice)
    form = client.get("/accounts/password_change/")
    assert b'<label for="id_old_password">' in form.content
    bad = client.post("/accounts/password_change/", {
        "old_password": "nope", "new_password1": "short", "new_password2": "other",
    })
    assert bad.status_code == 400
    assert b"Your old password was entered incorrectly" in bad.content
    response = client.post("/accounts/password_change/", {
        "old_password": PASSWORD, "new_password1": "violet engine 7 lantern", "new_password2": "violet engine 7 lantern",
    }, follow=True)
    assert b"Password changed" in response.content
    alice.refresh_from_db()
    assert alice.check_password("violet engine 7 lantern")
    event = AuditEvent.objects.get(action="change_password")
    assert event.actor == alice and "violet" not in str(event.detail)


def test_a_user_without_a_team_sees_a_clear_403(client, db):
    loner = get_user_model().objects.create_user("loner", password=PASSWORD)
    client.force_login(loner)
    for url in ("/apps/", "/customers/", "/team/", "/audit/"):
        response = client.get(url)
        assert response.status_code == 403
        assert b"You are not a member of any team" in response.content
        assert b"<nav" not in response.content  # no menu to pages they cannot use


def test_a_forbidden_page_says_why(client, sam):
    response = login(client, sam).get("/team/")
    assert response.status_code == 403
    assert b"Your role does not allow this." in response.content
    assert b"You are Support" in response.content


@pytest.mark.parametrize("url", ["/customers/999999/", "/no-such-page/"])
def test_the_404_page_extends_the_layout(client, alice, url):
    response = login(client, alice).get(url)
    assert response.status_code == 404
    assert b"Not found" in response.content and b"Vendor Portal" in response.content


def test_a_forgotten_password_is_reset_by_an_admin(client, db):
    login_page = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/password_reset/"' in login_page
    response = client.get("/accounts/password_reset/")
    assert response.status_code == 200 and b"Ask an Admin of your team" in response.content


def test_failed_logins_and_lockouts_are_audited_without_the_password(client, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "alice", WRONG)
    attempt(client, "nobody-" + WRONG, WRONG)
    failed = AuditEvent.objects.filter(action="login_failed")
    assert failed.count() >= settings.AXES_FAILURE_LIMIT - 1
    assert {e.team for e in failed} == {alice.membership.team}
    assert AuditEvent.objects.filter(action="login_locked", object_repr="alice").exists()
    assert WRONG not in str(list(AuditEvent.objects.values()))
