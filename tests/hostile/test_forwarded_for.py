"""X-Forwarded-For from a client the portal does not trust changes nothing: not the login
lockout, not the proxy's, the update check's or the customer sign-in's throttle.

A stack of its own with low limits: its failures must not throttle the other cases' stack.
No PORTAL_TRUSTED_PROXIES is set, so no address's forwarded headers are trusted.
"""

import base64

import pytest

from tests.hostile.conftest import guarded, stack_broker
from tests.support.processes import PortalStack

LIMIT = 5
SPOOFED = [f"203.0.113.{i}" for i in range(1, 2 * LIMIT + 2)]


@pytest.fixture(scope="module")
def throttled(redis_server, tmp_path_factory):
    processes = PortalStack(
        tmp_path_factory.mktemp("forwarded"), stack_broker(redis_server, 12),
        extra_env={"PORTAL_LOGIN_FAILURE_LIMIT": str(LIMIT), "PORTAL_PROXY_AUTH_FAILURE_LIMIT": str(LIMIT)},
    ).start()
    yield processes
    processes.stop()


def basic(user: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{user}".encode()).decode()}


def test_a_locked_out_login_stays_locked_with_a_forged_address(throttled):
    with throttled.client() as client, guarded(throttled):
        client.get("/accounts/login/")
        for _ in range(LIMIT):
            client.post("/accounts/login/", data={
                "username": "dev", "password": "wrong", "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        response = client.post("/accounts/login/", headers={"X-Forwarded-For": "1.2.3.4"}, data={
            "username": "dev", "password": throttled.password, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        assert response.status_code != 302, "the forged address let a locked-out user sign in"
        assert 400 <= response.status_code < 500


def test_the_proxy_throttle_ignores_a_rotated_forwarded_address(throttled):
    with throttled.client() as client, guarded(throttled):
        statuses = [client.get("/v2/", headers={**basic("hostile-wrong"), "X-Forwarded-For": ip}).status_code
                    for ip in SPOOFED]
        assert statuses[-1] == 429, statuses


def test_the_update_check_throttles_wrong_license_ids(throttled):
    path = f"/release/{throttled.data['app_slug']}/pending?channelSequence=0"
    license_id = throttled.data["license_id"]
    with throttled.client() as client, guarded(throttled):
        statuses = [client.get(path, headers={**basic(f"hostile-wrong-{i}"), "X-Forwarded-For": ip}).status_code
                    for i, ip in enumerate(SPOOFED)]
        assert statuses[-1] == 429, statuses
        # Many installs share one outbound address: a valid license still works from it.
        assert client.get(path, headers=basic(license_id)).status_code == 200


def test_the_customer_sign_in_throttles_wrong_license_ids(throttled):
    license_id = throttled.data["license_id"]
    with throttled.client() as client, guarded(throttled):
        client.get("/customer/")
        statuses = []
        for i, ip in enumerate(SPOOFED):
            statuses.append(client.post("/customer/", headers={"X-Forwarded-For": ip}, data={
                "license_id": f"hostile-wrong-{i}", "csrfmiddlewaretoken": client.cookies["csrftoken"]}).status_code)
        assert statuses[-1] == 429, statuses
        response = client.post("/customer/", data={
            "license_id": license_id, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        assert response.status_code == 302, response.status_code


def test_the_server_logged_no_traceback(throttled):
    assert "Traceback" not in throttled.log("web")
