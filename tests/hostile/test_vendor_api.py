"""Hostile input to the vendor API (/vendor/v3/), through the server the Procfile runs.

Bad and odd tokens, bodies over the size limit, JSON nested without end, bytes that are not
UTF-8, YAML bombs inside a release's files, odd registry endpoints, over-long fields and junk
query values: each is a clear 4xx as JSON with a message, at a bounded CPU cost, with no
traceback in the log; what the caller sent as a secret never comes back.
"""

from __future__ import annotations

import json

import pytest

from tests.hostile.conftest import assert_refused, guarded, raw_request
from tests.hostile.payloads import DEPTH_MESSAGE, INVALID_UTF8, ODD_ENDPOINTS, RELEASE_YAML

MB = 2**20
SECRET_100K = "Pw-" + "q7" * 50_000


@pytest.fixture(scope="module")
def token(stack):
    return stack.manage("create_api_token", "--team", "Demo", "--role", "Admin", "--name", "hostile").strip()


@pytest.fixture
def api(anonymous, token):
    anonymous.headers["Authorization"] = token
    return anonymous


def assert_json_refusal(response, statuses, *, message: str | None = None) -> dict:
    assert_refused(response, statuses, message=message)
    assert response.headers.get("content-type", "").startswith("application/json"), response.text[:200]
    body = response.json()
    assert body.get("message"), body
    return body


# --- tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["empty", "bearer-only", "junk-8k", "prefix-only", "one-char-off", "sql",
                                  "unicode-escape", "bearer-twice"])
def test_bad_tokens_are_401_and_never_echoed(stack, anonymous, token, case):
    value = {
        "empty": "", "bearer-only": "Bearer", "junk-8k": "x" * 8000, "prefix-only": token[:12],
        "one-char-off": token[:-1] + ("0" if token[-1] != "0" else "1"), "sql": "' OR 1=1 --",
        "unicode-escape": "\\u0000" + token, "bearer-twice": f"Bearer Bearer {token}",
    }[case]
    with guarded(stack):
        response = anonymous.get("/vendor/v3/apps", headers={"Authorization": value})
        assert_json_refusal(response, {401, 429})
        if len(value) > 8:
            assert value not in response.text


@pytest.mark.parametrize("header", [b"Authorization: " + INVALID_UTF8, b"Authorization: Bearer \x01\x02\x7f",
                                    b"Authorization: " + b"A" * 60_000])
def test_raw_authorization_bytes_are_refused(stack, header):
    request = b"GET /vendor/v3/apps HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\nConnection: close\r\n\r\n"
    with guarded(stack, memory=True):
        response = raw_request(stack, request)
        assert response.status is not None and 400 <= response.status < 500, response.head[:300]


def test_a_session_cookie_is_not_a_token(stack, sessions):
    with guarded(stack):
        response = sessions["Admin"].post("/vendor/v3/external_registry", json={"provider": "other"})
        assert_json_refusal(response, 401)


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/vendor/v3/customer", "/vendor/v3/external_registry", "/vendor/v3/mirror_job",
                                  "/vendor/v3/app/mysampleecrapp/license-field"])
def test_bodies_over_the_limit_are_413(stack, api, path):
    body = json.dumps({"name": "n" * (5 * MB)})
    with guarded(stack, memory=True):
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        assert_json_refusal(response, 413)


@pytest.mark.parametrize("path", ["/vendor/v3/customer", "/vendor/v3/external_registry",
                                  "/vendor/v3/external_registry/test", "/vendor/v3/mirror_job",
                                  "/vendor/v3/app/mysampleecrapp/license-field"])
@pytest.mark.parametrize("shape", ["list", "object", "in-a-field"])
def test_deep_json_is_refused(stack, api, path, shape):
    depth = 100_000
    body = {"list": "[" * depth + "]" * depth, "object": '{"a":' * depth + "1" + "}" * depth,
            "in-a-field": '{"name": "x", "entitlementValues": ' + "[" * depth + "]" * depth + "}"}[shape]
    method = api.put if path.endswith("/test") else api.post
    with guarded(stack):
        response = method(path, content=body, headers={"Content-Type": "application/json"})
        assert_json_refusal(response, 400, message=DEPTH_MESSAGE)


@pytest.mark.parametrize("path", ["/vendor/v3/customer", "/vendor/v3/external_registry", "/vendor/v3/mirror_job"])
def test_bodies_that_are_not_utf8_or_not_json_are_400(stack, api, path):
    with guarded(stack):
        for body in (b'{"name": "' + INVALID_UTF8 + b'"}', b"\xef\xbb\xbf{", b"name=x&app=y", b"null", b"[1,2]"):
            response = api.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_json_refusal(response, 400)


