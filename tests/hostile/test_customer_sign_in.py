"""Hostile input to the customer's sign-in (``/customer/``): anyone on the internet reaches it."""

import pytest

from tests.hostile.conftest import assert_refused, guarded
from tests.hostile.payloads import INVALID_UTF8, license_yaml_cases

# Cases are built from the stack's data, so they are parametrized by id and looked up here.
LICENSE_CASE_IDS = [case[0] for case in license_yaml_cases("x")]


@pytest.mark.parametrize("case_id", LICENSE_CASE_IDS)
def test_license_file_upload_is_refused_with_the_limit(stack, anonymous, case_id):
    _, text, message = next(c for c in license_yaml_cases(stack.data["license_id"]) if c[0] == case_id)
    with guarded(stack):
        anonymous.get("/customer/")
        response = anonymous.post("/customer/", data={"csrfmiddlewaretoken": anonymous.cookies["csrftoken"]},
                                  files={"license_file": ("hostile.yaml", text.encode(), "application/yaml")})
        assert_refused(response, 400, message=message)
        assert 'name="license_file"' in response.text


@pytest.mark.parametrize("content, case_id", [
    (INVALID_UTF8 * 10, "invalid-utf8"),
    (b"\x00" * 1000, "nul-bytes"),
    (b"spec: [" * 30_000, "unclosed-flow-200k"),
    (b"a" * (300 * 1024), "over-256k"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_license_file_is_refused(stack, anonymous, content, case_id):
    with guarded(stack):
        anonymous.get("/customer/")
        response = anonymous.post("/customer/", data={"csrfmiddlewaretoken": anonymous.cookies["csrftoken"]},
                                  files={"license_file": ("hostile.yaml", content, "application/yaml")})
        assert_refused(response, {400, 413})


@pytest.mark.parametrize("license_id", [
    "hostile-unknown-license-id",
    "hostile-" + "x" * (1024 * 1024),
    "hostile-\u202e\u0000-id",
    "hostile-' OR 1=1 --",
], ids=["unknown", "1mb", "control-chars", "sql-ish"])
def test_bad_license_id_is_refused_and_kept(stack, anonymous, license_id):
    with guarded(stack):
        anonymous.get("/customer/")
        response = anonymous.post("/customer/", data={
            "license_id": license_id, "csrfmiddlewaretoken": anonymous.cookies["csrftoken"]})
        kept = license_id if len(license_id) <= 64 and "\u0000" not in license_id else None
        assert_refused(response, 400, kept=kept)
        assert 'name="license_id"' in response.text


def test_invalid_utf8_in_the_body_is_refused(stack, anonymous):
    with guarded(stack):
        anonymous.get("/customer/")
        token = anonymous.cookies["csrftoken"].encode()
        response = anonymous.post(
            "/customer/", content=b"license_id=" + INVALID_UTF8 + b"&csrfmiddlewaretoken=" + token,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert_refused(response, 400)


def test_invalid_utf8_in_the_query_string_is_harmless(stack, anonymous):
    with guarded(stack):
        response = anonymous.get("/customer/updates/?channelSequence=%FF%FE%C3%28")
        # Not signed in: the page sends the visitor to the sign-in page.
        assert response.status_code in {302, 400}, response.status_code


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
