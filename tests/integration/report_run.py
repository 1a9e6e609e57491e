"""A small, realistic run directory for report tests: fake rewards, a genuine buffer event log.

The pool is a real `MemoryBuffer` driven the way the trainer drives it (load seeds, report group
stats, admit staged variants per boundary request, sweep + promote at epoch ends), so
events.jsonl and buffer.jsonl are what a run writes; rewards, timings and synthesis figures are
made up (seeded) but shaped like a run's: R_P rising, depletion growing in the static run.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from rods.pool import PoolRules, Report
from rods.store.memory import MemoryBuffer
from rods.tasks import CATEGORIES, RodsMeta, Task, load_split, synthetic_id

STEPS = 30
EPOCH = 6  # steps per epoch: sweep + promote
RULES = PoolRules(beta=0.5, p_max=40, stale_steps=100)
NASTY = '<script>alert("x")</script> & <b>bold</b>'  # in every variant's first turn: escaped?


def variant(parent: Task, k: int) -> Task:
    """A synthetic child of `parent` (one generation deeper), with its own user turns."""
    gen = (parent.rods.generation if parent.rods else 0) + 1
    root = (parent.rods.root_id if parent.rods and parent.rods.root_id else None) or parent.id
    turns = [[{"role": "user", "content": f"Variant {k}, turn {u}: please redo step {u} "
               f"with the other file. {NASTY if u == 0 else ''}"}]
             for u in range(len(parent.question))]  # fmt: skip
    body = parent.to_bfcl() | {"question": turns}
    body.pop("rods", None)
    return Task.model_validate(body | {
        "id": synthetic_id(parent.category, body),
        "rods": RodsMeta(origin="synthetic", parent_id=parent.id, root_id=root, generation=gen,
                         synthesizer="procedural"),
    })  # fmt: skip


def _metrics(step: int, rng: random.Random, buf: MemoryBuffer | None, n_requests: int) -> dict:
    progress = step / STEPS
    frac_hard = max(0.05, 0.5 - 0.4 * progress)
    frac_mastered = min(0.6, 0.1 + 0.4 * progress)
    row = {
        "step": step,
        "reward/mean": 0.25 + 0.35 * progress + rng.uniform(-0.04, 0.04),
        "reward/correct": 0.1 + 0.3 * progress + rng.uniform(-0.03, 0.03),
        "reward/frac_zero_var": (0.2 + 0.15 * progress if buf else 0.2 + 0.55 * progress)
        + rng.uniform(-0.03, 0.03),
        "time/rollout": 9.0 + rng.uniform(0, 2),
        "time/update": 3.0 + rng.uniform(0, 1),
        "tokens/generated": 4000 + 50 * step,
        "tool/errors/bad_json": float(rng.randint(0, 3)),
        "tool/errors/unknown_function": float(rng.randint(0, 2)),
        "loss/pg": rng.uniform(-0.1, 0.1),
    }
    row["time/step"] = row["time/rollout"] + row["time/update"] + 0.5
    if buf is not None:
        row |= {
            "boundary/frac_hard": frac_hard,
            "boundary/frac_mastered": frac_mastered,
            "boundary/frac_boundary": 1.0 - frac_hard - frac_mastered,
            "boundary/requests": float(n_requests),
            "time/detector": 0.01,
            **buf.metrics(),
        }
    else:
        row["buffer/active"] = 8.0
    if step == 7:  # an unscorable step: NaN is written as null
        row["reward/mean"] = None
        row["boundary/frac_boundary"] = None
    return row


def make_static_run(run_dir: Path, seed: int = 1) -> Path:
    """A static run's metrics.jsonl and config.json (fixed seeds: no buffer, no detector)."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "metrics.jsonl").open("w") as f:
        f.writelines(json.dumps(_metrics(s, rng, None, 0)) + "\n" for s in range(1, STEPS + 1))
    (run_dir / "config.json").write_text(json.dumps({"loop": {"mode": "static"}}))
    return run_dir


def make_run(run_dir: Path, seed: int = 0) -> Path:
    """Write metrics.jsonl, events.jsonl, synth.json, buffer.jsonl, config.json into run_dir."""
    rng = random.Random(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = [t for c in CATEGORIES for t in load_split("train", [c])[:2]]
    buf = MemoryBuffer(run="report", rules=RULES)
    buf.load_seeds(seeds)
    latencies: list[float] = []
    made = 0
    rows = []
    for step in range(1, STEPS + 1):
        ids = buf.sample_ids(4, rng=rng.randrange(1 << 30))
        means = {t: min(1.0, max(0.0, rng.gauss(0.3 + 0.4 * step / STEPS, 0.25))) for t in ids}
        buf.report([Report(task_id=t, reward_mean=m, reward_var=m * (1 - m)) for t, m in means.items()], step)
        boundary = [t for t, m in means.items() if 0.2 <= m <= 0.85][:2]
        for t in boundary:
            parent = buf.get_tasks([t])[0]
            kids = [variant(parent, made), variant(parent, made + 1)]
            made += 2
            buf.add_staged(kids, step=step, priority=4 * means[t] * (1 - means[t]),
                           request_id=f"{t}@{step}")  # fmt: skip
            latencies.append(rng.lognormvariate(math.log(6.0), 0.5))
        if step % EPOCH == 0:
            buf.end_epoch(step)
        rows.append(_metrics(step, rng, buf, len(boundary)))
    with (run_dir / "metrics.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with (run_dir / "events.jsonl").open("w") as f:
        f.writelines(e.model_dump_json() + "\n" for e in buf.events())
    with (run_dir / "buffer.jsonl").open("w") as f:
        f.writelines(json.dumps(t.to_bfcl()) + "\n" for t in buf.export_tasks())
    synth = {
        "synth/results": float(len(latencies)), "synth/accepted": float(made),
        "synth/attempts": float(made + 9), "synth/staged": float(made),
        "synth/reject/near_duplicate": 4.0, "synth/reject/signature_distance": 3.0,
        "synth/fail/execution_error": 2.0,
        "time/synth/plan": 1.2, "time/synth/execute": 4.5, "time/synth/rewrite": 0.8,
        "time/synth/critique": 2.1,
    }  # fmt: skip
    (run_dir / "synth.json").write_text(json.dumps({"metrics": synth, "latency_s": latencies}))
    (run_dir / "config.json").write_text(json.dumps({"loop": {"mode": "rods"}}))
    return run_dir
