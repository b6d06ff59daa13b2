"""The proxy registry's pull log: one row per manifest or blob request, written off the
response path by one thread in batches (``PullLogWriter``). The same thread records which pins
each license pulled (``PulledImage``, for the grace period)."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time

from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone

from portal.observability import metrics

from ..entitlements.models import PulledImage
from .access import Access
from .models import PullEvent

logger = logging.getLogger(__name__)


def pull_event(*, access: Access, reference: str, kind: str, method: str, status: int,
               size: int, release_id: int | None = None, note: str = "",
               pins: tuple[int, ...] = ()) -> PullEvent:
    """One row; ``pins``: the pins a successful manifest pull pulled (recorded as
    ``PulledImage`` by the writer, not a column)."""
    event = PullEvent(app_id=access.app.pk, customer_id=access.customer.pk,
                      registry_id=access.registry_id,
                      image=access.image[:512], reference=reference[:200], kind=kind,
                      method=method, status=status, bytes=size, release_id=release_id,
                      note=note[:300])
    event.pulled_pins = pins if 200 <= status < 300 else ()
    return event


# A (license, pin) pair is written at most once per RECORD_EVERY seconds by a writer: a pull
# is ~14 requests and a cluster pulls again and again, and last_pulled_at to the minute is
# plenty for a grace period counted in days.
RECORD_EVERY = 60.0
MAX_RECORDED = 100_000


def record_pulled(batch: list[PullEvent], recent: dict | None = None) -> None:
    """First and last pull of each (license, pin) the batch pulled: queryset writes, so no
    signal empties the decision cache on every pull. ``recent``: {pair: when last written}."""
    pairs = {(e.customer_id, pin) for e in batch for pin in getattr(e, "pulled_pins", ())}
    if recent is not None:
        clock = time.monotonic()
        pairs = {p for p in pairs if clock - recent.get(p, -RECORD_EVERY) >= RECORD_EVERY}
        if len(recent) > MAX_RECORDED:
            recent.clear()
        recent.update(dict.fromkeys(pairs, clock))
    if not pairs:
        return
    now = timezone.now()
    customers = {c for c, _ in pairs}
    pins = {p for _, p in pairs}
    existing = set(PulledImage.objects.filter(customer_id__in=customers, pin_id__in=pins)
                   .values_list("customer_id", "pin_id"))
    known = pairs & existing
    for customer_id in {c for c, _ in known}:
        PulledImage.objects.filter(customer_id=customer_id,
                                   pin_id__in=[p for c, p in known if c == customer_id]
                                   ).update(last_pulled_at=now)
    PulledImage.objects.bulk_create(
        [PulledImage(customer_id=c, pin_id=p, first_pulled_at=now, last_pulled_at=now)
         for c, p in pairs - existing], ignore_conflicts=True)


_STOP = object()


class PullLogWriter:
    """One thread writes the pull log in batches (``bulk_create``), off the response path.

    ``put`` never blocks and never touches the database, so a request neither waits for the
    write nor loses its row when the client hangs up (Django then cancels the response task).
    A single writer means no two pull-log writers ever compete for SQLite's lock. A failed
    batch is retried with back-off; rows that still cannot be written are dropped with a
    warning, never failing a pull. ``flush`` waits until what was put is written: the proxy
    flushes it when the server stops (the ASGI lifespan shutdown, ``views``), and an
    ``atexit`` handler when the interpreter exits normally.
    """

    BATCH = 500
    RETRIES = 6

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._registered = False
        self._recorded: dict[tuple[int, int], float] = {}  # record_pulled's memory

    def put(self, event: PullEvent) -> None:
        self._start()
        self._queue.put(event)

    def flush(self, timeout: float = 30) -> bool:
        """Wait until every row put before this call is written (or dropped)."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="pull-log-writer",
                                            daemon=True)
            self._thread.start()
            if not self._registered:
                atexit.register(self.close)
                self._registered = True

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                item = self._queue.get()
                batch, done = [], []
                while True:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, threading.Event):
                        done.append(item)
                    else:
                        batch.append(item)
                    if len(batch) >= self.BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._write(batch)
                    except Exception:  # the writer must outlive any one batch
                        logger.exception("pull log: %d rows dropped", len(batch))
                    try:
                        record_pulled(batch, self._recorded)
                    except Exception:  # a pull is never failed for it; the next one records
                        connection.close()
                        logger.exception("pull log: pulled images of %d rows not recorded",
                                         len(batch))
                for event in done:
                    event.set()
        finally:
            connection.close()

    def _write(self, batch: list[PullEvent]) -> None:
        for attempt in range(self.RETRIES):
            try:
                PullEvent.objects.bulk_create(batch)
                return
            except IntegrityError:
                # A customer or app deleted meanwhile: write the others one by one.
                connection.close()
                self._write_each(batch)
                return
            except DatabaseError as e:
                logger.warning("pull log: writing %d rows failed (%s), attempt %d",
                               len(batch), type(e).__name__, attempt + 1)
                connection.close()
                time.sleep(0.05 * 2 ** attempt)
        logger.error("pull log: %d rows dropped after %d attempts", len(batch), self.RETRIES)

    def _write_each(self, batch: list[PullEvent]) -> None:
        for event in batch:
            try:
                event.save(force_insert=True)
            except DatabaseError:
                connection.close()
                logger.warning("pull log: one row dropped (its customer, app or registry is gone)")


pull_log_writer = PullLogWriter()


def log_pull(*, access: Access, reference: str, kind: str, method: str, status: int,
             size: int, release_id: int | None = None, note: str = "",
             pins: tuple[int, ...] = ()) -> None:
    """Queue one pull log row (``PullLogWriter``); never blocks, never fails the pull."""
    pull_log_writer.put(pull_event(access=access, reference=reference, kind=kind, method=method,
                                   status=status, size=size, release_id=release_id, note=note,
                                   pins=pins))


def record_pull(access: Access, reference: str, kind: str, method: str, status: int, size: int,
                *, sent: int | None = None, **extra) -> None:
    """Count one proxy answer in the metrics and queue its pull log row (``log_pull``): the
    bytes counted are ``sent`` when given (0 for a redirect: the proxy sent none), else
    ``size``. Never fails the pull."""
    try:
        metrics.proxy_pulls.labels(access.app.slug, kind, str(status)).inc()
        counted = size if sent is None else sent
        if counted:
            metrics.proxy_bytes.labels(access.app.slug, kind).inc(counted)
        log_pull(access=access, reference=reference, kind=kind, method=method, status=status,
                 size=size, **extra)
    except Exception:  # the pull log and the metrics never fail a pull
        logger.exception("pull log: could not queue a row")
