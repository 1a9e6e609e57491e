"""The experiment report: arms side by side, intervals over seeds (experiment.json + .html).

Input: the directory `rods experiment` wrote —

    <out>/<arm>/seed<k>/metrics.jsonl       the trainer's per-step metrics
    <out>/<arm>/seed<k>/evals.json          held-out evaluations: [{step, trajectories, protocol,
                                            overall: {progress, accuracy, n}, per category …}]
    <out>/<arm>/seed<k>/synth.json, pool.json   synthesis yield, pool composition (synth arms)
    <out>/experiment-plan.json              arms, seeds, steps, trajectories per step

Everything here is a pure function of those files. Per arm: the depletion curve (fraction of
zero-variance groups per step), the fraction of policy tokens with a non-zero advantage,
held-out R_P and official accuracy against trajectories (mean over seeds with a 95 % t-interval),
the trajectories the arm needs to reach the static arm's final held-out R_P, the second-half
zero-variance fraction, and the final difference to the static arm, paired by seed. Each number
says which protocol produced it. A missing file is a note on the page, never an exception.
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from report import svg
from report.data import read_jsonl
from report.svg import Series

# two-sided 95 % Student t quantiles by degrees of freedom (n − 1); beyond 30, the normal's
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip


def mean_ci(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95 % t-interval); the half-width is None for fewer than 2."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, None
    dof = len(xs) - 1
    t = T95.get(dof) or T95[max(k for k in T95 if k <= dof)] if dof <= 30 else 1.96
    return m, t * statistics.stdev(xs) / math.sqrt(len(xs))


def trajectories_to_reach(points: Sequence[tuple[float, float]], target: float) -> float | None:
    """First trajectory count at which a curve [(trajectories, score)] reaches `target`,
    interpolated linearly between evaluation points; None if it never does."""
    prev: tuple[float, float] | None = None
    for x, y in sorted(points):
        if y >= target:
            if prev is None or prev[1] >= target:
                return x
            x0, y0 = prev
            return x0 + (target - y0) * (x - x0) / (y - y0)
        prev = (x, y)
    return None


def _seed_dirs(arm_dir: Path) -> list[Path]:
    return sorted(p for p in arm_dir.glob("seed*") if p.is_dir())


def _load_json(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        notes.append(f"missing: {path}")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        notes.append(f"unreadable: {path} ({e})")
        return None


def _curve(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    out = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and math.isfinite(v):
            out.append((int(r["step"]), float(v)))
    return out


def summarize(out: Path) -> dict[str, Any]:
    """experiment.json's content: per arm and protocol, curves and summary numbers."""
    notes: list[str] = []
    plan = _load_json(out / "experiment-plan.json", notes) or {}
    steps = int(plan.get("steps", 0))
    per_step = int(plan.get("trajectories_per_step", 0))
    arms: dict[str, Any] = {}
    for arm in plan.get("arms", []):
        seeds: dict[str, Any] = {}
        for sd in _seed_dirs(out / arm):
            rows = read_jsonl(sd / "metrics.jsonl", notes) or []
            evals = _load_json(sd / "evals.json", notes) or []
            seeds[sd.name] = {
                "zero_var": _curve(rows, "reward/frac_zero_var"),
                "nonzero_adv_tokens": _curve(rows, "train/frac_tokens_nonzero_adv"),
                "reward": _curve(rows, "reward/mean"),
                "evals": evals,
                # only the arms that synthesize, or build a pool, write these: absent is no note
                "synth": _load_json(sd / "synth.json", []),
                "pool": _load_json(sd / "pool.json", []),
            }
        arms[arm] = {"seeds": seeds}
    protocols = sorted({e["protocol"] for a in arms.values() for s in a["seeds"].values() for e in s["evals"]
                        if _split(e) == "heldout"})  # fmt: skip
    for a in arms.values():
        a["held_out"] = {p: _held_out(a["seeds"], p) for p in protocols}
        half = steps / 2
        zv = [statistics.fmean([v for s, v in sd["zero_var"] if s > half])
              for sd in a["seeds"].values() if any(s > half for s, _ in sd["zero_var"])]  # fmt: skip
        a["zero_var_second_half"] = dict(zip(("mean", "ci95"), mean_ci(zv), strict=True))
        nz = [statistics.fmean([v for _, v in sd["nonzero_adv_tokens"]])
              for sd in a["seeds"].values() if sd["nonzero_adv_tokens"]]  # fmt: skip
        a["nonzero_adv_tokens"] = dict(zip(("mean", "ci95"), mean_ci(nz), strict=True))
        a["training_seeds"] = _seeds_final(a["seeds"])
    warm = _load_json(out / "warmstart" / "evals.json", []) or []  # absent: no note (older runs)
    comparisons = {p: _compare(arms, p) for p in protocols}
    return {"plan": plan, "steps": steps, "trajectories_per_step": per_step, "protocols": protocols,
            "arms": arms, "comparisons": comparisons, "warm_start": warm, "notes": notes}  # fmt: skip


