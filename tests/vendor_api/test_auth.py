"""The API authenticates by token only: the Authorization header, raw or Bearer."""

from django.test import Client

from portal.models import AuditEvent


def test_it_lists_apps_with_a_raw_token(api, admin_token, sample_app):
    response = api.get("/apps", admin_token)
    assert response.status_code == 200, response.content
    apps = response.json()["apps"]
    assert [a["slug"] for a in apps] == ["mysampleecrapp"]
    unstable = next(c for c in apps[0]["channels"] if c["name"] == "Unstable")
    assert unstable["currentVersion"] == "0.0.1" and unstable["releaseSequence"] == 1


def test_it_accepts_a_bearer_token(api, admin_token, sample_app):
    assert api.get("/apps", f"Bearer {admin_token}").status_code == 200


def test_it_ignores_a_session_cookie(alice, sample_app):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.get("/vendor/v3/apps")
    assert response.status_code == 401
    assert "Authorization" in response.json()["message"]
    # A logged-in browser cannot write through the API either (no CSRF exposure).
    response = client.post("/vendor/v3/app", {"name": "Sneaky"}, content_type="application/json")
    assert response.status_code == 401


def test_it_refuses_an_unknown_token_with_a_message(api, alice):
    response = api.get("/apps", "vp_00000000_" + "0" * 40)
    assert response.status_code == 401
    assert "Unknown API token" in response.json()["message"]


def test_it_throttles_token_guesses_per_address(api, alice, settings):
    settings.PORTAL_API_TOKEN_FAILURE_LIMIT = 3
    codes = [api.get("/apps", f"vp_0000000{i}_" + "0" * 40).status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_it_throttles_calls_per_token(api, admin_token, settings, sample_app):
    settings.PORTAL_API_RATE_LIMIT = 2
    codes = [api.get("/apps", admin_token).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    assert "Retry-After" in api.get("/apps", admin_token).headers


def test_a_change_is_audited_with_the_tokens_name(api, alice, admin_token):
    response = api.post("/app", admin_token, {"name": "From CI"})
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="create", object_type="app")
    assert event.actor_name == "token ci"
    assert event.actor is None


def test_the_openapi_document_and_docs_page_need_no_cdn(client):
    document = client.get("/vendor/v3/openapi.json")
    assert document.status_code == 200
    assert "/vendor/v3/apps" in document.json()["paths"]
    assert "Authorization" in str(document.json()["components"]["securitySchemes"])
    page = client.get("/vendor/v3/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "/static/ninja/swagger-ui-bundle.js" in html
