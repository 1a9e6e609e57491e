"""The dispatcher: boundary stream → Celery tasks, acknowledged only after their output is stored.

    loop (one pass = `poll_once`; a pass that hits a Redis outage is retried with backoff, forever):
        finished tasks → XACK (success); failure → record the error, send again after a backoff
                         (retry_base·2^(n-1), capped), dead-letter after `max_deliveries`
        overdue tasks  → no result by the deadline (soft time limit + margin: the worker died, or
                         its result was lost in an outage) → treated as a failed delivery
        held entries   → `keep` (XCLAIM JUSTID) every claim_idle_ms/4, so other dispatchers do
                         not reclaim what this one still tracks
        free capacity  → XREADGROUP (entries of dead dispatchers idle > claim_idle_ms first)

The stream is the source of truth for redelivery. A task never retries itself through Celery:
during a Redis outage that retry is a publish to the broker that is down, and the message is
lost. It fails instead, and its entry — still pending in the stream under this dispatcher — is
sent again. A resend is harmless: admission is idempotent on the request id (`already_done`).

Deadline: a task's hard time limit is the soft limit + `HARD_LIMIT_MARGIN_S`, so a task that
was running is over by soft + that margin; `dispatch_deadline_margin_s` must exceed it. A killed
worker's request is therefore sent again `synth_soft_time_limit_s + dispatch_deadline_margin_s`
after it was sent (Celery's own redelivery, after its visibility timeout, comes later and finds
the request done). Tasks still queued count against the deadline too: keep `max_in_flight` at the
workers' total concurrency (`--scale synth-worker=N` × `--concurrency`), so queues stay short.

Backpressure: at most `max_in_flight` requests are sent-and-unfinished or waiting for a retry at
once; the stream holds the rest (they survive a model-server outage untouched). Several
dispatchers may share the consumer group (each with its own consumer name); a dispatcher that
dies leaves its entries pending, and the others reclaim them after `claim_idle_ms`.
Latency from boundary detection (the entry's stream id is its publish time) to staged tasks is
recorded in `rods:<run>:synth:latency` for the demo's report.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from celery.exceptions import BackendError
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from rods.config import Settings
from rods.store.connection import TRANSIENT, connect
from rods.store.keys import SYNTH_QUEUE, SYNTH_TASK, RunKeys
from rods.store.stream import Batch, BoundaryStream, Delivery
from services.celery_app import HARD_LIMIT_MARGIN_S

log = logging.getLogger("rods.dispatcher")
LATENCY_KEEP = 10_000  # latency samples kept per run
# What a Redis outage raises somewhere in a pass: our client, Celery's broker, its result backend.
OUTAGE = (*TRANSIENT, OperationalError, BackendError, ConnectionError, TimeoutError)
# Error replies of a server that is up but cannot take writes for now: full (maxmemory with
# noeviction), failing to persist, a read-only replica, still loading its data.
BUSY_ERRORS = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
BUSY_REPLIES = ("MISCONF", "MASTERDOWN")


@dataclass
class InFlight:
    delivery: Delivery
    result: AsyncResult
    sent_at: float  # time.monotonic()
    deadline: float  # time.monotonic() past which the task counts as lost


@dataclass
class Waiting:
    """A request to send again at `retry_at`; `count`: whether that is a new delivery (it
    reached a worker) or a plain resend (the send itself failed)."""

    delivery: Delivery
    retry_at: float
    count: bool = True


@dataclass
class DispatchStats:
    sent: int = 0
    done: int = 0
    failed: int = 0  # failed deliveries (each is retried or dead-lettered)
    overdue: int = 0  # deliveries without a result by their deadline (lost workers)
    dead: int = 0
    outages: int = 0  # passes that hit a Redis outage and were retried
    errors: list[str] = field(default_factory=list)


def publish_time_s(entry_id: str) -> float:
    """A stream entry id is `<ms since epoch>-<seq>`."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


