"""The Celery task: one boundary request → one graph run → validated tasks staged in the buffer.

Idempotent on the request id: a redelivered or re-sent request whose output is already stored
does nothing; staging itself is atomic and keyed by the request id (`ReplayBuffer.add_staged`).
Redis and model-server errors are retried with exponential backoff; anything else inside the
graph is already a counted failure in the result, not an exception.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis

from rods.boundary import BoundaryRequest
from rods.config import Settings
from rods.store.keys import SYNTH_TASK
from services.celery_app import app
from services.synthesis import SynthWorker

_local = threading.local()  # one SynthWorker per worker thread/process: clients are not shared


def _worker() -> SynthWorker:
    w = getattr(_local, "worker", None)
    if w is None:
        w = _local.worker = SynthWorker(Settings())
    return w


@app.task(
    name=SYNTH_TASK,
    bind=True,
    acks_late=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError),
    retry_backoff=2,  # seconds, doubling: Redis restarts and model-server hiccups pass
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=4,
)
def synthesize_request(self: Any, request: str, run: str) -> dict[str, Any]:
    """Run synthesis for one `BoundaryRequest` (JSON) of `run`; returns a small summary."""
    t0 = time.perf_counter()
    summary = _worker().handle(BoundaryRequest.model_validate_json(request), run)
    summary["worker_s"] = time.perf_counter() - t0
    return summary
