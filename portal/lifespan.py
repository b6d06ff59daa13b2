"""The ASGI lifespan protocol: what the portal does when its server stops.

Django's handler speaks HTTP only; uvicorn sends ``lifespan.shutdown`` once it stopped taking
requests and the requests in flight ended (or were cancelled after
``--timeout-graceful-shutdown``), and the process exits right after the answer: on SIGTERM it
re-raises the signal, so ``atexit`` handlers do not run. Whatever an app keeps in memory for
later (the proxy's pull log) is written by a receiver of ``server_stopping``.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent (awaited) once, on the server's event loop, before the process exits.
server_stopping = Signal()


async def serve_lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for receiver, result in await server_stopping.asend_robust(sender=None):
                if isinstance(result, Exception):
                    logger.error("server stopping: %s failed", getattr(receiver, "__name__", receiver),
                                 exc_info=result)
            await send({"type": "lifespan.shutdown.complete"})
            return