def _split(e: dict[str, Any]) -> str:
    return str(e.get("split", "heldout"))  # rows written before splits existed are held-out


def _seeds_final(seeds: dict[str, Any]) -> dict[str, Any]:
    """Mean ± 95 % CI over seeds of the final checkpoint's R_P and accuracy on the training seeds."""
    rows = [max(evs, key=lambda e: e["step"]) for sd in seeds.values()
            if (evs := [e for e in sd["evals"] if _split(e) == "seeds"])]  # fmt: skip
    rp, rp_ci = mean_ci([r["overall"]["progress"] for r in rows])
    acc, acc_ci = mean_ci([r["overall"]["accuracy"] for r in rows])
    return {"progress": rp, "progress_ci95": rp_ci, "accuracy": acc, "accuracy_ci95": acc_ci, "n_seeds": len(rows)}


def _held_out(seeds: dict[str, Any], protocol: str) -> dict[str, Any]:
    """Mean ± 95 % CI over seeds of held-out R_P and accuracy at each trajectory count."""
    by_x: dict[int, dict[str, list[float]]] = {}
    for sd in seeds.values():
        for e in sd["evals"]:
            if e["protocol"] != protocol or _split(e) != "heldout":
                continue
            cell = by_x.setdefault(int(e["trajectories"]), {"progress": [], "accuracy": []})
            cell["progress"].append(e["overall"]["progress"])
            cell["accuracy"].append(e["overall"]["accuracy"])
    points = []
    for x in sorted(by_x):
        rp, rp_ci = mean_ci(by_x[x]["progress"])
        acc, acc_ci = mean_ci(by_x[x]["accuracy"])
        points.append({"trajectories": x, "progress": rp, "progress_ci95": rp_ci, "accuracy": acc,
                       "accuracy_ci95": acc_ci, "n_seeds": len(by_x[x]["progress"])})  # fmt: skip
    return {"points": points}


def _final_by_seed(arm: dict[str, Any], protocol: str) -> dict[str, float]:
    out = {}
    for name, sd in arm["seeds"].items():
        evs = [e for e in sd["evals"] if e["protocol"] == protocol and _split(e) == "heldout"]
        if evs:
            out[name] = max(evs, key=lambda e: e["trajectories"])["overall"]["progress"]
    return out


def _compare(arms: dict[str, Any], protocol: str) -> dict[str, Any]:
    """Each arm against `static`: trajectories to reach static's final R_P, the final
    difference paired by seed (mean, 95 % CI), and static's final R_P itself."""
    if "static" not in arms:
        return {}
    static_pts = arms["static"]["held_out"][protocol]["points"]
    if not static_pts:
        return {}
    target = static_pts[-1]["progress"]
    static_final = _final_by_seed(arms["static"], protocol)
    res: dict[str, Any] = {"static_final_progress": target, "static_trajectories": static_pts[-1]["trajectories"]}
    for arm, a in arms.items():
        pts = [(p["trajectories"], p["progress"]) for p in a["held_out"][protocol]["points"]
               if p["progress"] is not None]  # fmt: skip
        final = _final_by_seed(a, protocol)
        diffs = [final[s] - static_final[s] for s in final if s in static_final]
        m, ci = mean_ci(diffs)
        reach = trajectories_to_reach(pts, target) if target is not None else None
        res[arm] = {"trajectories_to_static_final": reach,
                    "final_minus_static": m, "final_minus_static_ci95": ci, "paired_seeds": len(diffs)}  # fmt: skip
    return res


# ---------------------------------------------------------------- rendering


def _fmt(v: float | None, spec: str = ".3f", ci: float | None = None) -> str:
    if v is None:
        return "—"
    return format(v, spec) + (f" ± {format(ci, spec.lstrip('+'))}" if ci is not None else "")


