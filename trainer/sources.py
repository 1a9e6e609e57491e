"""Where a step's tasks come from, and what the trainer tells the buffer afterwards.

`BufferSource` is the one task source of every mode: batches are drawn from the run's replay
buffer (the seeds loaded into it, plus promoted synthetic tasks), after each step the group stats
are reported to it (report-time retirement), and at each epoch boundary it sweeps (stale,
over-cap) and promotes staged tasks. The modes differ only in what is published on the boundary
stream after a step (`Publish`), so that an arm differs from `rods` in exactly one thing:

- `boundary` (mode `rods`): the detector's requests (`rods.boundary.select_requests`);
- `uniform` (mode `uniform`): as many requests as the detector chose at this step, for tasks of
  the batch drawn uniformly at random (`select_uniform_requests`) — is targeting what helps?
- `none` (mode `static`): nothing. Synthesis is off, so nothing is ever staged or promoted; the
  sampler, the epoch length rule and the retirement rules are those of the rods arm. That is
  the fair control: with the default rules seeds never retire, so `static` trains on the seeds
  with the rods arm's sampler; where a run lets seeds retire (`[pool] seeds_can_retire`), both
  arms retire them by the same rule, which is what "the buffer with synthesis off" means.

Batches are a deterministic function of (seed, step, the active pool): a resumed run draws the
batches it would have drawn without the crash. The epoch position (the step the current epoch
started at, and its length, fixed when it started) is part of the checkpoint (`state`/`restore`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from rods.boundary import (
    DetectorRules,
    boundary_metrics,
    group_stats,
    select_requests,
    select_uniform_requests,
)
from rods.tasks import Task
from trainer.types import Trajectory

Publish = Literal["boundary", "uniform", "none"]
PUBLISH_OF_MODE: dict[str, Publish] = {"rods": "boundary", "uniform": "uniform", "static": "none"}


def epoch_length(pool_size: int, tasks_per_step: int, configured: int = 0) -> int:
    """Steps per epoch: configured, else one pass over the pool (at least one step)."""
    return configured if configured > 0 else max(1, pool_size // max(1, tasks_per_step))


class BufferSource:
    """Batches from the replay buffer; reports, detects and (by mode) publishes after each step."""

    def __init__(
        self,
        buffer: Any,  # rods.store.contract.ReplayBuffer
        stream: Any,  # rods.store.stream.BoundaryStream; unused when publish = "none"
        tasks_per_step: int,
        seed: int,
        rules: DetectorRules,
        steps_per_epoch: int = 0,
        signatures: dict[str, Any] | None = None,
        publish: Publish = "boundary",
    ):
        if publish != "none" and stream is None:
            raise ValueError(f"publish = {publish!r} needs a boundary stream")
        self.buffer = buffer
        self.stream = stream
        self.B = tasks_per_step
        self.seed = seed
        self.rules = rules
        self.signatures = signatures or {}
        self.publish = publish
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
        n_published = 0
        if self.publish != "none":
            ids = [s.task_id for s in stats_B]
            last = self.stream.last_requested(ids)
            sigs = {t: self.signatures[t] for t in ids if t in self.signatures}
            requests = select_requests(stats_B, step, last, self.rules, sigs)
            if self.publish == "uniform":
                requests = select_uniform_requests(
                    stats_B, step, last, len(requests), self.seed, self.rules, sigs
                )
            n_published = len(self.stream.publish(requests))
        out = boundary_metrics(stats_B, n_published, self.rules)
        out["time/detector"] = time.perf_counter() - t0
        return out

    def is_epoch_end(self, step: int) -> bool:
        return step + 1 - self._epoch_started >= self._epoch_len

    def end_epoch(self, step: int) -> dict[str, float]:
        retired, promoted = self.buffer.end_epoch(step)
        self._epoch_started = step + 1
        self._epoch_len = self._current_epoch_length()
        return {
            "buffer/promoted": float(len(promoted)),
            "buffer/retired_now": float(len(retired)),
            "loop/epoch_end": 1.0,
        }

    def pool_metrics(self) -> dict[str, float]:
        return self.buffer.metrics()

    def state(self) -> dict[str, int]:
        """The epoch position, saved in the checkpoint."""
        return {"epoch_started": self._epoch_started, "epoch_len": self._epoch_len}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue the epoch a checkpoint was in (a checkpoint without the position keeps the
        fresh start: epoch 0, length from the pool now)."""
        if "epoch_started" in state and "epoch_len" in state:
            self._epoch_started = int(state["epoch_started"])
            self._epoch_len = int(state["epoch_len"])