def retry_delay_s(deliveries: int, base_s: float, cap_s: float) -> float:
    """Wait before sending a request again after its `deliveries`-th delivery failed."""
    return min(cap_s, base_s * 2 ** max(0, deliveries - 1))


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        run: str,
        *,
        app: Celery | None = None,
        consumer: str | None = None,
        max_in_flight: int | None = None,
    ):
        from services.celery_app import app as default_app

        if settings.dispatch_deadline_margin_s <= HARD_LIMIT_MARGIN_S:
            raise ValueError(
                f"RODS_DISPATCH_DEADLINE_MARGIN_S={settings.dispatch_deadline_margin_s} must "
                f"exceed the hard time limit's margin ({HARD_LIMIT_MARGIN_S} s)"
            )
        self.settings = settings
        self.run = run
        self.app = app or default_app
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.max_in_flight = max_in_flight or settings.dispatch_max_in_flight
        self.deadline_s = settings.synth_soft_time_limit_s + settings.dispatch_deadline_margin_s
        self.r = connect(settings)
        self.stream = BoundaryStream(self.r, run, settings)
        self.stream.ensure_group()
        self.keys = RunKeys(run)
        self.in_flight: dict[str, InFlight] = {}
        self.waiting: dict[str, Waiting] = {}
        self.stats = DispatchStats()
        self._kept_at = 0.0

    # ------------------------------------------------------------ one pass

    def poll_once(self, block_ms: int = 500) -> DispatchStats:
        """One pass; blocks up to `block_ms` waiting for new requests when idle."""
        self._finish()
        self._retry_due()
        self._keep()
        room = self.max_in_flight - len(self.in_flight) - len(self.waiting)
        if room <= 0:
            time.sleep(block_ms / 1000 / 5)
            return self.stats
        idle = not self.in_flight and not self.waiting
        batch = self.stream.read(self.consumer, count=room, block_ms=block_ms if idle else None)
        self.stats.dead += len(batch.dead)
        self._send([d for d in batch.deliveries if d.entry_id not in self.in_flight])
        if not batch.deliveries and not idle:
            time.sleep(0.05)  # waiting on workers: poll results at 20 Hz
        return self.stats

    def run_forever(self, stop: threading.Event | None = None) -> DispatchStats:
        """Pass after pass until `stop`; a Redis outage is waited out with the clients' backoff."""
        stop = stop or threading.Event()
        # Celery's result backend logs each of its retries with a traceback (hundreds of lines a
        # second while Redis is down); this loop logs the outage once, and its end.
        logging.getLogger("celery.backends.base").setLevel(logging.ERROR)
        log.info(
            "dispatcher %s: run %s, up to %d in flight, deadline %ds",
            self.consumer, self.run, self.max_in_flight, self.deadline_s,
        )  # fmt: skip
        down_since: float | None = None
        attempt = 0
        regroup = False
        while not stop.is_set():
            try:
                if regroup:
                    self.stream.ensure_group()
                    regroup = False
                self.poll_once()
            except redis.ResponseError as e:
                if str(e).startswith("NOGROUP"):
                    # a server restarted without its data: what was pending is gone with it
                    log.warning("consumer group missing (Redis lost its data?): creating it again")
                    self.in_flight.clear()
                    self.waiting.clear()
                    regroup = True
                    continue
                if not isinstance(e, BUSY_ERRORS) and not str(e).startswith(BUSY_REPLIES):
                    raise  # a bug (e.g. WRONGTYPE), not a condition to wait out
                error: BaseException = e
            except OUTAGE as e:
                error = e
            else:
                if down_since is not None:
                    log.info("Redis is back after %.1fs; carrying on", time.monotonic() - down_since)
                    down_since, attempt = None, 0
                continue
            self.stats.outages += 1
            if down_since is None:
                down_since = time.monotonic()
                log.warning("Redis unavailable (%s: %s); retrying with backoff",
                            type(error).__name__, error)  # fmt: skip
            s = self.settings
            stop.wait(min(s.backoff_cap_s, s.backoff_base_s * 2 ** min(attempt, 30)))
            attempt += 1
        self.close()
        return self.stats

    def close(self) -> None:
        """Stop tracking: what is in flight stays pending in the stream, for the next dispatcher
        (or this one's next life) to reclaim after `claim_idle_ms`."""
        self.in_flight.clear()  # drops the results' subscriptions while Redis may still be up
        self.waiting.clear()
        self.r.close()

    # ------------------------------------------------------------ steps

    def _send(self, deliveries: list[Delivery]) -> None:
        for k, d in enumerate(deliveries):
            try:
                result = self.app.send_task(
                    SYNTH_TASK,
                    kwargs={"request": d.request.model_dump_json(), "run": self.run},
                    queue=SYNTH_QUEUE,
                )
            except OUTAGE:
                # never reached a worker: send these again as they are, without counting
                for rest in deliveries[k:]:
                    self.waiting[rest.entry_id] = Waiting(rest, time.monotonic(), count=False)
                raise
            now = time.monotonic()
            self.in_flight[d.entry_id] = InFlight(d, result, now, now + self.deadline_s)
            self.stats.sent += 1

    def _finish(self) -> None:
        now = time.monotonic()
        for eid, job in list(self.in_flight.items()):
            # handled first, forgotten after: an outage midway leaves the job to the next pass
            if job.result.ready():
                if job.result.successful():
                    self._done(job)
                else:
                    error = f"{type(job.result.result).__name__}: {job.result.result}"
                    self._failed(job.delivery, error)
            elif now > job.deadline:
                self.stats.overdue += 1
                self._failed(
                    job.delivery,
                    f"no result {now - job.sent_at:.0f}s after it was sent (deadline: soft time "
                    f"limit + margin = {self.deadline_s:g}s): worker lost or result lost",
                )
            else:
                continue
            del self.in_flight[eid]
            self._forget(job.result)

    def _done(self, job: InFlight) -> None:
        eid = job.delivery.entry_id
        self.stream.ack(job.delivery)
        latency = time.time() - publish_time_s(eid)
        pipe = self.r.pipeline(transaction=False)
        pipe.lpush(self.keys.synth_latency, f"{latency:.3f}")
        pipe.ltrim(self.keys.synth_latency, 0, LATENCY_KEEP - 1)
        pipe.execute()
        self.stats.done += 1
        summary = job.result.result or {}
        log.info("request %s: %s staged in %.1fs", job.delivery.request.request_id,
                 summary.get("staged", "?"), latency)  # fmt: skip

    def _failed(self, d: Delivery, error: str) -> None:
        """Record the failure; dead-letter after the last delivery, else retry after a backoff."""
        self.stats.failed += 1
        self.stats.errors.append(error)
        self.stats.errors[:] = self.stats.errors[-100:]
        if d.deliveries >= self.settings.max_deliveries:
            self.stream.dead_letter(d, self.consumer, error)
            self.stats.dead += 1
            log.warning("request %s dead-lettered after %d deliveries: %s",
                        d.request.request_id, d.deliveries, error)  # fmt: skip
            return
        self.stream.fail(d, error)
        s = self.settings
        delay = retry_delay_s(d.deliveries, s.dispatch_retry_base_s, s.dispatch_retry_cap_s)
        self.waiting[d.entry_id] = Waiting(d, time.monotonic() + delay)
        log.warning("request %s failed (delivery %d), again in %.1fs: %s",
                    d.request.request_id, d.deliveries, delay, error)  # fmt: skip

    def _retry_due(self) -> None:
        now = time.monotonic()
        due = [w for w in self.waiting.values() if w.retry_at <= now]
        for w in due:
            del self.waiting[w.delivery.entry_id]
            if not w.count:
                self._send([w.delivery])
                continue
            batch: Batch = self.stream.redeliver(self.consumer, w.delivery)
            self.stats.dead += len(batch.dead)
            self._send(batch.deliveries)

    def _keep(self) -> None:
        """Reset the idle time of what this dispatcher holds, a few times per claim period."""
        now = time.monotonic()
        if now - self._kept_at < self.settings.claim_idle_ms / 4000:
            return
        self.stream.keep(self.consumer, [*self.in_flight, *self.waiting])
        self._kept_at = now

    def _forget(self, result: AsyncResult) -> None:
        try:
            result.forget()
        except OUTAGE:
            pass  # the result expires by itself (result_expires)


def latency_samples(r: Any, run: str) -> list[float]:
    """Boundary-detection-to-staged latencies (seconds), newest first."""
    return [float(x) for x in r.lrange(RunKeys(run).synth_latency, 0, -1)]
