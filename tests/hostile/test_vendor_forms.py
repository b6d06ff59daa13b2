"""Hostile input to every form and upload of the vendor's pages, as the role that may use it.

A form shown again with errors answers 400, says what to fix, and keeps what the user typed
(``kept``: a distinctive value the test typed; passwords are never shown again).
"""

from __future__ import annotations

import html
import secrets

import pytest

from tests.hostile.conftest import assert_refused, guarded
from tests.hostile.payloads import INVALID_UTF8, ODD_ENDPOINTS, RELEASE_YAML

MB = 2**20
PASSWORD_100K = "Pw-" + "q7" * 50_000


def token(label: str) -> str:
    return f"hostile-{label}-{secrets.token_hex(4)}"


def post(client, path, data, **kwargs):
    return client.post(path, data=data, **kwargs)


# --- sign-in (no session) ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["password-100k", "username-1mb"])
def test_login_refuses_over_long_fields(stack, anonymous, field):
    username = token("login")
    data = {"username": username, "password": PASSWORD_100K}
    if field == "username-1mb":
        data = {"username": username + "u" * MB, "password": "wrong password"}
    with guarded(stack):
        anonymous.get("/accounts/login/")
        response = anonymous.post("/accounts/login/", data={**data, "csrfmiddlewaretoken": anonymous.cookies["csrftoken"]})
        assert_refused(response, 400, kept=username)
        assert PASSWORD_100K[:40] not in response.text


# --- team -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["username-1mb", "password-100k", "role-junk", "email-junk"])
def test_team_add_refuses_and_keeps_the_username(stack, sessions, case):
    username = token("member")
    data = {"username": username, "email": "x@example.com", "password": "a fine pass phrase 42", "role": "developer"}
    if case == "username-1mb":
        data["username"] = username + "u" * MB
    elif case == "password-100k":
        data["password"] = PASSWORD_100K
    elif case == "role-junk":
        data["role"] = "superuser" + "\u202e" * 1000
    else:
        data["email"] = "not-an-email" + "@" * 10_000
    with guarded(stack):
        response = post(sessions["Admin"], "/team/add/", data)
        assert_refused(response, 400, kept=username)


def test_team_role_refuses_a_junk_role(stack, sessions):
    pk = stack.data["memberships"]["target"]
    with guarded(stack):
        response = post(sessions["Admin"], f"/team/{pk}/role/", {"role": "root" * 100_000})
        # The role is a select on the team page: the refusal comes back as a message there.
        assert response.status_code in {302, 400}, response.status_code


def test_team_password_refuses_a_100k_password(stack, sessions):
    pk = stack.data["memberships"]["target"]
    with guarded(stack):
        response = post(sessions["Admin"], f"/team/{pk}/password/", {"password": PASSWORD_100K})
        assert_refused(response, 400)


def test_own_password_change_refuses_a_100k_password(stack, sessions):
    with guarded(stack):
        response = post(sessions["Support"], "/accounts/password_change/", {
            "old_password": "not the password", "new_password1": PASSWORD_100K, "new_password2": PASSWORD_100K})
        assert_refused(response, 400)


