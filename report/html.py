"""The run report: one self-contained `report.html` built from the files of a run directory.

Inputs (each optional; a missing or unreadable one becomes a note on the page, never a crash):
    metrics.jsonl   one object per step: {"step": n, "<area>/<name>": value} (trainer/metrics.py)
    events.jsonl    the buffer event log, one `rods.store.events.BufferEvent` per line
    synth.json      {"metrics": {summed synth/* and time/synth/* figures},
                     "latency_s": [boundary detection → staged task, seconds]}
    buffer.jsonl    the exported buffer: BFCL entries with the `rods` lineage and `buffer` blocks
    config.json     the trainer config (only `loop.mode` is read, for legend labels)
and, optionally, a second run's metrics.jsonl (a static run) overlaid on the reward and
depletion plots. `report.data` reads them (tolerantly) and summarises; this module only
renders: the page has no external assets and no scripts, plots are inline SVG from `report.svg`,
and all task text is escaped.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from report import svg
from report.data import (
    REGIONS,
    STATES,
    Row,
    RunData,
    buffer_block,
    finite,
    has,
    latency_summary,
    load_run,
    pool_history,
    series,
    suffixes,
    synth_outcomes,
    task_pairs,
)
from report.svg import Series
from rods.tasks import Task

MAX_TEXT = 400  # characters of one user message shown in the task table


# ---------------------------------------------------------------- HTML


def _num(v: float | None, spec: str = ".3f") -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, spec)


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _last(rows: list[Row], key: str) -> float | None:
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def _overlay(data: RunData, key: str, name: str, color: str = svg.PALETTE[0]) -> list[Series]:
    """This run's line, and the comparison run's in the same colour, dashed."""
    out = [Series(f"{name}: {data.label}", *series(data.metrics, key), color=color)]
    if data.compare is not None and has(data.compare, key):
        out.append(Series(f"{name}: {data.compare_label}", *series(data.compare, key), color=color,
                          dashed=True))
    return out


def _grid(parts: list[str]) -> str:
    """Consecutive plots in one wrapping row (two per line on a wide page); other parts as is."""
    out: list[str] = []
    row: list[str] = []
    for part in [*parts, ""]:
        if part.startswith("<svg"):
            row.append(part)
            continue
        if row:
            out.append('<div class="plots">' + "\n".join(row) + "</div>")
            row = []
        out.append(part)
    return "\n".join(out)


def section_reward(data: RunData) -> str:
    """Reward and R_P, and beside it the depletion curve (this run vs the comparison run)."""
    out: list[str] = []
    if has(data.metrics, "reward/mean"):
        lines = _overlay(data, "reward/mean", "R_P")
        if has(data.metrics, "reward/correct"):
            lines += _overlay(data, "reward/correct", "correct", svg.PALETTE[2])
        out.append(svg.line_chart("Reward: mean R_P and officially correct fraction", lines,
                                  y_label="fraction", y_range=(0.0, 1.0)))  # fmt: skip
    else:
        out.append(_note("No reward/mean in metrics.jsonl."))
    key = "reward/frac_zero_var"
    if has(data.metrics, key):
        out.append(svg.line_chart("Groups with zero reward variance (depletion)",
                                  _overlay(data, key, "zero-var", svg.PALETTE[3]),
                                  y_label="fraction of groups", y_range=(0.0, 1.0)))  # fmt: skip
        if data.compare is not None and not has(data.compare, key):
            out.append(_note("The comparison run has no reward/frac_zero_var."))
    else:
        out.append(_note("No reward/frac_zero_var in metrics.jsonl."))
    return _grid(out)


def section_regions(data: RunData) -> str:
    lines = [Series(r, *series(data.metrics, f"boundary/frac_{r}")) for r in REGIONS
             if has(data.metrics, f"boundary/frac_{r}")]  # fmt: skip
    if not lines:
        return _note("No boundary/frac_* metrics (a static run has no detector).")
    out = [svg.line_chart("Task regions per step: hard / boundary / mastered", lines,
                          y_label="fraction of groups", y_range=(0.0, 1.0))]  # fmt: skip
    if has(data.metrics, "boundary/requests"):
        out.append(svg.line_chart("Boundary requests published per step",
                                  [Series("requests", *series(data.metrics, "boundary/requests"))],
                                  y_label="requests"))  # fmt: skip
    return _grid(out)


def section_pool(data: RunData) -> str:
    rows, source = pool_history(data)
    if not rows:
        if has(data.metrics, "buffer/active"):
            return _grid([
                svg.line_chart("Active pool size", [Series("active", *series(data.metrics, "buffer/active"))],
                               y_label="tasks"),
                _note("No per-origin pool counts and no events.jsonl: composition unavailable."),
            ])  # fmt: skip
        return _note("No buffer/* metrics and no events.jsonl: pool composition unavailable.")
    xs = [r["step"] or 0.0 for r in rows]
    states = [Series(s, *series(rows, f"buffer/{s}")) for s in STATES if has(rows, f"buffer/{s}")]
    out = [svg.line_chart("Buffer states over steps", states, y_label="tasks")]
    layers: list[tuple[str, list[float | None]]] = [("seed", series(rows, "buffer/active/origin/seed")[1])]
    gens = [g for g in suffixes(rows, "buffer/active/generation/") if g != "0"]
    if gens:
        layers += [(f"synthetic gen {g}", series(rows, f"buffer/active/generation/{g}")[1]) for g in gens]
    else:
        layers.append(("synthetic", series(rows, "buffer/active/origin/synthetic")[1]))
    out.append(svg.stacked_area_chart("Active pool by origin and generation", xs, layers, y_label="tasks"))
    cats = suffixes(rows, "buffer/active/category/")
    if cats:
        out.append(svg.stacked_area_chart(
            "Active pool by category", xs,
            [(c, series(rows, f"buffer/active/category/{c}")[1]) for c in cats], y_label="tasks"))
    out.append(f'<p class="src">Source: {escape(source)}.</p>')
    return _grid(out)


def section_synthesis(data: RunData) -> str:
    if not data.synth:
        return _note("No synthesis metrics (synth.json missing or empty).")
    bars = synth_outcomes(data.synth)
    accepted = data.synth.get("synth/accepted", 0.0)
    attempts = data.synth.get("synth/attempts")
    rate = accepted / attempts if attempts else None
    facts = (f"Requests done: {_num(data.synth.get('synth/results'), '.0f')} · attempts: "
             f"{_num(attempts, '.0f')} · accepted: {_num(accepted, '.0f')} (rate {_num(rate, '.1%')})"
             f" · staged: {_num(data.synth.get('synth/staged'), '.0f')}")  # fmt: skip
    out = [f"<p>{escape(facts)}</p>",
           svg.bar_chart("Synthesis outcomes: accepted, rejection reasons, failures",
                         [(n, v) for n, v, _ in bars], colors=[c for *_, c in bars])]  # fmt: skip
    stages = sorted((k[len("time/synth/") :], v) for k, v in data.synth.items()
                    if k.startswith("time/synth/"))  # fmt: skip
    if stages:
        out.append(svg.bar_chart("Synthesis time per stage (summed over requests)", stages,
                                 x_label="seconds"))  # fmt: skip
    if any(k.startswith("llm/") for k in data.synth):
        out.append(llm_table(data.synth))
    return _grid(out)


def llm_table(synth: dict[str, float]) -> str:
    """The served model per graph stage, from the workers' `llm/<stage>/…` sums: calls, replies
    that parsed, the bad ones by kind, mean seconds and tokens per call."""
    stages = sorted({k.split("/")[1] for k in synth if k.startswith("llm/")})
    rows = []
    for st in stages:
        g = {k[len(f"llm/{st}/") :]: v for k, v in synth.items() if k.startswith(f"llm/{st}/")}
        calls = g.get("calls", 0.0)
        kinds = ", ".join(f"{k[5:]} {v:.0f}" for k, v in sorted(g.items()) if k.startswith("fail/"))
        per = {k: (g.get(k, 0.0) / calls if calls else None)
               for k in ("parsed", "seconds", "prompt_tokens", "completion_tokens")}  # fmt: skip
        rows.append(f"<tr><td>{escape(st)}</td><td>{calls:.0f}</td><td>{_num(per['parsed'], '.0%')}</td>"
                    f"<td>{escape(kinds or '–')}</td><td>{_num(per['seconds'], '.1f')}</td>"
                    f"<td>{_num(per['prompt_tokens'], '.0f')} + {_num(per['completion_tokens'], '.0f')}</td></tr>")  # fmt: skip
    return ("<table class=\"summary\"><tr><th>LLM stage</th><th>calls</th><th>parsed</th><th>bad replies</th>"
            "<th>s / call</th><th>tokens / call (prompt + reply)</th></tr>" + "".join(rows) + "</table>")  # fmt: skip


def section_latency(data: RunData) -> str:
    s = latency_summary(data.latency_s, series(data.metrics, "time/step")[1])
    if not data.latency_s:
        return _note("No boundary-to-staged latencies recorded.")
    marks = [("median", s["median"]), ("p95", s["p95"])]
    if s["step_median"] is not None:
        marks.append(("median trainer step", s["step_median"]))
    text = (f"n = {_num(s['n'], '.0f')}, median {_num(s['median'], '.2f')} s, "
            f"p95 {_num(s['p95'], '.2f')} s; median trainer step {_num(s['step_median'], '.2f')} s")
    if s["median"] is not None and s["step_median"] is not None:
        keeps_up = s["median"] < s["step_median"]
        text += (" — synthesis keeps up (median latency below one step)." if keeps_up
                 else " — synthesis lags (median latency above one step).")  # fmt: skip
    return _grid([svg.histogram("Boundary detection → staged task latency", data.latency_s,
                                x_label="seconds", markers=marks), f"<p>{escape(text)}</p>"])  # fmt: skip


def section_timing(data: RunData) -> str:
    keys = ["time/step", "time/rollout", "time/update", "time/detector"]
    lines = [Series(k.split("/")[1], *series(data.metrics, k)) for k in keys if has(data.metrics, k)]
    if not lines:
        return _note("No time/* metrics.")
    out = [svg.line_chart("Trainer time per step", lines, y_label="seconds")]
    errors = [(k, sum(v for r in data.metrics if (v := r.get(f"tool/errors/{k}")) is not None))
              for k in suffixes(data.metrics, "tool/errors/")]  # fmt: skip
    if errors:
        out.append(svg.bar_chart("Tool errors in rollouts (summed over steps)", errors,
                                 colors=[svg.PALETTE[3]] * len(errors)))  # fmt: skip
    return _grid(out)


def _task_cell(task: Task | None, why: str) -> str:
    if task is None:
        return f"<td>{_note(why or 'not available')}</td>"
    meta = task.rods
    sig = meta.signature if meta else None
    head = [f"<b>{escape(task.id)}</b>", escape(task.category)]
    if meta and meta.origin == "synthetic":
        head.append(f"gen {meta.generation}, {escape(meta.synthesizer or '?')}")
    block = buffer_block(task)
    if block:
        head.append(f"{escape(str(block.get('state', '?')))}, visits {escape(str(block.get('visits', 0)))}"
                    f", last R̄ {escape(_num(finite(block.get('last_mean')), '.2f'))}")  # fmt: skip
    if sig:
        head.append(f"{escape(sig.topology)}, depth {sig.depth}, {sig.n_calls} calls")
    turns = []
    for turn in task.turns:
        said = " / ".join(m.content[:MAX_TEXT] + ("…" if len(m.content) > MAX_TEXT else "")
                          for m in turn.messages) or "(no message)"  # fmt: skip
        if turn.revealed_functions:  # miss_func: the turn where held-out functions appear
            said += f" [reveals {', '.join(turn.revealed_functions)}]"
        calls = "<br>".join(escape(c) for c in turn.ground_truth) or "<i>(no call)</i>"
        turns.append(f"<li><span class=\"user\">{escape(said)}</span><br><code>{calls}</code></li>")
    return (f"<td><div class=\"meta\">{' · '.join(head)}</div>"
            f"<ol start=\"0\">{''.join(turns)}</ol></td>")  # fmt: skip


def section_tasks(data: RunData) -> str:
    pairs = task_pairs(data.tasks)
    if not pairs:
        why = "no buffer.jsonl" if not data.tasks else "no synthesized task in buffer.jsonl"
        return _note(f"No synthesized tasks to show ({why}).")
    rows = "".join(f"<tr>{_task_cell(src, why)}{_task_cell(t, '')}</tr>" for t, src, why in pairs)
    return ("<table class=\"pairs\"><thead><tr><th>made from: seed or earlier variant (user turns, ground truth)</th>"
            f"<th>synthesized variant</th></tr></thead><tbody>{rows}</tbody></table>")


def summary_table(data: RunData) -> str:
    m = data.metrics
    s = latency_summary(data.latency_s, series(m, "time/step")[1])
    items = [
        ("steps", _num(m[-1]["step"], ".0f") if m else "—"),
        ("final R_P (reward/mean)", _num(_last(m, "reward/mean"))),
        ("final zero-variance fraction", _num(_last(m, "reward/frac_zero_var"), ".0%")),
        ("pool active / staged / retired",
         " / ".join(_num(_last(m, f"buffer/{st}"), ".0f") for st in STATES)),
        ("synthesized: accepted / attempts",
         f"{_num(data.synth.get('synth/accepted'), '.0f')} / {_num(data.synth.get('synth/attempts'), '.0f')}"),
        ("latency median / p95", f"{_num(s['median'], '.2f')} s / {_num(s['p95'], '.2f')} s"),
        ("median trainer step", f"{_num(s['step_median'], '.2f')} s"),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items)
    return f'<table class="summary">{body}</table>'


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1120px;color:#222;line-height:1.4;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;
padding-bottom:4px;margin-top:32px}.sub{color:#666;margin-top:0}
.plots{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;margin:12px 0}
svg.plot{display:block;max-width:100%;height:auto;border:1px solid #eee}
.note{color:#8a5a00;background:#fff7e6;border-left:3px solid #e69f00;padding:6px 10px}
.src{color:#666;font-size:13px}table.summary th{text-align:left;padding:2px 16px 2px 0}
table.pairs{border-collapse:collapse;width:100%;font-size:13px}
table.pairs td,table.pairs th{border:1px solid #ddd;vertical-align:top;padding:6px;width:50%}
table.pairs ol{padding-left:22px;margin:6px 0}table.pairs li{margin-bottom:6px}
.meta{color:#444;font-size:12px}code{font-size:12px;color:#0b5394;word-break:break-all}
.user{color:#222}
"""

