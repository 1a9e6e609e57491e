"""The run report's inputs, read tolerantly, and the pure summaries the page is drawn from.

`load_run(run_dir, compare)` reads metrics.jsonl, events.jsonl, synth.json, buffer.jsonl and
config.json (see `report.html` for the contract); anything missing or unreadable becomes a
line in `RunData.notes`, never an exception. Metric values that are null, NaN, infinite or not
numbers become None. Everything after `load_run` is a pure function of `RunData`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from report import svg
from report.svg import finite, quantile
from rods.pool import PoolRules
from rods.store.events import BufferEvent, count_history
from rods.tasks import Task, TaskFileError, get_bfcl_task, parse_task

Row = dict[str, float | None]  # one metrics line: "step" and slash-named values (None = NaN)
N_PAIRS = 4  # synthesized tasks shown next to their seed
REGIONS = ("hard", "boundary", "mastered")
STATES = ("active", "staged", "retired")


@dataclass
class RunData:
    """Everything the page shows, read once; `notes` says what was missing or skipped."""

    run_dir: Path
    metrics: list[Row] = field(default_factory=list)
    events: list[BufferEvent] = field(default_factory=list)
    synth: dict[str, float] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    label: str = "this run"
    compare: list[Row] | None = None
    compare_label: str = "compare"
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading (tolerant)


def read_jsonl(path: Path, notes: list[str]) -> list[dict[str, Any]] | None:
    """JSON objects of a JSONL file; None (and a note) when it is missing; bad lines are noted."""
    if not path.is_file():
        notes.append(f"{path.name} not found: the plots that need it are left out.")
        return None
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            bad += 1
    if bad:
        notes.append(f"{path.name}: {bad} unreadable line(s) skipped.")
    return rows


def clean_metrics(rows: list[dict[str, Any]]) -> list[Row]:
    """Numeric values only (NaN, null, strings → None), one row per step (the last), by step."""
    by_step: dict[int, Row] = {}
    for i, obj in enumerate(rows):
        step = finite(obj.get("step"))
        key = int(step) if step is not None else i + 1
        by_step[key] = {k: finite(v) for k, v in obj.items() if k != "step"} | {"step": float(key)}
    return [by_step[s] for s in sorted(by_step)]


def metrics_path(path: Path) -> Path:
    return path / "metrics.jsonl" if path.is_dir() else path


def run_mode(run_dir: Path) -> str | None:
    """`loop.mode` of the run's config.json (rods | static), when readable."""
    try:
        mode = json.loads((run_dir / "config.json").read_text())["loop"]["mode"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return mode if isinstance(mode, str) else None


def _run_label(run_dir: Path, default: str) -> str:
    mode = run_mode(run_dir) or default
    return mode if run_dir.name == mode else f"{mode} ({run_dir.name})"


def load_run(run_dir: Path, compare: Path | None = None) -> RunData:
    data = RunData(run_dir=run_dir)
    notes = data.notes
    if not run_dir.is_dir():
        notes.append(f"run directory {run_dir} not found.")
    rows = read_jsonl(run_dir / "metrics.jsonl", notes)
    data.metrics = clean_metrics(rows or [])
    if rows is not None and not data.metrics:
        notes.append("metrics.jsonl holds no steps.")
    data.label = _run_label(run_dir, "this run")
    if run_dir.is_dir() and run_mode(run_dir) is None:
        notes.append("config.json not found or without loop.mode: the legends say 'this run'.")
    events = read_jsonl(run_dir / "events.jsonl", notes)
    bad = 0
    for obj in events or []:
        try:
            data.events.append(BufferEvent.model_validate(obj))
        except ValidationError:
            bad += 1
    if bad:
        notes.append(f"events.jsonl: {bad} event(s) that are not BufferEvents skipped.")
    synth_path = run_dir / "synth.json"
    if not synth_path.is_file():
        notes.append("synth.json not found: no synthesis outcomes or latencies.")
    else:
        try:
            obj = json.loads(synth_path.read_text())
            metrics = obj.get("metrics", {}) if isinstance(obj, dict) else {}
            latency = obj.get("latency_s", []) if isinstance(obj, dict) else []
            data.synth = {str(k): f for k, v in metrics.items() if (f := finite(v)) is not None}
            data.latency_s = [v for x in latency if (v := finite(x)) is not None]
        except (ValueError, AttributeError, TypeError):
            notes.append("synth.json is not a {metrics, latency_s} JSON object: skipped.")
    for i, obj in enumerate(read_jsonl(run_dir / "buffer.jsonl", notes) or []):
        try:
            data.tasks.append(parse_task(obj, where=f"buffer.jsonl:{i + 1}"))
        except TaskFileError as e:
            notes.append(f"{e} (skipped)")
    if compare is not None:
        cmp_rows = read_jsonl(metrics_path(compare), notes)
        data.compare = clean_metrics(cmp_rows or [])
        base = compare if compare.is_dir() else compare.parent
        data.compare_label = _run_label(base, "compare")
    return data


# ---------------------------------------------------------------- pure summaries


def series(rows: list[Row], key: str) -> tuple[list[float], list[float | None]]:
    return [r["step"] or 0.0 for r in rows], [r.get(key) for r in rows]


def has(rows: list[Row] | None, key: str) -> bool:
    return any(r.get(key) is not None for r in rows or [])


def suffixes(rows: list[Row], prefix: str) -> list[str]:
    """Sorted names after `prefix` among the metric keys (numeric names in numeric order)."""
    names = {k[len(prefix) :] for r in rows for k in r if k.startswith(prefix) and k != prefix}
    names = {n for n in names if "/" not in n}
    return sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))


