"""The dispatcher: boundary stream → Celery tasks, acknowledged only after their output is stored.

    loop:
        finished tasks  → XACK (success) or record the error (failure; the entry stays pending,
                          is reclaimed after `claim_idle_ms` and retried, and goes to the
                          dead-letter stream after `max_deliveries`)
        in-flight tasks → touched (XCLAIM JUSTID) so a long synthesis is not reclaimed as dead
        free capacity   → XREADGROUP (reclaimed entries first) and send one Celery task each

Backpressure: at most `max_in_flight` requests are sent and unfinished at once; the stream holds
the rest. Several dispatchers may share the consumer group (each with its own consumer name);
a dispatcher that dies leaves its entries pending, and the others reclaim them.
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

from celery import Celery
from celery.result import AsyncResult

from rods.config import Settings
from rods.store.connection import connect
from rods.store.keys import SYNTH_QUEUE, SYNTH_TASK, RunKeys
from rods.store.stream import BoundaryStream, Delivery

log = logging.getLogger("rods.dispatcher")
LATENCY_KEEP = 10_000  # latency samples kept per run


@dataclass
class InFlight:
    delivery: Delivery
    result: AsyncResult
    sent_at: float


@dataclass
class DispatchStats:
    sent: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def publish_time_s(entry_id: str) -> float:
    """A stream entry id is `<ms since epoch>-<seq>`."""
    return int(entry_id.split("-", 1)[0]) / 1000.0


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

        self.settings = settings
        self.run = run
        self.app = app or default_app
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.max_in_flight = max_in_flight or settings.dispatch_max_in_flight
        self.r = connect(settings)
        self.stream = BoundaryStream(self.r, run, settings)
        self.stream.ensure_group()
        self.keys = RunKeys(run)
        self.in_flight: dict[str, InFlight] = {}
        self.stats = DispatchStats()

    def _finish(self) -> None:
        for eid, job in list(self.in_flight.items()):
            if not job.result.ready():
                continue
            del self.in_flight[eid]
            if job.result.successful():
                self.stream.ack(job.delivery)
                latency = time.time() - publish_time_s(eid)
                pipe = self.r.pipeline(transaction=False)
                pipe.lpush(self.keys.synth_latency, f"{latency:.3f}")
                pipe.ltrim(self.keys.synth_latency, 0, LATENCY_KEEP - 1)
                pipe.execute()
                self.stats.done += 1
                summary = job.result.result or {}
                log.info("request %s: %s staged in %.1fs", job.delivery.request.request_id,
                         summary.get("staged", "?"), latency)
            else:
                error = f"{type(job.result.result).__name__}: {job.result.result}"
                self.stream.fail(job.delivery, error)
                self.stats.failed += 1
                self.stats.errors.append(error)
                log.warning("request %s failed: %s", job.delivery.request.request_id, error)
            job.result.forget()

    def _touch(self) -> None:
        """Reset the idle time of entries we are working on, without counting a delivery."""
        if self.in_flight:
            self.r.xclaim(
                self.keys.boundary, self.stream.group, self.consumer, 0,
                list(self.in_flight), justid=True,
            )  # fmt: skip

    def poll_once(self, block_ms: int = 500) -> DispatchStats:
        """One pass; blocks up to `block_ms` waiting for new requests when idle."""
        self._finish()
        self._touch()
        room = self.max_in_flight - len(self.in_flight)
        if room <= 0:
            time.sleep(block_ms / 1000 / 5)
            return self.stats
        batch = self.stream.read(self.consumer, count=room, block_ms=block_ms if not self.in_flight else None)
        self.stats.dead += len(batch.dead)
        for d in batch.deliveries:
            if d.entry_id in self.in_flight:
                continue
            result = self.app.send_task(
                SYNTH_TASK,
                kwargs={"request": d.request.model_dump_json(), "run": self.run},
                queue=SYNTH_QUEUE,
            )
            self.in_flight[d.entry_id] = InFlight(d, result, time.monotonic())
            self.stats.sent += 1
        if self.in_flight and not batch.deliveries:
            time.sleep(0.05)  # waiting on workers: poll results at 20 Hz
        return self.stats

    def run_forever(self, stop: threading.Event | None = None) -> DispatchStats:
        stop = stop or threading.Event()
        log.info("dispatcher %s: run %s, up to %d in flight", self.consumer, self.run, self.max_in_flight)
        while not stop.is_set():
            self.poll_once()
        return self.stats


def latency_samples(r: Any, run: str) -> list[float]:
    """Boundary-detection-to-staged latencies (seconds), newest first."""
    return [float(x) for x in r.lrange(RunKeys(run).synth_latency, 0, -1)]
