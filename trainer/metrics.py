"""Metrics: flat slash-named keys from pure functions, written as JSONL (and TensorBoard).

Every line of `metrics.jsonl` is `{"step": n, "<area>/<name>": value, …}`. A resumed run appends
to the same file and continues its step numbers; lines of steps after the resumed checkpoint
(written before a crash) are dropped on resume so each step appears once.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rods.fileio import atomic_write_text
from trainer.types import Trajectory


def rollout_metrics(groups_B_G: Sequence[Sequence[Trajectory]]) -> dict[str, float]:
    """Reward, depletion and tool-error figures of one step's rollout groups."""
    rewards = [t.reward for g in groups_B_G for t in g]
    finite = [r for r in rewards if math.isfinite(r)]
    zero_var = sum(1 for g in groups_B_G if len({t.reward for t in g}) <= 1)
    errors: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    for g in groups_B_G:
        for t in g:
            errors.update(t.tool_errors)
            stops[t.stop_reason.split(":")[0]] += 1
    n = max(len(rewards), 1)
    out = {
        "reward/mean": sum(finite) / len(finite) if finite else float("nan"),
        "reward/correct": sum(t.correct for g in groups_B_G for t in g) / n,
        "reward/frac_zero_var": zero_var / max(len(groups_B_G), 1),
        "reward/unscored": float(len(rewards) - len(finite)),
        "tokens/generated": float(sum(t.n_generated for g in groups_B_G for t in g)),
    }
    out.update({f"tool/errors/{k}": float(v) for k, v in sorted(errors.items())})
    out.update({f"rollout/stop/{k}": v / n for k, v in sorted(stops.items())})
    return out


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():  # keep only steps up to the checkpoint we resume from
            kept = [
                line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))  # a crash keeps the old file
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")  # one whole line, flushed on close
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.open()] if path.exists() else []
