"""The Celery task: one boundary request → one graph run → validated tasks staged in the buffer.

Idempotent on the request id: a redelivered or re-sent request whose output is already stored
does nothing; staging itself is atomic and keyed by the request id (`ReplayBuffer.add_staged`).

What raises fails the task, and nothing is retried here: a model server that cannot be reached or
is misconfigured (`BackendUnavailable`, raised before anything is stored), a Redis error that
outlasted the client's own backoff, a request for a task the run does not hold. The dispatcher
records the error on the stream entry and sends the request again after a backoff, and
dead-letters it after the delivery limit. (A Celery `autoretry_for` would re-publish the task to
the broker — during a Redis outage, the server that is down — and the message would be lost.)
Everything else inside the graph is a counted failure in the result: the request is done.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery.signals import worker_init

from rods.boundary import BoundaryRequest
from rods.config import Settings
from rods.store.keys import SYNTH_TASK
from services.celery_app import app
from services.synthesis import SynthWorker

_local = threading.local()  # one SynthWorker per worker thread/process: clients are not shared


@worker_init.connect
def _warm_up(**_: Any) -> None:
    """Import the model client in the worker's main process (forked pool children inherit it):
    the first task must not spend its soft time limit importing litellm."""
    if Settings().synth_backend == "llm":
        from graphs.synthesis.llm import warm_up

        warm_up()


def _worker() -> SynthWorker:
    w = getattr(_local, "worker", None)
    if w is None:
        w = _local.worker = SynthWorker(Settings())
    return w


@app.task(name=SYNTH_TASK, bind=True, acks_late=True)  # retries: the dispatcher's (see above)
def synthesize_request(self: Any, request: str, run: str) -> dict[str, Any]:
    """Run synthesis for one `BoundaryRequest` (JSON) of `run`; returns a small summary."""
    t0 = time.perf_counter()
    summary = _worker().handle(BoundaryRequest.model_validate_json(request), run)
    summary["worker_s"] = time.perf_counter() - t0
    return summary
