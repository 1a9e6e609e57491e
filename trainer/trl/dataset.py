"""The replay buffer as TRL's training dataset: the same batch for step k in every process.

TRL's `GRPOTrainer` with a streaming `datasets.IterableDataset` runs the generator in every
process (accelerate keeps each process's slice of each global batch) and reads one batch ahead.
If each process sampled the buffer itself, a promotion landing between two processes' reads
would give them different batches, and TRL would silently build a group of G rollouts from two
tasks. So the batch of a step is decided once: the first process to reach step k samples
(`buffer.sample_ids(B, rng=default_rng([seed, k]))`, the native `BufferSource.sample` draw),
pads to exactly B and writes the ids with HSETNX under `RunKeys.trl_batches`; every process then
reads the stored list. A pool change is thus visible to every process from the same step on.

Rows: `prompt` = the task id (rollout_func receives only prompts; it renders the real prompt,
tools and first user turn, itself — TRL requires chat templating inside rollout_func anyway),
`task_id` (reaches the reward function as a column) and `rods_step` (the step the row belongs
to, so the reward function reports under the step the batch was drawn for).

Determinism on resume: stored batches are kept on resume (the trainer skips the steps already
done by reading them again, and a step sampled ahead before a crash is trained as decided); a
fresh run (no checkpoint) clears them first (`StepBatches.clear`, main process, before a barrier).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from rods.store.keys import RunKeys


def pad_to(ids: list[str], n: int) -> list[str]:
    """Exactly n ids: cycled when fewer (a small pool), cut when more. Pure."""
    if not ids:
        raise ValueError("cannot pad an empty batch")
    return [ids[i % len(ids)] for i in range(n)]


class StepBatches:
    """Step k → the task ids of its batch, decided once per run in Redis (first writer wins)."""

    def __init__(self, redis: Any, buffer: Any, run: str, tasks_per_step: int, seed: int):
        self.r = redis
        self.buffer = buffer  # rods.store.contract.ReplayBuffer
        self.key = RunKeys(run).trl_batches
        self.B = tasks_per_step
        self.seed = seed
        self.sample_seconds = 0.0  # time spent deciding/reading batches in this process (a metric)

    def ids(self, step: int) -> list[str]:
        t0 = time.perf_counter()
        got = self.r.hget(self.key, step)
        if got is None:
            drawn = self.buffer.sample_ids(self.B, rng=np.random.default_rng([self.seed, step]))
            if not drawn:
                raise RuntimeError(
                    f"the replay buffer of run {self.buffer.run!r} has no active task; "
                    "load the seeds first (`rods buffer init --run …`)"
                )
            self.r.hsetnx(self.key, step, json.dumps(pad_to(drawn, self.B)))
            got = self.r.hget(self.key, step)  # the winner's list, ours or another process's
        self.sample_seconds += time.perf_counter() - t0
        return json.loads(got)

    def stored(self) -> dict[int, list[str]]:
        """Every decided step (for tests and audits)."""
        return {int(k): json.loads(v) for k, v in self.r.hgetall(self.key).items()}

    def clear(self) -> None:
        self.r.delete(self.key)


def rows(batches: StepBatches) -> Iterator[tuple[str, dict[str, Any]]]:
    """Endless (key, row) pairs, B rows per step, in step order (TRL makes the G copies)."""
    step = 0
    while True:
        for i, task_id in enumerate(batches.ids(step)):
            yield f"{step}/{i}", {"prompt": task_id, "task_id": task_id, "rods_step": step}
        step += 1


def buffer_dataset(batches: StepBatches) -> Any:
    """A `datasets.IterableDataset` over `rows(batches)` (datasets is imported here, lazily).

    Built from its examples iterable rather than `IterableDataset.from_generator`, which
    fingerprints (pickles) its arguments, and a Redis connection cannot be pickled.
    """
    from datasets import DatasetInfo, Features, IterableDataset, Value
    from datasets.iterable_dataset import ExamplesIterable

    features = Features({"prompt": Value("string"), "task_id": Value("string"), "rods_step": Value("int64")})
    examples = ExamplesIterable(rows, {"batches": batches})
    return IterableDataset(examples, info=DatasetInfo(features=features))
