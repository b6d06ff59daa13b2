"""Hostile input to the update check, the release download and the license sync (HTTP Basic
license credentials)."""

import base64

import pytest

from tests.hostile.conftest import assert_refused, guarded
from tests.hostile.payloads import INVALID_UTF8


def basic(value: bytes) -> str:
    return "Basic " + base64.b64encode(value).decode()


BAD_AUTHORIZATION = {
    "not-base64": "Basic !!!not-base64!!!",
    "invalid-utf8": basic(INVALID_UTF8 + b":" + INVALID_UTF8),
    "no-colon": basic(b"hostile-license"),
    "40k": basic(b"h" * 20_000 + b":" + b"h" * 20_000),  # under the 64 KB head limit
    "bearer-junk": "Bearer " + "A" * 10_000,
    "scheme-only": "Basic",
}
BAD_SEQUENCES = ["-1", "99999999999999999999", "1e9", "%FF%FE", "\u0663", "0x10", "1;2", "%00"]


@pytest.mark.parametrize("path", ["/release/{slug}/pending?channelSequence=0", "/release/{slug}",
                                  "/license/{slug}?licenseSequence=1"])
@pytest.mark.parametrize("name", BAD_AUTHORIZATION)
def test_bad_credentials_are_refused(stack, anonymous, path, name):
    url = path.format(slug=stack.data["app_slug"])
    with guarded(stack):
        response = anonymous.get(url, headers={"Authorization": BAD_AUTHORIZATION[name]})
        assert_refused(response, {400, 401, 429})
        assert "error" in response.json()


@pytest.mark.parametrize("path", ["/release/{slug}/pending", "/release/{slug}"])
@pytest.mark.parametrize("sequence", BAD_SEQUENCES)
def test_bad_channel_sequence_is_refused(stack, anonymous, path, sequence):
    license_id = stack.data["license_id"]
    url = path.format(slug=stack.data["app_slug"]) + "?channelSequence=" + sequence
    with guarded(stack):
        response = anonymous.get(url, auth=(license_id, license_id))
        assert_refused(response, {400, 404})
        assert "error" in response.json()


@pytest.mark.parametrize("sequence", BAD_SEQUENCES)
def test_license_sync_ignores_a_bad_license_sequence(stack, anonymous, sequence):
    """KOTS decodes any answer below 400 as its license: a sequence it sends wrong still gets
    the current license, never an error it would fail on."""
    license_id = stack.data["license_id"]
    url = f"/license/{stack.data['app_slug']}?licenseSequence={sequence}"
    with guarded(stack):
        response = anonymous.get(url, auth=(license_id, license_id))
        assert response.status_code == 200
        assert "kind: License" in response.text


def test_an_unknown_app_slug_is_refused(stack, anonymous):
    license_id = stack.data["license_id"]
    with guarded(stack):
        response = anonymous.get("/release/" + "a" * 5000 + "/pending", auth=(license_id, license_id))
        assert_refused(response, {401, 403, 404, 414})


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
