"""The progress reward as TRL's reward function, and RODS's per-step work around it.

TRL calls the reward function once per generation in every process with that process's rows
(one group of G rollouts may be split across processes) and gathers the returned rewards itself
in process order; advantages are then `rewards.view(-1, G)`. So the function:

1. returns R_P of each row (the score of the episode that produced the completion; NaN if
   unscorable, which TRL treats as "no reward": advantage 0);
2. gathers (task id, step, episode summary) from every process, in the same process order as
   TRL's gather, and checks that every block of G consecutive rows is one task of one step
   (`check_groups`): a mixed group raises `MixedGroupError` in every process before any loss
   is computed, so it is never trained on;
3. on the main process: reports the groups to the buffer, runs the detector and publishes the
   step's requests (`trainer.sources.BufferSource.after_step`, the native code), ends the epoch
   when due (sweep, promotion: `BufferSource.end_epoch`), and keeps the step's metrics in the
   native names (reward/, boundary/, buffer/, time/) for the metrics writer;
4. waits for every process (a barrier), so no process draws a later batch before the epoch end
   is in the buffer: the dataset reads one batch ahead, so an epoch end at step e is visible
   from step e + 2 in every process (the batch of e + 1 was decided before it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from trainer.metrics import rollout_metrics
from trainer.types import Trajectory


class MixedGroupError(RuntimeError):
    """A block of G rows that TRL would treat as one group holds more than one task or step."""


def check_groups(rows: Sequence[tuple[str, int, Trajectory]], G: int) -> list[list[Trajectory]]:
    """Blocks of G rows → groups; each must be one task of one step, episodes of that task. Pure."""
    if len(rows) % G:
        raise MixedGroupError(f"{len(rows)} rows is not a whole number of groups of {G}")
    steps = sorted({step for _, step, _ in rows})
    if len(steps) > 1:
        raise MixedGroupError(f"one generation holds rows of steps {steps}: the processes are out of step")
    groups: list[list[Trajectory]] = []
    for g in range(0, len(rows), G):
        block = rows[g : g + G]
        keys = {(task_id, step) for task_id, step, _ in block}
        ran = {t.task_id for _, _, t in block}
        if len(keys) != 1 or ran != {block[0][0]}:
            raise MixedGroupError(
                f"group {g // G} mixes {sorted(keys)} (episodes of {sorted(ran)}): processes saw "
                "different batches; refusing to train on it"
            )
        groups.append([t for _, _, t in block])
    return groups


class ProgressReward:
    """TRL reward function `progress`: R_P per row; reports, detects and publishes per step."""

    __name__ = "progress"  # TRL names the reward's metrics after it (rewards/progress/mean)

    def __init__(self, source: Any, group_size: int, *, batches: Any = None, rollout: Any = None):
        self.source = source  # trainer.sources.BufferSource (main process) or None (others)
        self.G = group_size
        self.batches = batches  # trainer.trl.dataset.StepBatches, for its sampling time
        self.rollout = rollout  # trainer.trl.rollout.RolloutFunc, for its rollout time
        self.pending: dict[int, dict[str, float]] = {}  # step → metrics, taken by the writer
        self.epoch_ends: list[int] = []  # steps after which an epoch ended (main process)

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        task_id: list[str],
        rods_step: list[int],
        rods_trajectory: list[Trajectory],
        **_: Any,
    ) -> list[float | None]:
        from accelerate import PartialState
        from accelerate.utils import gather_object

        t0 = time.perf_counter()
        state = PartialState()
        local = list(zip(task_id, (int(s) for s in rods_step), rods_trajectory, strict=True))
        rows = gather_object(local)  # every process's rows, in process order (as TRL gathers)
        groups_B_G = check_groups(rows, self.G)
        step = rows[0][1]
        if state.is_main_process and self.source is not None:
            self.pending[step] = self._main_step(step, groups_B_G, t0)
        state.wait_for_everyone()  # the epoch end is in the buffer before anyone reads ahead
        return [t.reward if math.isfinite(t.reward) else None for t in rods_trajectory]

    def _main_step(self, step: int, groups_B_G: list[list[Trajectory]], t0: float) -> dict[str, float]:
        metrics = rollout_metrics(groups_B_G)
        metrics.update(self.source.after_step(step, groups_B_G))
        if self.source.is_epoch_end(step):
            metrics.update(self.source.end_epoch(step))
            self.epoch_ends.append(step)
        metrics.update(self.source.pool_metrics())
        if self.rollout is not None:
            metrics["time/rollout"] = self.rollout.seconds
        if self.batches is not None:
            metrics["time/sample"] = self.batches.sample_seconds
            self.batches.sample_seconds = 0.0
        metrics["time/rods"] = time.perf_counter() - t0 + metrics.get("time/sample", 0.0)
        return metrics
