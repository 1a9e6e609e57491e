"""Held-out evaluation: greedy rollouts scored by bfcl-eval's own checker (the official metric).

`evaluate(...)` rolls a policy out greedily (one trajectory per task) on a split, scores each
trajectory with `rods.env.official.official_correct` — bfcl-eval's `multi_turn_checker`, behind a
wrapper that never lets it evaluate policy text — and with our R_P, and writes a table in the shape
of PAPER.md's: overall, base, miss_func, miss_param, long_context (accuracy in %).
`eval.json` holds every trajectory's verdicts; `eval.md` the table. Our own `correct` is recorded
beside the official verdict; they must agree (tests/unit/test_official_agreement.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rods.env.official import official_correct
from rods.tasks import CATEGORIES, Split, Task, load_split

COLUMNS = ("overall", *CATEGORIES)


def limit_per_category(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    """The first `limit` tasks of each category (BFCL order); all when None."""
    if limit is None:
        return list(tasks)
    seen: dict[str, int] = {}
    out = []
    for t in tasks:
        if seen.get(t.category, 0) < limit:
            seen[t.category] = seen.get(t.category, 0) + 1
            out.append(t)
    return out


@dataclass
class EvalReport:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per task

    def table(self) -> dict[str, dict[str, float]]:
        """Per column: n, official accuracy (%), mean R_P. Overall = mean of the categories."""
        out: dict[str, dict[str, float]] = {}
        for cat in CATEGORIES:
            rows = [r for r in self.rows if r["category"] == cat]
            if rows:
                out[cat] = {
                    "n": len(rows),
                    "accuracy": 100.0 * sum(r["official_correct"] for r in rows) / len(rows),
                    "progress": sum(r["progress"] for r in rows) / len(rows),
                }
        if out:
            out["overall"] = {
                "n": sum(v["n"] for v in out.values()),
                "accuracy": sum(v["accuracy"] for v in out.values()) / len(out),
                "progress": sum(v["progress"] for v in out.values()) / len(out),
            }
        return out

    @property
    def disagreements(self) -> int:
        return sum(r["official_correct"] != r["correct"] for r in self.rows)

    def markdown(self, title: str) -> str:
        t = self.table()
        cols = [c for c in COLUMNS if c in t]
        lines = [
            f"## {title}",
            "",
            "| metric | " + " | ".join(cols) + " |",
            "|---|" + "---|" * len(cols),
            "| official accuracy (%) | " + " | ".join(f"{t[c]['accuracy']:.2f}" for c in cols) + " |",
            "| mean R_P | " + " | ".join(f"{t[c]['progress']:.3f}" for c in cols) + " |",
            "| tasks | " + " | ".join(str(int(t[c]["n"])) for c in cols) + " |",
            "",
            f"Our verdict disagreed with the official checker on {self.disagreements} trajectories.",
        ]
        return "\n".join(lines) + "\n"


def score_trajectories(tasks: Sequence[Task], trajectories: Sequence[Any]) -> EvalReport:
    """Official and R_P verdicts of one trajectory per task."""
    report = EvalReport()
    for task, traj in zip(tasks, trajectories, strict=True):
        report.rows.append(
            {
                "task_id": task.id,
                "category": task.category,
                "official_correct": official_correct(task, traj.calls_per_turn),
                "correct": traj.correct,
                "progress": traj.reward,
                "turn_success": traj.score.turn_success,
                "stop_reason": traj.stop_reason,
                "tool_errors": traj.tool_errors,
            }
        )
    return report


def evaluate(
    checkpoint: str,
    out_dir: Path,
    *,
    split: Split = "eval",
    limit: int | None = None,
    device: str = "auto",
    rollout_overrides: dict[str, Any] | None = None,
) -> EvalReport:
    """Greedy rollouts of `checkpoint` on `split`; writes eval.json and eval.md into `out_dir`."""
    from trainer.config import RolloutConfig
    from trainer.loop import resolve_device
    from trainer.policy import load_policy
    from trainer.rollout import make_engine

    dev = resolve_device(device)
    model, tokenizer = load_policy(checkpoint, device=dev)
    model.eval()
    cfg = RolloutConfig(**(rollout_overrides or {}))
    engine = make_engine(cfg, model, tokenizer, device=dev, greedy=True)
    tasks = limit_per_category(load_split(split), limit)
    groups = engine.rollout(tasks, 1)
    report = score_trajectories(tasks, [g[0] for g in groups])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval.json").write_text(
        json.dumps({"checkpoint": checkpoint, "split": split, "table": report.table(), "rows": report.rows}, indent=2)
    )
    (out_dir / "eval.md").write_text(report.markdown(f"{checkpoint} on the {split} split"))
    return report
