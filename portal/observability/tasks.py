"""One metric sample and one log line per Celery task run (connected in ``portal/celery.py``).

Recorded in the worker process that ran the task: into the multiprocess directory when the
worker shares it with web (``make run``, one machine), and served on the worker's own port when
``PORTAL_WORKER_METRICS_PORT`` is set (separate machines or pods). The outcome is Celery's state:
success, failure (an exception escaped) or retry; a job's own result (a mirror job Failed with a
message) is on its row. Tasks take primary keys, so the object id is the first argument.
"""

from __future__ import annotations

import logging
import time

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_init,
)
from django.conf import settings
from prometheus_client import start_http_server

from . import metrics
from .logs import JsonFormatter

logger = logging.getLogger("portal.tasks")

_started: dict[str, float] = {}


def _on_prerun(task_id=None, **kwargs) -> None:
    _started[task_id] = time.perf_counter()


def _on_postrun(task_id=None, task=None, args=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    seconds = time.perf_counter() - started if started is not None else 0.0
    name = getattr(task, "name", "unknown")
    outcome = (state or "unknown").lower()
    metrics.task_runs.labels(name, outcome).inc()
    metrics.task_duration.labels(name).observe(seconds)
    first = args[0] if args else None
    object_id = first if isinstance(first, int) and not isinstance(first, bool) else None
    logger.info("task %s object=%s %s %.1f ms", name, object_id if object_id is not None else "-",
                outcome, seconds * 1000,
                extra={"event": "task", "task": name, "object": object_id, "outcome": outcome,
                       "duration_ms": round(seconds * 1000, 1)})


def _serve_worker_metrics(**kwargs) -> None:
    """The worker's own metrics port, when configured (the main process; its pool's children
    write into the shared multiprocess directory that the scrape sums)."""
    port = settings.PORTAL_WORKER_METRICS_PORT
    if port:
        start_http_server(port, addr=settings.PORTAL_WORKER_METRICS_ADDRESS,
                          registry=metrics.scrape_registry())
        logger.info("worker metrics on %s:%s", settings.PORTAL_WORKER_METRICS_ADDRESS, port)


def _json_logs(logger=None, **kwargs) -> None:
    """Celery installs its own handlers on the worker's and beat's loggers: with
    PORTAL_LOG_FORMAT=json they write JSON lines too."""
    if settings.PORTAL_LOG_FORMAT == "json" and logger is not None:
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())


def connect() -> None:
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="portal-task-prerun")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="portal-task-postrun")
    worker_init.connect(_serve_worker_metrics, weak=False, dispatch_uid="portal-worker-metrics")
    after_setup_logger.connect(_json_logs, weak=False, dispatch_uid="portal-json-logs")
    after_setup_task_logger.connect(_json_logs, weak=False, dispatch_uid="portal-json-task-logs")
