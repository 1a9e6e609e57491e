"""Signatures before and after state dependencies, over BFCL's 400 training seeds.

    .venv/bin/python benchmarks/bench_signature.py [--variants FILE.jsonl] [--out PATH]

"Before" is the data-flow signature (`compute_signature(task, state_dependencies=False)`, the
version-1 rule); "after" adds the state dependencies of `rods.signature_state` (a `cd` before
relative paths, a login before authenticated calls, a value created earlier). Reported: depth
and topology histograms, mean depth per category, the distribution of pairwise distances between
seeds (and the share within `MATCH_TOLERANCE`), the distance between each seed and its category
twins (base_N vs miss_func_N, …), and, with `--variants`, the distance of each variant to its
parent seed (the critique's structural gate) under both rules. Also the time per signature.
Writes Markdown to benchmarks/results/signature.md (or --out).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from rods.signature import (
    DEFAULT_WEIGHTS,
    MATCH_TOLERANCE,
    STRUCTURE_WEIGHTS,
    compute_signature,
    signature_distance,
    signature_histograms,
)
from rods.tasks import (
    CATEGORIES,
    Signature,
    Task,
    get_bfcl_task,
    load_split,
    read_tasks,
    scenario_index,
)

RESULTS = Path(__file__).parent / "results" / "signature.md"


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    qs = statistics.quantiles(values, n=20, method="inclusive")  # 5 % steps
    return f"{qs[0]:.3f} / {qs[4]:.3f} / {statistics.median(values):.3f} / {qs[14]:.3f} / {qs[18]:.3f}"


def _within(values: list[float], tol: float = MATCH_TOLERANCE) -> str:
    return f"{sum(v <= tol for v in values)}/{len(values)}" if values else "-"


def _hist(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=Path, help="JSONL of synthetic variants (rods.parent_id set)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    seeds = load_split("train")
    sigs: dict[bool, dict[str, Signature]] = {}
    seconds: dict[bool, float] = {}
    for with_state in (False, True):
        t0 = time.perf_counter()
        sigs[with_state] = {t.id: compute_signature(t, state_dependencies=with_state) for t in seeds}
        seconds[with_state] = time.perf_counter() - t0

    rows = ["| measure | before (data flow) | after (+ state) |", "|---|---|---|"]
    for key in ("depth", "topology"):
        before = signature_histograms(sigs[False].values())[key]
        after = signature_histograms(sigs[True].values())[key]
        rows.append(f"| {key} histogram | {_hist(before)} | {_hist(after)} |")
    for c in CATEGORIES:
        ids = [t.id for t in seeds if t.category == c]
        means = [statistics.fmean(sigs[w][i].depth for i in ids) for w in (False, True)]
        rows.append(f"| mean depth, {c} | {means[0]:.2f} | {means[1]:.2f} |")
    with_deps = sum(bool(s.state_deps) for s in sigs[True].values())
    n_deps = sum(len(s.state_deps) for s in sigs[True].values())
    changed = sum(sigs[True][i].depth != sigs[False][i].depth for i in sigs[True])
    rows.append(f"| seeds with state edges | - | {with_deps}/400 ({n_deps} edges) |")
    rows.append(f"| seeds whose depth changed | - | {changed}/400 |")
    topo_changed = sum(sigs[True][i].topology != sigs[False][i].topology for i in sigs[True])
    rows.append(f"| seeds whose topology changed | - | {topo_changed}/400 |")

    pairs: dict[bool, list[float]] = {}
    twins: dict[bool, list[float]] = {}
    for w in (False, True):
        values = list(sigs[w].values())
        pairs[w] = [signature_distance(a, b) for a, b in itertools.combinations(values, 2)]
        by_index: dict[int, list[Signature]] = {}
        for task_id, sig in sigs[w].items():
            by_index.setdefault(scenario_index(task_id), []).append(sig)
        twins[w] = [
            signature_distance(a, b, STRUCTURE_WEIGHTS)
            for group in by_index.values()
            for a, b in itertools.combinations(group, 2)
        ]
    rows.append(
        f"| pairwise distance between seeds, p5/p25/p50/p75/p95 | {_quantiles(pairs[False])} | {_quantiles(pairs[True])} |"
    )
    rows.append(
        f"| seed pairs within tolerance {MATCH_TOLERANCE} | {_within(pairs[False])} | {_within(pairs[True])} |"
    )
    rows.append(
        f"| category twins (same scenario), structure distance p50/p95 | "
        f"{statistics.median(twins[False]):.3f} / {statistics.quantiles(twins[False], n=20)[18]:.3f} | "
        f"{statistics.median(twins[True]):.3f} / {statistics.quantiles(twins[True], n=20)[18]:.3f} |"
    )
    rows.append(
        f"| category twins within tolerance | {_within(twins[False])} | {_within(twins[True])} |"
    )
    per_call = {w: 1000 * seconds[w] / 400 for w in (False, True)}
    rows.append(f"| ms per signature (400 seeds) | {per_call[False]:.1f} | {per_call[True]:.1f} |")

    if args.variants is not None:
        variants: list[Task] = read_tasks(args.variants)
        dist: dict[bool, list[float]] = {False: [], True: []}
        same: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
        for v in variants:
            parent_id = v.rods.parent_id if v.rods else None
            if parent_id is None:
                continue
            parent = get_bfcl_task(parent_id)
            for w in (False, True):
                a, b = compute_signature(v, state_dependencies=w), sigs[w].get(parent_id) or compute_signature(
                    parent, state_dependencies=w
                )
                dist[w].append(signature_distance(a, b, DEFAULT_WEIGHTS))
                same[w]["depth"] += a.depth == b.depth
                same[w]["topology"] += a.topology == b.topology
        n = len(dist[True])
        rows.append(f"| variants → parent distance p5/p25/p50/p75/p95 ({n} variants) | {_quantiles(dist[False])} | {_quantiles(dist[True])} |")
        rows.append(f"| variants within tolerance | {_within(dist[False])} | {_within(dist[True])} |")
        rows.append(f"| variants with the parent's depth / topology | {same[False]['depth']}/{n}, {same[False]['topology']}/{n} | {same[True]['depth']}/{n}, {same[True]['topology']}/{n} |")

    command = "`.venv/bin/python benchmarks/bench_signature.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "") + "`"
    report = "\n".join(
        [
            "# Signatures: data flow vs data flow + state dependencies (400 training seeds)",
            "",
            f"Command: {command}",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            "",
            *rows,
            "",
            "Distances use the default weights (pairs of seeds, variants vs parent) or the structure weights "
            "(category twins, which differ in category by construction).",
        ]
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
