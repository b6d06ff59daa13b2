"""Hostile input to the proxy registry (``/v2/``): every answer is an OCI JSON error, never HTML."""

import base64

import pytest

from tests.hostile.conftest import assert_oci_error, guarded
from tests.hostile.payloads import INVALID_UTF8

PATHS = {
    "root": "/v2/",
    "catalog": "/v2/_catalog",
    "manifest": "/v2/proxy/{slug}/nginx/manifests/latest",
    "manifest-traversal": "/v2/proxy/{slug}/nginx/manifests/..%2f..%2fetc%2fpasswd",
    "manifest-bad-digest": "/v2/proxy/{slug}/nginx/manifests/sha256:zz",
    "blob": "/v2/proxy/{slug}/nginx/blobs/sha256:" + "0" * 64,
    "blob-bad-digest": "/v2/proxy/{slug}/nginx/blobs/sha256:..%2f..",
    "tags": "/v2/proxy/{slug}/nginx/tags/list?n=-1&last=%FF",
    "odd-host": "/v2/proxy/{slug}/0177.0.0.1:5302/nginx/manifests/latest",
    "odd-host-256": "/v2/proxy/{slug}/256.1.1.1/nginx/tags/list",
    "odd-host-999": "/v2/proxy/{slug}/999.999.999.999/x/blobs/sha256:" + "0" * 64,
    "invalid-utf8-path": "/v2/proxy/{slug}/%FF%FE/manifests/latest",
    "deep-path": "/v2/proxy/{slug}/" + "a/" * 1000 + "manifests/latest",
    "unknown-app": "/v2/proxy/no-such-app/nginx/manifests/latest",
}


def basic(value: bytes) -> str:
    return "Basic " + base64.b64encode(value).decode()


# basic-40k: large credentials that still fit the server's 64 KB head limit (over it, the
# server answers 431 before the portal sees the request: tests/hostile/test_headers.py).
AUTHS = ["license", "none", "bearer-junk", "basic-invalid-utf8", "basic-40k"]
# A valid license at /v2/ is a 200 (the login check), not a refusal.
CASES = [(name, auth) for name in PATHS for auth in AUTHS if (name, auth) != ("root", "license")]


@pytest.mark.parametrize("name, auth", CASES)
def test_v2_answers_oci_errors(stack, anonymous, name, auth):
    license_id = stack.data["license_id"]
    headers = {
        "license": {"Authorization": basic(f"{license_id}:{license_id}".encode())},
        "none": {},
        "bearer-junk": {"Authorization": "Bearer " + "eyJ" + "A" * 20_000},
        "basic-invalid-utf8": {"Authorization": basic(INVALID_UTF8 + b":" + INVALID_UTF8)},
        "basic-40k": {"Authorization": basic(b"x" * 20_000 + b":" + b"x" * 20_000)},
    }[auth]
    path = PATHS[name].format(slug=stack.data["app_slug"])
    with guarded(stack):
        response = anonymous.get(path, headers=headers)
        assert_oci_error(response, {400, 401, 403, 404, 405, 414, 429})


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
def test_v2_refuses_writes_with_oci_errors(stack, anonymous, method):
    license_id = stack.data["license_id"]
    path = f"/v2/proxy/{stack.data['app_slug']}/nginx/manifests/latest"
    with guarded(stack):
        response = anonymous.request(method, path, auth=(license_id, license_id), content=INVALID_UTF8 * 100)
        assert_oci_error(response, {400, 401, 403, 404, 405})


def test_the_server_logged_no_traceback(stack):
    assert "Traceback" not in stack.log("web")