# --- YAML through the bounded loader ------------------------------------------------------------


@pytest.mark.parametrize(("case_id", "text", "message"), RELEASE_YAML, ids=[c[0] for c in RELEASE_YAML])
def test_release_create_refuses_yaml_bombs(stack, api, case_id, text, message):
    spec = [{"name": "hostile.yaml", "path": "hostile.yaml", "content": text}]
    with guarded(stack):
        response = api.post("/vendor/v3/app/mysampleecrapp/release", json={"spec": spec})
        assert_json_refusal(response, 400, message=message)


# --- fields -------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ODD_ENDPOINTS)
def test_registry_add_refuses_odd_endpoints_and_never_echoes_the_password(stack, api, endpoint):
    with guarded(stack):
        response = api.post("/vendor/v3/external_registry", json={
            "provider": "other", "endpoint": endpoint, "username": "u", "password": "hostile-secret-81",
            "slug": "odd", "skipValidation": True})
        body = assert_json_refusal(response, 400)
        assert "endpoint" in body["errors"] and "hostile-secret-81" not in response.text


@pytest.mark.parametrize("case", ["password-100k", "username-1mb-ish", "provider-junk", "app-ids-junk"])
def test_registry_add_refuses_over_long_or_junk_fields(stack, api, case):
    body = {"provider": "other", "endpoint": "hostile.example.com", "username": "u", "password": "p",
            "skipValidation": True}
    if case == "password-100k":
        body["password"] = SECRET_100K
    elif case == "username-1mb-ish":
        body["username"] = "u" * 500_000
    elif case == "provider-junk":
        body["provider"] = "ecr\u202e" * 1000
    else:
        body["appIds"] = ["no-such-app-" + str(i) for i in range(5000)]
    with guarded(stack):
        response = api.post("/vendor/v3/external_registry", json=body)
        assert_json_refusal(response, 400)
        assert SECRET_100K[:40] not in response.text


@pytest.mark.parametrize("case", ["name-1mb", "email-junk", "type-junk", "expiry-junk", "values-10k", "value-1mb",
                                  "channel-junk"])
def test_customer_create_refuses_junk(stack, api, case):
    body = {"name": "Hostile Customer", "app_id": "mysampleecrapp", "channels": [{"channel_id": "unstable"}]}
    if case == "name-1mb":
        body["name"] = "n" * MB
    elif case == "email-junk":
        body["email"] = "not-an-email" + "@" * 10_000
    elif case == "type-junk":
        body["type"] = "paid" * 1000
    elif case == "expiry-junk":
        body["expires_at"] = "9" * 10_000
    elif case == "values-10k":
        body["entitlementValues"] = [{"name": f"f{i}", "value": "v"} for i in range(10_000)]
    elif case == "value-1mb":
        body["entitlementValues"] = [{"name": "nope", "value": "v" * MB}]
    else:
        body["channels"] = [{"channel_id": "../../etc/passwd" * 1000}]
    with guarded(stack):
        response = api.post("/vendor/v3/customer", json=body)
        assert_json_refusal(response, {400, 413})


def test_mirror_create_refuses_junk_sources(stack, api):
    with guarded(stack):
        for source in ("", "nginx:" + "t" * 10_000, "UPPER/Case", "a" * 600, "nginx@sha256:xyz"):
            response = api.post("/vendor/v3/mirror_job", json={"source": source, "registry": "registry.example.com"})
            assert_json_refusal(response, {400, 404})


# --- paths and queries --------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/vendor/v3/customer/99999999999999999999999999",
    "/vendor/v3/customer/-1",
    "/vendor/v3/app/mysampleecrapp/customers?pageSize=1000000000000000000000",
    "/vendor/v3/app/mysampleecrapp/customers?currentPage=-5",
    "/vendor/v3/app/mysampleecrapp/customers?includeArchived=maybe",
    "/vendor/v3/app/mysampleecrapp/customers?q=" + "%00" * 1000,
    "/vendor/v3/app/" + "a" * 5000 + "/customers",
    "/vendor/v3/external_registry/%00",
    "/vendor/v3/external_registry/" + "x" * 5000,
    "/vendor/v3/external_registry/..%2f..%2fetc",
    "/vendor/v3/mirror_job/0",
    "/vendor/v3/mirror_jobs?pageSize=0",
    "/vendor/v3/app/mysampleecrapp/release/99999999999999999999/image-checks",
    "/vendor/v3/app/mysampleecrapp/customer/%ff%fe/license-download",
])
def test_odd_paths_and_queries_are_a_clear_4xx(stack, api, path):
    with guarded(stack):
        response = api.get(path)
        assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:200]!r}"


def test_the_api_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