# --- apps and channels ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["name-1mb", "slug-invalid-utf8", "slug-1mb"])
def test_app_create_refuses_and_keeps_the_name(stack, sessions, case):
    name = token("app")
    client = sessions["Developer"]
    with guarded(stack):
        if case == "slug-invalid-utf8":
            body = b"name=" + name.encode() + b"&slug=" + INVALID_UTF8
            response = client.post("/apps/new/", content=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            data = {"name": name + "n" * MB, "slug": ""} if case == "name-1mb" else {"name": name, "slug": "s" * MB}
            response = post(client, "/apps/new/", data)
        assert_refused(response, 400, kept=name)


def test_app_edit_refuses_a_1mb_name(stack, sessions):
    name = token("app-edit")
    slug = stack.data["app_slug"]
    with guarded(stack):
        response = post(sessions["Developer"], f"/apps/{slug}/edit/", {"name": name + "n" * MB, "slug": slug})
        assert_refused(response, 400, kept=name)


def test_app_settings_proxy_public_toggle_takes_junk_calmly(stack, sessions):
    slug = stack.data["app_slug"]
    with guarded(stack):
        response = post(sessions["Developer"], f"/apps/{slug}/proxy-public/", {"proxy_public_images": "x" * MB})
        assert response.status_code in {302, 400}, response.status_code


@pytest.mark.parametrize("case", ["name-1mb", "name-controls"])
def test_channel_create_refuses_and_keeps_the_name(stack, sessions, case):
    name = token("channel")
    value = name + ("c" * MB if case == "name-1mb" else "\u0000\u202e" + "\u0301" * 5000)
    with guarded(stack):
        response = post(sessions["Developer"], f"/apps/{stack.data['app_slug']}/channels/new/", {"name": value})
        assert_refused(response, 400, kept=name)


# --- releases: file save, live check, promote, demote -------------------------------------------


def editor_path(stack, what: str) -> str:
    return f"/apps/{stack.data['app_slug']}/releases/{stack.data['draft_sequence']}/{what}/"


@pytest.mark.parametrize("case_id, text, message", RELEASE_YAML, ids=[c[0] for c in RELEASE_YAML])
def test_release_file_save_refuses_yaml_bombs(stack, sessions, case_id, text, message):
    name = token(case_id) + ".yaml"
    with guarded(stack):
        response = post(sessions["Developer"], editor_path(stack, "edit"),
                        {"original_name": "", "name": name, "content": text})
        assert_refused(response, 400, message=message, kept=name)


@pytest.mark.parametrize("case_id, text, message", RELEASE_YAML, ids=[c[0] for c in RELEASE_YAML])
def test_live_yaml_check_refuses_yaml_bombs(stack, sessions, case_id, text, message):
    name = token(case_id) + ".yaml"
    with guarded(stack):
        response = post(sessions["Developer"], editor_path(stack, "validate"),
                        {"original_name": "", "name": name, "content": text}, headers={"HX-Request": "true"})
        # The live check answers 200 with the problems it found (htmx swaps only 2xx) or a 4xx.
        assert_refused(response, {200, 400, 422}, message=message)


@pytest.mark.parametrize("case", ["name-1mb", "name-traversal", "content-invalid-utf8"])
def test_release_file_save_refuses_bad_names_and_bytes(stack, sessions, case):
    name = token("file")
    client = sessions["Developer"]
    with guarded(stack):
        if case == "content-invalid-utf8":
            body = (b"original_name=&name=../../" + name.encode() + b".yaml&content=a%3A+" + INVALID_UTF8
                    + b"%0A%5B%5B%5B")
            response = client.post(editor_path(stack, "edit"), content=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            file_name = name + "f" * MB + ".yaml" if case == "name-1mb" else f"../../{name}.yaml"
            response = post(client, editor_path(stack, "edit"),
                            {"original_name": "", "name": file_name, "content": "a: 1\n"})
        assert_refused(response, 400, kept=name)


@pytest.mark.parametrize("case", ["label-1mb", "channel-junk"])
def test_promote_refuses_and_keeps_the_label(stack, sessions, case):
    label = token("version")
    data = {"channels": "999999999", "version_label": label, "release_notes": "n" * MB}
    if case == "label-1mb":
        data = {"channels": [], "version_label": label + "v" * MB}
    with guarded(stack):
        response = post(sessions["Developer"], editor_path(stack, "promote"), data)
        assert_refused(response, 400, kept=label)


@pytest.mark.parametrize("pk", ["999999999", "99999999999999999999999"])
def test_demote_of_an_unknown_promotion_is_a_404(stack, sessions, pk):
    with guarded(stack):
        response = post(sessions["Developer"], f"/apps/{stack.data['app_slug']}/promotions/{pk}/demote/", {})
        assert_refused(response, 404)


# --- customers --------------------------------------------------------------------------------


def customer_data(stack, **changes) -> dict:
    return {"name": "", "email": "ops@example.com", "app": str(stack.data["app_id"]), "channel": "",
            "license_type": "dev", "expires_on": "", **changes}


@pytest.mark.parametrize("case", ["name-1mb", "email-junk", "expires-junk", "channel-junk", "license-type-junk"])
@pytest.mark.parametrize("form_page", ["create", "edit"])
def test_customer_form_refuses_and_keeps_the_name(stack, sessions, form_page, case):
    name = token("customer")
    changes = {
        "name-1mb": {},
        "email-junk": {"email": "not an email " + "@" * 10_000},
        "expires-junk": {"expires_on": "99999-99-99"},
        "channel-junk": {"channel": "99999999999999999999999"},
        "license-type-junk": {"license_type": "\u202e" * 1000},
    }[case]
    path = "/customers/new/" if form_page == "create" else f"/customers/{stack.data['customer_id']}/edit/"
    with guarded(stack):
        data = customer_data(stack, name=name + "n" * MB if case == "name-1mb" else name, **changes)
        response = post(sessions["Admin"], path, data)
        assert_refused(response, 400, kept=name)


# --- registries and mirroring -----------------------------------------------------------------


def registry_data(endpoint: str, username: str, **changes) -> dict:
    return {"provider": "other", "endpoint": endpoint, "username": username, "password": "registry-pass",
            "name": "", "test_image": "", "skip_validation": "on", **changes}


@pytest.mark.parametrize("endpoint", ODD_ENDPOINTS)
@pytest.mark.parametrize("form_page", ["add", "edit"])
def test_registry_form_refuses_odd_endpoints(stack, sessions, form_page, endpoint):
    username = token("user")
    path = "/registries/add/" if form_page == "add" else f"/registries/{stack.data['registry_id']}/edit/"
    with guarded(stack):
        response = post(sessions["Developer"], path, registry_data(endpoint, username, name="odd"))
        assert_refused(response, 400, kept=username)
        assert html.escape(endpoint) in response.text, "the form lost the endpoint the user typed"


@pytest.mark.parametrize("case", ["password-100k", "endpoint-1mb", "endpoint-invalid-utf8", "username-1mb"])
def test_registry_form_refuses_over_long_fields(stack, sessions, case):
    username = token("user")
    data = registry_data(f"{token('reg')}.invalid", username)
    if case == "password-100k":
        data["password"] = PASSWORD_100K
    elif case == "endpoint-1mb":
        data["endpoint"] = "r" * MB + ".example"
    elif case == "username-1mb":
        data = registry_data("registry.invalid", username + "u" * MB)
    client = sessions["Developer"]
    with guarded(stack):
        if case == "endpoint-invalid-utf8":
            body = b"provider=other&username=" + username.encode() + b"&password=x&endpoint=" + INVALID_UTF8
            response = client.post("/registries/add/", content=body,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            response = post(client, "/registries/add/", data)
        assert_refused(response, 400, kept=username)
        assert PASSWORD_100K[:40] not in response.text


@pytest.mark.parametrize("case", ["source-1mb", "source-odd-host", "push-password-100k", "platforms-junk"])
def test_mirror_form_refuses_and_keeps_the_source(stack, sessions, case):
    source = token("img")
    data = {"source": source, "prefix": "", "target_repository": "", "target_tag": "", "platforms": "",
            "push_username": "", "push_password": ""}
    if case == "source-1mb":
        data["source"] = source + "/" + "s" * MB
    elif case == "source-odd-host":
        data["source"] = f"0177.0.0.1:99999/{source}"
        source = data["source"]
    elif case == "push-password-100k":
        data.update(source="nginx!!" + source, push_username="u", push_password=PASSWORD_100K)
        source = data["source"]
    else:
        data.update(source="nginx:bad tag " + source, platforms="linux/" + "\u202e" * 5000)
        source = data["source"]
    with guarded(stack):
        response = post(sessions["Developer"], f"/registries/{stack.data['registry_id']}/mirror/", data)
        assert_refused(response, 400, kept=source)


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
