"""Where a step's tasks come from, and what the trainer tells the buffer afterwards.

- `StaticSource`: the fixed seed pool (the fixed-data baseline), reshuffled every epoch.
- `BufferSource`: the Redis replay buffer of a run (`rods` mode). After each step it reports the
  group stats, runs the boundary detector and publishes the step's requests; at each epoch
  boundary it sweeps (retires) and promotes staged tasks.

Both are deterministic functions of (seed, step) for the tasks they choose, so a resumed run
draws the same batches it would have drawn without the crash (given the same buffer contents).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rods.boundary import (
    DetectorRules,
    boundary_metrics,
    group_stats,
    select_requests,
)
from rods.tasks import Task
from trainer.types import Trajectory


def epoch_length(pool_size: int, tasks_per_step: int, configured: int = 0) -> int:
    """Steps per epoch: configured, else one pass over the pool (at least one step)."""
    return configured if configured > 0 else max(1, pool_size // max(1, tasks_per_step))


class StaticSource:
    """Uniform passes over a fixed list of tasks, a new shuffle each epoch."""

    def __init__(self, tasks: Sequence[Task], tasks_per_step: int, seed: int, steps_per_epoch: int = 0):
        if not tasks:
            raise ValueError("the static task pool is empty: check the task subset and categories")
        self.tasks = list(tasks)
        self.B = min(tasks_per_step, len(self.tasks))
        self.seed = seed
        self.steps_per_epoch = epoch_length(len(self.tasks), self.B, steps_per_epoch)

    def sample(self, step: int) -> list[Task]:
        epoch, k = divmod(step, self.steps_per_epoch)
        order = list(range(len(self.tasks)))
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        start = (k * self.B) % len(order)
        idx = (order + order)[start : start + self.B]
        return [self.tasks[i] for i in idx]

    def after_step(self, step: int, groups_B_G: Sequence[Sequence[Trajectory]]) -> dict[str, float]:
        stats = [group_stats(g[0].task_id, [t.reward for t in g]) for g in groups_B_G]
        return boundary_metrics(stats)

    def is_epoch_end(self, step: int) -> bool:
        return (step + 1) % self.steps_per_epoch == 0

    def end_epoch(self, step: int) -> dict[str, float]:
        return {}

    def pool_metrics(self) -> dict[str, float]:
        return {"buffer/active": float(len(self.tasks))}


class BufferSource:
    """Batches from the replay buffer; reports, detects and publishes after every step."""

    def __init__(
        self,
        buffer: Any,  # rods.store.contract.ReplayBuffer
        stream: Any,  # rods.store.stream.BoundaryStream
        tasks_per_step: int,
        seed: int,
        rules: DetectorRules,
        steps_per_epoch: int = 0,
        signatures: dict[str, Any] | None = None,
    ):
        self.buffer = buffer
        self.stream = stream
        self.B = tasks_per_step
        self.seed = seed
        self.rules = rules
        self.signatures = signatures or {}
        self._configured_epoch = steps_per_epoch
        self._epoch_started = 0
        self._epoch_len = self._current_epoch_length()

    def _current_epoch_length(self) -> int:
        active = self.buffer.counts().get("active", 0)
        return epoch_length(active, self.B, self._configured_epoch)

    def sample(self, step: int) -> list[Task]:
        tasks = self.buffer.sample(self.B, rng=np.random.default_rng([self.seed, step]))
        if not tasks:
            raise RuntimeError(
                f"the replay buffer of run {self.buffer.run!r} has no active task; "
                "load the seeds first (`rods buffer init --run …`)"
            )
        return tasks

    def after_step(self, step: int, groups_B_G: Sequence[Sequence[Trajectory]]) -> dict[str, float]:
        t0 = time.perf_counter()
        stats_B = [group_stats(g[0].task_id, [t.reward for t in g], self.rules) for g in groups_B_G]
        self.buffer.report(stats_B, step)
        last = self.stream.last_requested([s.task_id for s in stats_B])
        sigs = {s.task_id: self.signatures[s.task_id] for s in stats_B if s.task_id in self.signatures}
        requests = select_requests(stats_B, step, last, self.rules, sigs)
        published = self.stream.publish(requests)
        out = boundary_metrics(stats_B, len(published))
        out["time/detector"] = time.perf_counter() - t0
        return out

    def is_epoch_end(self, step: int) -> bool:
        return step + 1 - self._epoch_started >= self._epoch_len

    def end_epoch(self, step: int) -> dict[str, float]:
        retired, promoted = self.buffer.end_epoch(step)
        self._epoch_started = step + 1
        self._epoch_len = self._current_epoch_length()
        return {"buffer/promoted": float(len(promoted)), "buffer/retired_now": float(len(retired))}

    def pool_metrics(self) -> dict[str, float]:
        return self.buffer.metrics()