def _mean_curve(seeds: dict[str, Any], key: str) -> Series:
    by_step: dict[int, list[float]] = {}
    for sd in seeds.values():
        for s, v in sd[key]:
            by_step.setdefault(s, []).append(v)
    xs = sorted(by_step)
    return Series("", xs, [statistics.fmean(by_step[x]) for x in xs])


WARM = "warm start"  # the row of the shared warm start, before any training
_HTML_LABELS = {WARM: "warm start (before training)"}


def _final_rows(summary: dict[str, Any], protocol: str) -> list[tuple[str, list[str]]]:
    """The final held-out table's rows (the warm start first): final R_P, accuracy, trajectories
    to static's final, final − static, zero-variance in the 2nd half, non-zero-advantage tokens."""
    rows = [(WARM, [_fmt(w["overall"]["progress"]), _fmt(w["overall"]["accuracy"], ".1f"), "", "", "", ""])
            for w in summary.get("warm_start", []) if w["protocol"] == protocol and _split(w) == "heldout"]  # fmt: skip
    comp = summary["comparisons"].get(protocol, {})
    for n, a in summary["arms"].items():
        pts = a["held_out"][protocol]["points"]
        last, c = (pts[-1] if pts else {}), comp.get(n, {})
        zv, nz = a["zero_var_second_half"], a["nonzero_adv_tokens"]
        rows.append((n, [
            _fmt(last.get("progress"), ".3f", last.get("progress_ci95")),
            _fmt(last.get("accuracy"), ".1f", last.get("accuracy_ci95")),
            _fmt(c.get("trajectories_to_static_final"), ".0f"),
            _fmt(c.get("final_minus_static"), "+.3f", c.get("final_minus_static_ci95")),
            _fmt(zv["mean"], ".2f", zv["ci95"]), _fmt(nz["mean"], ".2f", nz["ci95"]),
        ]))  # fmt: skip
    return rows


def _seed_rows(summary: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The training-seed table's rows (the warm start first): R_P, accuracy, seeds."""
    rows = [(WARM, [_fmt(w["overall"]["progress"]), _fmt(w["overall"]["accuracy"], ".1f"), "—"])
            for w in summary.get("warm_start", []) if _split(w) == "seeds"]  # fmt: skip
    for n, a in summary["arms"].items():
        t = a.get("training_seeds") or {}
        if t.get("n_seeds"):
            rows.append((n, [_fmt(t["progress"], ".3f", t["progress_ci95"]),
                             _fmt(t["accuracy"], ".1f", t["accuracy_ci95"]), str(t["n_seeds"])]))  # fmt: skip
    return rows


def _html_row(name: str, cells: list[str]) -> str:
    label = html.escape(_HTML_LABELS.get(name, name))
    return f"<tr><td>{label}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render(summary: dict[str, Any]) -> str:
    arms = summary["arms"]
    names = list(arms)
    parts = [f"<h1>RODS experiment</h1><p>{len(names)} arms × seeds "
             f"{', '.join(summary['plan'].get('seeds_run', []) or map(str, summary['plan'].get('seeds', [])))}; "
             f"{summary['steps']} steps × {summary['trajectories_per_step']} trajectories per step.</p>"]  # fmt: skip
    for key, title in (("zero_var", "Depletion: groups with zero variance"),
                       ("nonzero_adv_tokens", "Policy tokens with a non-zero advantage")):  # fmt: skip
        series = []
        for i, n in enumerate(names):
            c = _mean_curve(arms[n]["seeds"], key)
            series.append(Series(n, c.xs, c.ys, svg.PALETTE[i % len(svg.PALETTE)]))
        parts.append(svg.line_chart(title, series, y_label="fraction", y_range=(0.0, 1.0)))
    for p in summary["protocols"]:
        for metric, label in (("progress", "held-out R_P"), ("accuracy", "held-out official accuracy")):
            series = []
            for i, n in enumerate(names):
                pts = arms[n]["held_out"][p]["points"]
                series.append(Series(n, [q["trajectories"] for q in pts], [q[metric] for q in pts],
                                     svg.PALETTE[i % len(svg.PALETTE)]))  # fmt: skip
            parts.append(svg.line_chart(f"{label} (protocol {p}; mean over seeds)", series,
                                        x_label="trajectories", y_label=metric))  # fmt: skip
        rows = [_html_row(name, cells) for name, cells in _final_rows(summary, p)]
        parts.append(
            f"<h2>Final held-out numbers — protocol <code>{html.escape(p)}</code></h2><table><tr><th>arm</th>"
            "<th>R_P (95 % CI)</th><th>accuracy %</th><th>trajectories to static's final R_P</th>"
            "<th>final − static (paired)</th><th>zero-var, 2nd half</th><th>non-zero-adv tokens</th></tr>"
            + "".join(rows) + "</table>"
        )
    seed_rows = [_html_row(name, cells) for name, cells in _seed_rows(summary)]
    if seed_rows:
        parts.append("<h2>The training seeds, final checkpoint (protocol <code>train</code>)</h2>"
                     "<p>What each arm reached on the tasks it trained from (not held-out).</p><table><tr><th>arm</th>"
                     "<th>R_P (95 % CI)</th><th>accuracy %</th><th>seeds</th></tr>" + "".join(seed_rows) + "</table>")  # fmt: skip
    synth_rows = []
    for n in names:
        for sname, sd in arms[n]["seeds"].items():
            if sd.get("synth") or sd.get("pool"):
                m = (sd.get("synth") or {}).get("metrics", {})
                pool = sd.get("pool") or {}
                synth_rows.append(
                    f"<tr><td>{html.escape(n)}</td><td>{sname}</td><td>{m.get('synth/results', 0):.0f}</td>"
                    f"<td>{m.get('synth/staged', 0):.0f}</td><td>{html.escape(json.dumps(pool))}</td></tr>"
                )
    if synth_rows:
        parts.append("<h2>Synthesis yield and pool composition</h2><table><tr><th>arm</th><th>seed</th>"
                     "<th>requests done</th><th>tasks staged</th><th>pool at the end</th></tr>"
                     + "".join(synth_rows) + "</table>")  # fmt: skip
    if summary["notes"]:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in summary["notes"]) + "</ul>")
    css = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
           "text-align:right}th{background:#f4f4f4}svg{display:block;margin:1em 0}")  # fmt: skip
    return ("<!doctype html><html><head><meta charset='utf-8'><title>RODS experiment</title>"
            f"<style>{css}</style></head><body>" + "\n".join(parts) + "</body></html>")  # fmt: skip