SECTIONS = (
    ("reward", "Reward and depletion", section_reward),
    ("regions", "Capability regions", section_regions),
    ("pool", "Pool composition", section_pool),
    ("synthesis", "Synthesis acceptance and rejections", section_synthesis),
    ("latency", "Boundary-to-staged latency", section_latency),
    ("timing", "Trainer timing and tool errors", section_timing),
    ("tasks", "Synthesized tasks next to their seed", section_tasks),
)


def render(data: RunData, now: datetime | None = None) -> str:
    """The whole page as one HTML string."""
    now = now or datetime.now(UTC)
    title = f"RODS run report — {data.run_dir.name}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page makes none at all
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(str(data.run_dir))} · generated {now:%Y-%m-%d %H:%M} UTC'
        + (f" · compared with {escape(data.compare_label)}" if data.compare is not None else "")
        + "</p>",
        summary_table(data),
    ]  # fmt: skip
    if data.notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
        parts.append(f'<div class="note" id="notes"><b>Missing or skipped inputs</b><ul>{items}</ul></div>')
    for anchor, heading, build in SECTIONS:
        parts.append(f'<section id="{anchor}"><h2>{escape(heading)}</h2>{build(data)}</section>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path, compare: Path | None = None, out: Path | None = None) -> Path:
    """Read the run directory, write `report.html` into it (or `out`); returns its path."""
    from rods.fileio import atomic_write_text

    html = render(load_run(Path(run_dir), Path(compare) if compare is not None else None))
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, html)
    return path
