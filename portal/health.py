"""Liveness (/healthz) and readiness (/readyz) for make run, Kubernetes and Caddy.

/healthz: the process answers. /readyz: the database answers, every migration is applied
(remembered after the first success: a process does not un-migrate) and the configured keys
are the ones the data was made with (portal/keys.py). The broker's state is in the body but
never fails readiness: pages and pulls work while Redis is down, by design, and a probe that
failed on it would take every web process out of service at once.

Probes connect to the pod's address over plain HTTP (``Host: 10.1.2.3``), which the host check
and the HTTPS redirect would refuse: ``probe_middleware``, first in the chain, answers the two
paths before either runs. Neither view reads the Host header or anything secret.
"""

from __future__ import annotations

import redis
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .keys import keys_problem

BROKER_TIMEOUT = 0.5
_migrated = False


@require_GET
def healthz(request):
    return HttpResponse("ok\n", content_type="text/plain")


def _database() -> str:
    """"ok", or what is wrong with the database."""
    global _migrated
    try:
        connection.ensure_connection()
        if not _migrated:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if pending:
                return f"{len(pending)} migrations not applied: run manage.py migrate"
            _migrated = True
    except DatabaseError as e:
        return f"unreachable ({type(e).__name__})"
    return "ok"


def _broker() -> str:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return f"not used ({url.split(':', 1)[0]})"
    try:
        redis.Redis.from_url(url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT).ping()
    except redis.RedisError as e:
        return f"unreachable ({type(e).__name__})"
    return "ok"


@never_cache
@require_GET
def readyz(request):
    checks = {"database": _database()}
    if checks["database"] == "ok":
        checks["keys"] = keys_problem() or "ok"
    ready = all(v == "ok" for v in checks.values())
    checks["broker"] = _broker()
    return JsonResponse({"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503)


PROBES = {"/healthz": healthz, "/readyz": readyz}


def _probe(request):
    """The probe's answer, with the headers the middleware it skipped gives every response."""
    response = PROBES[request.path_info](request)
    response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
    response.headers.setdefault("Content-Length", str(len(response.content)))
    return response


def _is_probe(request) -> bool:
    return request.path_info in PROBES and request.method in ("GET", "HEAD")


@sync_and_async_middleware
def probe_middleware(get_response):
    """Answer GET /healthz and /readyz before the host check and the HTTPS redirect."""
    if iscoroutinefunction(get_response):
        async def middleware(request):
            if _is_probe(request):
                return await sync_to_async(_probe)(request)
            return await get_response(request)
    else:
        def middleware(request):
            return _probe(request) if _is_probe(request) else get_response(request)
    return middleware
