"""What a synthesis worker does with one boundary request, free of Celery (testable directly).

    seed   = the requested task, read from the run's buffer (seeds and synthetic tasks alike)
    result = graphs.synthesis.synthesize(seed, …)        validated variants + counted failures
    buffer.add_staged(result.tasks, request_id=…)         atomic, at most once per request id
    metrics → rods:<run>:synth:metrics (summed counters the trainer and the demo display read)
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from graphs.synthesis.backends import make_backend
from graphs.synthesis.gates import DedupIndex
from graphs.synthesis.graph import synthesize
from graphs.synthesis.state import SynthConfig, result_metrics
from rods.boundary import BoundaryRequest
from rods.config import Settings
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.keys import RunKeys


def request_seed(request_id: str) -> int:
    """A stable RNG seed per request: a redelivered request replays the same choices."""
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16)


class SynthWorker:
    """Per-process (or per-thread) state: Redis client, backend, dedup index of each run's pool."""

    POOL_REFRESH_S = 30.0  # the pool changes at epoch boundaries; re-reading it more often is waste

    def __init__(self, settings: Settings):
        self.settings = settings
        self.r = connect(settings)
        self.backend = make_backend(settings)
        self.config = SynthConfig(signature_tolerance=settings.synth_signature_tolerance)
        self._pools: dict[str, tuple[float, DedupIndex]] = {}
        self._lock = threading.Lock()

    def _pool_index(self, buffer: RedisBuffer, run: str) -> DedupIndex:
        with self._lock:
            cached = self._pools.get(run)
            if cached and time.monotonic() - cached[0] < self.POOL_REFRESH_S:
                return cached[1]
        index = DedupIndex(buffer.export_tasks(["active", "staged"]), threshold=self.config.near_duplicate)
        with self._lock:
            self._pools[run] = (time.monotonic(), index)
        return index

    def _llm_metrics(self) -> dict[str, float]:
        stats = getattr(self.backend, "stats", None)  # the llm backend's per-stage counters
        return stats.metrics() if stats is not None else {}

    def handle(self, request: BoundaryRequest, run: str) -> dict[str, Any]:
        buffer = RedisBuffer(self.r, run, self.settings.pool_rules())
        if buffer.is_request_done(request.request_id):
            return {"status": "already_done", "request_id": request.request_id, "staged": 0}
        (seed,) = buffer.get_tasks([request.task_id])  # KeyError: the task is not in this run
        pool = self._pool_index(buffer, run)
        llm_before = self._llm_metrics()  # this thread's backend: only this request runs on it
        result = synthesize(
            seed,
            n_variants=request.n_variants,
            backend=self.backend,
            config=self.config,
            pool_index=pool,
            request_id=request.request_id,
            rng_seed=request_seed(request.request_id),
        )
        admitted = buffer.add_staged(
            result.tasks, step=request.policy_step, priority=request.score, request_id=request.request_id
        )
        for task in result.tasks:
            pool.add(task)
        keys = RunKeys(run)
        pipe = self.r.pipeline(transaction=False)
        for k, v in result_metrics(result).items():
            if v == v:  # NaN ratios are per-result; the sums below rebuild them for the run
                pipe.hincrbyfloat(keys.synth_metrics, k, v)
        for k, v in self._llm_metrics().items():  # llm/<stage>/…: calls, kinds, seconds, tokens
            if v - llm_before.get(k, 0.0):
                pipe.hincrbyfloat(keys.synth_metrics, k, v - llm_before.get(k, 0.0))
        pipe.hincrbyfloat(keys.synth_metrics, "synth/results", 1)
        pipe.hincrbyfloat(keys.synth_metrics, "synth/staged", len(admitted.admitted))
        pipe.execute()
        return {
            "status": "already_done" if admitted.already_done else "ok",
            "request_id": request.request_id,
            "staged": len(admitted.admitted),
            "duplicates": len(admitted.duplicates),
            "accepted": len(result.tasks),
            "attempts": result.attempts,
            "failures": result.failures,
            "rejections": result.rejections,
        }
