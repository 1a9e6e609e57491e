"""Held-out evaluation: greedy rollouts scored by bfcl-eval's own checker (the official metric).

`evaluate(...)` rolls a policy out greedily (one trajectory per task) on a split, scores each
trajectory with `rods.env.official.official_correct` — bfcl-eval's `multi_turn_checker`, behind a
wrapper that never lets it evaluate policy text — and with our R_P, and writes a table in the shape
of docs/PAPER.md's: overall, base, miss_func, miss_param, long_context (accuracy in %).
`eval.json` holds every trajectory's verdicts; `eval.md` the table. Our own `correct` is recorded
beside the official verdict; they must agree (tests/unit/test_official_agreement.py).

Two inference protocols (`protocol`), recorded in eval.json and eval.md beside every number:
- `train`: the training rollout loop and its limits (steps per turn, malformed calls answered
  with an error message, at most 3 calls per message, the config's token budgets);
- `bfcl`: bfcl-eval's multi-turn inference semantics, so that numbers can be set beside the
  paper's table: its per-turn step limit (read from the installed bfcl_eval), a message with no
  decodable call ends the turn, no per-message call cap, tool results shown whole, and the
  model's full context (max_position_embeddings, else the tokenizer's model_max_length; at
  most 4,096 new tokens per message, as bfcl-eval asks of local models).
The chat template (how tools are rendered to this model) is the config's in both.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rods.env.official import official_correct
from rods.fileio import atomic_write_text
from rods.tasks import CATEGORIES, Split, Task, load_split

COLUMNS = ("overall", *CATEGORIES)
Protocol = Literal["train", "bfcl"]
PROTOCOLS: tuple[Protocol, ...] = ("train", "bfcl")
BFCL_MAX_NEW_TOKENS = 4096  # bfcl-eval's base_oss_handler caps a local model's reply at 4,096
NO_CALL_CAP = 1 << 30  # "no per-message call cap": more calls than any message can hold


def context_length(model: Any, tokenizer: Any) -> int:
    """The model's full context, found as bfcl-eval finds it (config, then tokenizer)."""
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not n:
        n = getattr(tokenizer, "model_max_length", None)
    if not n or n > 10**7:  # transformers' "no limit" sentinel is ~1e30
        raise ValueError("cannot tell the model's context length (no max_position_embeddings)")
    return int(n)


def protocol_settings(protocol: Protocol, model: Any, tokenizer: Any) -> dict[str, Any]:
    """Rollout overrides of a protocol (`train`: none)."""
    if protocol == "train":
        return {}
    if protocol != "bfcl":
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    from rods.env.episode import bfcl_step_limit

    ctx = context_length(model, tokenizer)
    return {
        "protocol": "bfcl",
        "max_steps_per_turn": bfcl_step_limit(),
        "max_calls_per_message": NO_CALL_CAP,
        "max_new_tokens": min(BFCL_MAX_NEW_TOKENS, ctx),
        "max_total_tokens": ctx,
        "tool_result_chars": 0,  # bfcl-eval shows the whole result
        "env_hints": False,
    }


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

    def markdown(self, title: str, protocol: str = "train") -> str:
        t = self.table()
        cols = [c for c in COLUMNS if c in t]
        lines = [
            f"## {title}",
            "",
            f"Inference protocol: `{protocol}` ({PROTOCOL_NOTES.get(protocol, '')}).",
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


PROTOCOL_NOTES = {
    "train": "the training rollout loop and its limits; not comparable with bfcl-eval's table",
    "bfcl": "bfcl-eval's multi-turn inference semantics; comparable with its table",
}


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


def default_eval_dir(model_dir: Path, split: str, protocol: str) -> Path:
    """Where `rods eval` writes when no --out is given: never inside a directory that checkpoint
    rotation deletes. A run's checkpoint (`RUN/checkpoints/step_N`) → `RUN/eval/step_N-SPLIT-PROTOCOL`;
    an SFT warm start (`…/best`) → `…/eval/best-SPLIT-PROTOCOL` beside it; any other model
    directory (not rotated by RODS) → `MODEL/eval-SPLIT-PROTOCOL`."""
    model_dir = Path(os.path.abspath(model_dir))
    name = f"{split}-{protocol}"
    if model_dir.parent.name == "checkpoints":
        return model_dir.parent.parent / "eval" / f"{model_dir.name}-{name}"
    if model_dir.name == "best":
        return model_dir.parent / "eval" / f"best-{name}"
    return model_dir / f"eval-{name}"


def evaluate(
    checkpoint: str,
    out_dir: Path,
    *,
    split: Split = "eval",
    limit: int | None = None,
    device: str = "auto",
    rollout_overrides: dict[str, Any] | None = None,
    protocol: Protocol = "train",
    tasks: Sequence[Task] | None = None,
) -> EvalReport:
    """Greedy rollouts of `checkpoint` on `split` (or on `tasks`, e.g. the held-out split filtered
    by a training subset's structural rule) under `protocol`; writes eval.json and eval.md into
    `out_dir`, each naming the protocol and the rollout settings that produced it."""
    from trainer.config import RolloutConfig
    from trainer.loop import resolve_device
    from trainer.policy import load_policy
    from trainer.rollout import make_engine

    dev = resolve_device(device)
    model, tokenizer = load_policy(checkpoint, device=dev)
    model.eval()
    cfg = RolloutConfig(**(rollout_overrides or {}))
    overrides = protocol_settings(protocol, model, tokenizer)
    engine = make_engine(cfg, model, tokenizer, device=dev, greedy=True, **overrides)
    chosen = limit_per_category(tasks if tasks is not None else load_split(split), limit)
    groups = engine.rollout(chosen, 1)
    report = score_trajectories(chosen, [g[0] for g in groups])
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.asdict(engine.settings)
    atomic_write_text(out_dir / "eval.json",
        json.dumps(
            {"checkpoint": checkpoint, "split": split, "protocol": protocol, "rollout": settings,
             "table": report.table(), "rows": report.rows},
            indent=2,
        )
    )  # fmt: skip
    atomic_write_text(out_dir / "eval.md", report.markdown(f"{checkpoint} on the {split} split", protocol))
    return report
