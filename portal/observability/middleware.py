"""One metric sample and one log line per request.

First in MIDDLEWARE, so the time includes every other middleware and the status is what the
client got (an HTTPS redirect, a CSRF refusal, a lockout). Async and sync: under uvicorn the
proxy registry's async views must not be sent through a thread by a sync-only middleware.
The view is the URL pattern's name (never the path: paths hold image names and tags); the
team is known for the pages of a team (``portal.roles.team_required`` sets ``request.team``).
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from . import metrics

logger = logging.getLogger("portal.requests")
UNMATCHED = "unmatched"  # answered before URL resolution, or no pattern matched


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


def record(request, response, started: float) -> None:
    seconds = time.perf_counter() - started
    view, status = view_name(request), response.status_code
    metrics.http_requests.labels(view, request.method, str(status)).inc()
    metrics.http_latency.labels(view).observe(seconds)
    team = getattr(request, "team", None)
    team_id = team.pk if team is not None else None
    logger.info("request %s %s %s %.1f ms team=%s", request.method, view, status, seconds * 1000,
                team_id if team_id is not None else "-",
                extra={"event": "request", "method": request.method, "view": view,
                       "status": status, "duration_ms": round(seconds * 1000, 1),
                       "team": team_id})


@sync_and_async_middleware
def request_metrics(get_response):
    if iscoroutinefunction(get_response):
        async def middleware(request):
            started = time.perf_counter()
            response = await get_response(request)
            record(request, response, started)
            return response
    else:
        def middleware(request):
            started = time.perf_counter()
            response = get_response(request)
            record(request, response, started)
            return response
    return middleware