def pool_history(data: RunData) -> tuple[list[Row], str]:
    """Per-step pool counters (`buffer/<state>[/<dim>/<value>]`): from metrics when they hold the
    per-origin counts, else rebuilt from the event log (last event of each step)."""
    if any(k.startswith("buffer/active/origin/") for r in data.metrics for k in r):
        rows = [r for r in data.metrics if any(k.startswith("buffer/") for k in r)]
        return rows, "metrics.jsonl (buffer/*)"
    if data.events:
        by_step: dict[int, Row] = {}
        for event, counts in count_history(data.events, PoolRules()):
            by_step[event.step] = {"step": float(event.step)} | {
                f"buffer/{k}": float(v) for k, v in counts.items()
            }
        return [by_step[s] for s in sorted(by_step)], "events.jsonl (replayed)"
    return [], ""


def synth_outcomes(synth: dict[str, float]) -> list[tuple[str, float, str]]:
    """(label, count, colour): accepted, then rejection reasons and failure codes, largest first."""
    out = [("accepted", synth.get("synth/accepted", 0.0), svg.PALETTE[2])]
    for prefix, color in (("synth/reject/", svg.PALETTE[1]), ("synth/fail/", svg.PALETTE[3])):
        items = [(k[len(prefix) :], v) for k, v in synth.items() if k.startswith(prefix)]
        kind = prefix.split("/")[1]
        out += [(f"{kind}: {n}", v, color) for n, v in sorted(items, key=lambda x: (-x[1], x[0]))]
    return out


def latency_summary(latency_s: list[float], step_s: list[float | None]) -> dict[str, float | None]:
    return {
        "n": float(len(latency_s)),
        "median": quantile(latency_s, 0.5),
        "p95": quantile(latency_s, 0.95),
        "step_median": quantile([s for s in step_s if s is not None], 0.5),
    }


def task_pairs(tasks: list[Task], limit: int = N_PAIRS) -> list[tuple[Task, Task | None, str]]:
    """Up to `limit` synthesized tasks with the task they were made from (a seed, or an earlier
    variant), found in the exported buffer or else among the BFCL tasks; the string says why a
    parent is missing. Active tasks and low generations first, one per category before a second,
    never two of the same parent."""
    by_id = {t.id: t for t in tasks}
    rank = {"active": 0, "staged": 1, "retired": 2}
    synthetic = [t for t in tasks if t.rods is not None and t.rods.origin == "synthetic"]
    synthetic.sort(key=lambda t: (rank.get(buffer_block(t).get("state", ""), 3),
                                  t.rods.generation if t.rods else 0, t.id))  # fmt: skip
    chosen: list[Task] = []
    for new_category_only in (True, False):
        for t in synthetic:
            parent = t.rods.parent_id if t.rods else None
            if len(chosen) == limit or any(c.id == t.id for c in chosen) or any(
                (c.rods.parent_id if c.rods else None) == parent
                or (new_category_only and c.category == t.category) for c in chosen
            ):  # fmt: skip
                continue
            chosen.append(t)
    out: list[tuple[Task, Task | None, str]] = []
    for t in chosen:
        parent_id = t.rods.parent_id if t.rods else None
        parent, why = by_id.get(parent_id or ""), ""
        if parent is None and parent_id:
            try:
                parent = get_bfcl_task(parent_id)
            except Exception as e:  # noqa: BLE001 — bfcl_eval missing or an unknown id: a note
                why = f"parent {parent_id} not found ({type(e).__name__}: {e})"
        elif parent is None:
            why = "no parent id"
        out.append((t, parent, why))
    return out


def buffer_block(task: Task) -> dict[str, Any]:
    extra = (task.rods.model_extra or {}) if task.rods else {}
    block = extra.get("buffer")
    return block if isinstance(block, dict) else {}
