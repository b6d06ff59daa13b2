"""API tokens: hash at rest, role and app scope limits, expiry, revoke, last use, the pages and the command."""

import io
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from portal.models import ApiToken, AuditEvent, Role
from portal.tokens import token_create
from releases.models import App
from tests.conftest import login

from .conftest import make_token


def test_a_token_is_long_prefixed_and_only_its_hash_is_stored(alice):
    row, token = token_create(team=alice.membership.team, creator=alice, kind=ApiToken.Kind.SERVICE,
                              name="ci", role=Role.ADMIN)
    assert token.startswith("vp_") and token.startswith(row.prefix)
    assert len(token.rsplit("_", 1)[1]) * 4 >= 160
    assert token not in str(ApiToken.objects.filter(pk=row.pk).values().get())


def test_the_token_never_appears_in_the_database_logs_pages_or_audit(client, api, alice, sample_app, caplog):
    caplog.set_level(logging.DEBUG)
    login(client, alice)
    pages = []
    response = client.post("/team/tokens/", {"name": "ci-release", "role": Role.DEVELOPER})
    token = response.context["new_token"]
    assert response.status_code == 200 and token in response.content.decode()  # shown once, here
    assert response["Cache-Control"].startswith("max-age=0")
    pages.append(client.get("/team/tokens/").content.decode())
    pages.append(client.get("/audit/").content.decode())
    api.post("/app", token, {"name": "From CI"})
    api.get("/apps", token)
    api.get("/apps", token + "x")  # a wrong guess, logged nowhere either
    row = ApiToken.objects.get(name="ci-release")
    client.post(f"/tokens/{row.pk}/revoke/")
    pages.append(client.get("/team/tokens/").content.decode())
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    audit = str(list(AuditEvent.objects.values()))
    secret_part = token.rsplit("_", 1)[1]
    for where, text in [("database", dump.getvalue()), ("audit", audit), ("logs", caplog.text),
                        *(("page", p) for p in pages)]:
        assert secret_part not in text, f"the token is in the {where}"
    assert row.prefix in pages[-1]


def test_a_tokens_role_is_at_most_its_creators(client, bob):
    response = login(client, bob).post("/account/tokens/", {"name": "mine", "role": Role.ADMIN})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    with pytest.raises(Exception, match="at most yours"):
        token_create(team=bob.membership.team, creator=bob, kind=ApiToken.Kind.PERSONAL, name="x", role=Role.ADMIN)


def test_a_personal_token_follows_its_users_current_role(api, bob, sample_app):
    token = make_token(bob, kind=ApiToken.Kind.PERSONAL)
    assert api.post("/app", token, {"name": "One"}).status_code == 201
    bob.membership.role = Role.SUPPORT
    bob.membership.save()
    response = api.post("/app", token, {"name": "Two"})
    assert response.status_code == 403
    assert api.get("/apps", token).status_code == 200


def test_personal_tokens_are_revoked_when_their_user_leaves_service_tokens_survive(client, api, alice, bob,
                                                                                   sample_app):
    personal = make_token(bob, kind=ApiToken.Kind.PERSONAL, name="bob-laptop")
    service = make_token(bob, name="bob-made-ci")
    response = login(client, alice).post(f"/team/{bob.membership.pk}/remove/")
    assert response.status_code == 302
    assert ApiToken.objects.get(name="bob-laptop").is_revoked
    assert api.get("/apps", personal).status_code == 401
    assert api.get("/apps", service).status_code == 200
    page = client.get("/team/tokens/").content.decode()
    assert "bob-made-ci" in page and "bob" in page and "left the team" in page


def test_an_expired_or_revoked_token_is_refused_on_its_next_call(api, alice, sample_app):
    token = make_token(alice, expires_in_days=1)
    assert api.get("/apps", token).status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.get("/apps", token)
    assert response.status_code == 401 and "expired" in response.json()["message"]
    ApiToken.objects.update(expires_at=None, revoked_at=timezone.now())
    response = api.get("/apps", token)
    assert response.status_code == 401 and "revoked" in response.json()["message"]


def test_an_app_scoped_token_sees_its_apps_only_and_cannot_make_team_level_changes(api, alice, sample_app, team):
    other = App.create_with_channels(team=team, name="Other", slug="other")
    token = make_token(alice, apps=[sample_app])
    assert [a["slug"] for a in api.get("/apps", token).json()["apps"]] == ["mysampleecrapp"]
    assert api.get("/app/other/channels", token).status_code == 404
    assert api.get(f"/app/{other.pk}/channels", token).status_code == 404
    assert api.get("/app/mysampleecrapp/channels", token).status_code == 200
    response = api.post("/app", token, {"name": "New"})
    assert response.status_code == 403 and "limited to some apps" in response.json()["message"]


def test_last_use_is_written_at_most_once_a_minute(api, alice, sample_app, django_assert_num_queries):
    token = make_token(alice)
    api.get("/apps", token, REMOTE_ADDR="192.0.2.7")
    row = ApiToken.objects.get()
    assert row.last_used_address == "192.0.2.7" and row.last_used_at is not None
    first = row.last_used_at
    api.get("/apps", token, REMOTE_ADDR="192.0.2.8")
    row.refresh_from_db()
    assert row.last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    api.get("/apps", token, REMOTE_ADDR="192.0.2.8")
    row.refresh_from_db()
    assert row.last_used_address == "192.0.2.8" and row.last_used_at > first


def test_create_api_token_prints_a_service_account_token(api, alice, sample_app, team):
    out = io.StringIO()
    call_command("create_api_token", "--team", "Acme", "--role", "developer", "--name", "bootstrap",
                 "--app", "mysampleecrapp", "--expires-in", "30", stdout=out)
    token = out.getvalue().strip()
    row = ApiToken.objects.get(name="bootstrap")
    assert row.kind == "service" and row.role == Role.DEVELOPER and row.created_by is None
    assert list(row.apps.values_list("slug", flat=True)) == ["mysampleecrapp"]
    assert (row.expires_at - timezone.now()).days in (29, 30)
    assert api.get("/apps", token).status_code == 200


def test_only_admins_see_the_tokens_page_everyone_has_my_tokens(client, bob, sam):
    assert login(client, bob).get("/team/tokens/").status_code == 403
    assert client.get("/account/tokens/").status_code == 200
    assert login(client, sam).get("/account/tokens/").status_code == 200


def test_a_user_cannot_revoke_someone_elses_personal_token(client, alice, bob):
    make_token(bob, kind=ApiToken.Kind.PERSONAL)
    row = ApiToken.objects.get()
    assert login(client, alice).post(f"/tokens/{row.pk}/revoke/").status_code == 404
    assert not ApiToken.objects.get().is_revoked
