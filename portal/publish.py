"""The one way pages and sweeps queue a Celery task: fail fast when the broker is down.

    if not publish("registries.mirror_tasks.mirror_image", job.pk):
        ...  # leave the row waiting; beat's sweep queues it once the broker answers

A page must not wait for a broker that is down: Celery's own publishing retries and its
connection timeouts add up to seconds per request. Here each publish opens its own connection
with a one-second connect (and socket) timeout, tries once, and never raises. After a failure
no connection is even attempted to that broker for ``BACKOFF_SECONDS`` in this process: one
slow attempt per window, not one per request. Callers leave their rows in a state their sweep
picks up (beat runs in the worker, whose own publishes know nothing of the web's back-off).

A fresh connection per publish: pooled broker connections go stale when the broker restarts,
and the first publish after it came back would fail. Tasks are queued from human actions and
sweeps, a few a minute, so the extra connect is cheap.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Task
from kombu.exceptions import KombuError

from .celery import app

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 1.0     # seconds to connect to the broker (and to wait for its answers)
BACKOFF_SECONDS = 30.0    # after a failure, publishing to that broker is skipped this long

# Broker address -> time.monotonic() until which publishing is skipped. Keyed by URL so that a
# reconfigured broker is tried at once. Never logged: a broker URL may hold a password.
_down_until: dict[str, float] = {}
_lock = threading.Lock()
_discover_lock = threading.Lock()


def publish(task: Task | str, *args, **kwargs) -> bool:
    """Queue ``task`` (a task or its registered name) with ``args`` and ``kwargs``.

    True when the broker took the message (or the task ran eagerly); False when the broker is
    down or was down less than BACKOFF_SECONDS ago. Never raises for a broker problem: it is
    logged with the exception's type only (a broker error may quote the broker's address).
    """
    if isinstance(task, str):
        task = _registered(task)
    if app.conf.task_always_eager:
        # Eager mode runs the task here and needs no broker (tests, CELERY_TASK_ALWAYS_EAGER).
        task.apply_async(args, kwargs)
        return True
    connection = app.connection_for_write(
        connect_timeout=CONNECT_TIMEOUT,
        transport_options={"socket_connect_timeout": CONNECT_TIMEOUT,
                           "socket_timeout": CONNECT_TIMEOUT},
    )
    key = connection.as_uri()  # without its password
    with _lock:
        down = time.monotonic() < _down_until.get(key, 0.0)
    if down:
        logger.info("%s not queued: the broker was unreachable moments ago", task.name)
        return False
    try:
        with connection:
            errors = (KombuError, OSError, *connection.connection_errors,
                      *connection.channel_errors)
            try:
                connection.ensure_connection(max_retries=0)
                task.apply_async(args, kwargs, connection=connection, retry=False)
            except errors as e:
                _mark_down(key)
                logger.warning("%s not queued: broker unreachable (%s); its sweep queues it "
                               "later", task.name, type(e).__name__)
                return False
    except Exception:  # noqa: BLE001 - a bug here must not turn a saved form into a 500
        logger.exception("%s not queued: unexpected error while publishing", task.name)
        return False
    return True


def _registered(name: str) -> Task:
    """The task registered as ``name``, discovering the apps' tasks modules on first need.

    Celery discovers them when a worker starts, not in the web process: a caller naming a task
    (to avoid importing its module) may come first. One thread discovers while the others wait:
    two threads discovering at once could each find the registry half filled.

    Only the tasks modules are imported (``autodiscover_tasks(force=True)``), not Celery's
    ``import_default_modules``: that one fires the Django fixup, which calls ``django.setup()``
    again in the web process, re-applying LOGGING (every handler added since is dropped) and
    running the system checks inside the request that first queues a task.
    """
    if name not in app.tasks:
        with _discover_lock:
            if name not in app.tasks:
                app.autodiscover_tasks(force=True)
    return app.tasks[name]


def _mark_down(key: str) -> None:
    with _lock:
        _down_until[key] = time.monotonic() + BACKOFF_SECONDS
