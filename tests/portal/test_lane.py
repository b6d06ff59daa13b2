"""The lean lane (portal/lane.py): the registry API without the page middleware, same answers.

In process, through httpx's ASGI transport: a middleware that records the paths it sees is
put in the chain, so each test can tell which way a request went.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from django.http import StreamingHttpResponse

from portal import lane
from portal.asgi import LEAN_PATH_PREFIXES, PortalASGIHandler

SEEN: list[str] = []


def recording_middleware(get_response):
    def middleware(request):
        SEEN.append(request.path)
        return get_response(request)
    return middleware


@pytest.fixture
def app(settings):
    settings.MIDDLEWARE = ["tests.portal.test_lane.recording_middleware", *settings.MIDDLEWARE]
    SEEN.clear()
    # Built after the settings change: middleware and SecurityMiddleware read them at init.
    return lane.LeanLane(PortalASGIHandler(), LEAN_PATH_PREFIXES)


def get(app, path, **kwargs):
    async def go():
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.request(kwargs.pop("method", "GET"), path, **kwargs)
    return asyncio.run(go())


@pytest.mark.django_db(transaction=True)
def test_the_registry_api_skips_the_page_middleware_and_keeps_the_headers(app, caplog):
    caplog.set_level(logging.INFO, logger="portal.requests")
    response = get(app, "/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["content-type"] == "application/json"
    assert SEEN == []  # not through the page middleware
    # What the page middleware would have added, the lane adds.
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "set-cookie" not in response.headers and "vary" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))  # as CommonMiddleware
    # The request's log line and metric name the view, as for every other request.
    assert any("request GET releases-proxy-root 401" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_pages_and_unusual_requests_go_through_djangos_handler(app):
    assert get(app, "/customer/").status_code in (200, 302)
    assert SEEN == ["/customer/"]
    # A Host not allowed: Django's own 400, as before the lane.
    assert get(app, "/v2/", headers={"Host": "evil.example"}).status_code == 400
    # A body: Django's handler reads it within its limits.
    response = get(app, "/v2/", method="GET", content=b"hello")
    assert response.status_code == 401
    assert SEEN == ["/customer/", "/v2/", "/v2/"]


@pytest.mark.django_db(transaction=True)
def test_the_https_redirect_applies_on_the_lane(settings):
    settings.SECURE_SSL_REDIRECT = True
    app = lane.LeanLane(PortalASGIHandler(), LEAN_PATH_PREFIXES)
    response = get(app, "/v2/")
    assert response.status_code == 301
    assert response.headers["location"] == "https://localhost/v2/"


def test_a_streamed_response_stops_when_the_client_goes_away():
    """The response's iterator is cancelled when the client disconnects, so an abandoned pull
    stops reading the upstream (uvicorn's send drops bytes silently once the client is gone)."""
    produced, stopped = [], asyncio.Event()

    async def chunks():
        try:
            for i in range(1000):
                produced.append(i)
                yield b"x" * 1024
                await asyncio.sleep(0.01)
        finally:
            stopped.set()

    async def go():
        response = StreamingHttpResponse(chunks())
        messages = asyncio.Queue()
        await messages.put({"type": "http.request", "body": b"", "more_body": False})

        async def receive():
            return await messages.get()

        sent = []

        async def send(message):
            sent.append(message)
            if len(sent) == 3:
                await messages.put({"type": "http.disconnect"})

        await asyncio.wait_for(lane._send_response(response, receive, send), timeout=5)
        await asyncio.wait_for(stopped.wait(), timeout=5)  # the generator's cleanup ran
        return sent

    sent = asyncio.run(go())
    assert len(produced) < 20
    assert not any(m.get("more_body") is False for m in sent)  # never reported as complete