def render_markdown(summary: dict[str, Any]) -> str:
    """The report's tables as Markdown (experiment.md), to paste where results are written up."""
    arms, names = summary["arms"], list(summary["arms"])
    seeds = ", ".join(map(str, summary["plan"].get("seeds", [])))
    out = [f"{len(names)} arms × seeds {seeds}; {summary['steps']} steps × "
           f"{summary['trajectories_per_step']} trajectories per step (mean ± 95 % CI over seeds).", ""]  # fmt: skip
    for p in summary["protocols"]:
        xs = sorted({q["trajectories"] for n in names for q in arms[n]["held_out"][p]["points"]})
        out += [f"Held-out, protocol `{p}`:", "",
                "| arm | R_P at " + " / ".join(map(str, xs)) + " trajectories | final R_P | accuracy % "
                "| trajectories to static's final | final − static (paired) | zero-var, 2nd half | non-zero-adv tokens |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, cells in _final_rows(summary, p):
            pts = {q["trajectories"]: q for q in arms[name]["held_out"][p]["points"]} if name in arms else None
            curve = " / ".join(_fmt(pts[x]["progress"]) if x in pts else "—" for x in xs) if pts is not None else "—"
            out.append(f"| {name} | {curve} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["Training seeds, final checkpoint (protocol `train`):", "", "| arm | R_P | accuracy % | seeds |",
            "|---|---|---|---|"]  # fmt: skip
    out += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in _seed_rows(summary)]
    return "\n".join(out) + "\n"


def write_experiment_report(out: Path) -> Path:
    """Write experiment.json, experiment.html and experiment.md into `out`; returns the page's path."""
    from rods.fileio import atomic_write_text

    summary = summarize(out)
    atomic_write_text(out / "experiment.json", json.dumps(summary, indent=1, allow_nan=False, default=_null))
    atomic_write_text(out / "experiment.md", render_markdown(summary))
    page = out / "experiment.html"
    atomic_write_text(page, render(summary))
    return page


def _null(v: Any) -> None:
    return None
