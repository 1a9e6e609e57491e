"""Semantic fidelity of procedural variants (issue 21), against today's code in the same run.

    .venv/bin/python benchmarks/bench_semantics.py --base /tmp/base          # 25 seeds/category
    .venv/bin/python benchmarks/bench_semantics.py --base /tmp/base --per-category 10 --quick

`--base` is a checkout of the reference code (`git worktree add /tmp/base main`). For each tree
(this one, then the base, then this one again, so drift in the machine's speed shows), a child
process with that tree first on `sys.path` synthesizes `--variants` variants of the first
`--per-category` training seeds of each category (procedural backend, rng seed = the seed's
position) and reports its CPU seconds. Every variant set is then judged by this tree's
`rods.semantics` gate (tasks with any finding, with a meaning error, per code) and its structural
match to the seed (signature distance within the tolerance, same topology, same depth);
acceptance = validated variants / requested, per category; throughput = validated variants per
CPU-minute of the child. Also: the semantic gate on all 400 human training seeds (rejected count).
Writes a Markdown report to benchmarks/results/semantics.md (or --out) and the variants of both
trees to --variants-dir (default /tmp/rods-bench-semantics; for `rods synth audit` and a hand check).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "semantics.md"

_CHILD = """
import json, sys, time
sys.path.insert(0, {tree!r})
from graphs.synthesis.graph import synthesize
from graphs.synthesis.procedural.backend import ProceduralBackend
from rods.tasks import CATEGORIES, load_split, write_tasks
backend, tasks, requested = ProceduralBackend(), [], {{}}
synthesize(load_split("train")[0], n_variants=1, backend=backend, rng_seed=0)  # warm caches
t0 = time.process_time()
for c in CATEGORIES:
    for i, seed in enumerate(load_split("train", [c])[:{per}]):
        tasks += synthesize(seed, n_variants={k}, backend=backend, rng_seed=i).tasks
cpu = time.process_time() - t0
write_tasks({out!r}, tasks)
print(json.dumps({{"cpu_s": cpu, "variants": len(tasks)}}))
"""


def run_tree(tree: Path, per: int, k: int, out: Path) -> dict[str, float]:
    code = _CHILD.format(tree=str(tree), per=per, k=k, out=str(out))
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the synthesis child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def judge(path: Path, per: int, k: int) -> dict[str, dict[str, float]]:
    from rods.semantics import SOFT_CODES, semantic_codes
    from rods.signature import (
        DEFAULT_WEIGHTS,
        MATCH_TOLERANCE,
        compute_signature,
        signature_distance,
    )
    from rods.tasks import CATEGORIES, get_bfcl_task, read_tasks

    out: dict[str, dict[str, float]] = {}
    tasks = read_tasks(path)
    for c in [*CATEGORIES, "all"]:
        mine = [t for t in tasks if c in ("all", t.category)]
        codes = [semantic_codes(t) for t in mine]
        within = topo = depth = 0
        for t in mine:
            seed_sig = compute_signature(get_bfcl_task(t.rods.parent_id))  # type: ignore[union-attr, arg-type]
            v = t.rods.signature  # type: ignore[union-attr]
            within += signature_distance(v, seed_sig, DEFAULT_WEIGHTS) <= MATCH_TOLERANCE  # type: ignore[arg-type]
            topo += v.topology == seed_sig.topology  # type: ignore[union-attr]
            depth += v.depth == seed_sig.depth  # type: ignore[union-attr]
        per_code = Counter(x for found in codes for x in found)
        requested = per * k * (len(CATEGORIES) if c == "all" else 1)
        out[c] = {
            "n": len(mine),
            "acceptance": len(mine) / requested,
            "finding": sum(bool(f) for f in codes) / max(1, len(mine)),
            "error": sum(any(x not in SOFT_CODES for x in f) for f in codes) / max(1, len(mine)),
            "within": within / max(1, len(mine)),
            "topology": topo / max(1, len(mine)),
            "depth": depth / max(1, len(mine)),
            "codes": dict(per_code),  # type: ignore[dict-item]
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=True, help="checkout of the reference code (main)")
    ap.add_argument("--per-category", type=int, default=25)
    ap.add_argument("--variants", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--variants-dir", type=Path, default=Path("/tmp/rods-bench-semantics"))
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from rods.semantics import semantic_rejections
    from rods.tasks import load_split

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.variants_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, tree in (("this", ROOT), ("base", args.base.resolve()), ("this again", ROOT)):
        path = args.variants_dir / f"variants-{name.replace(' ', '-')}.jsonl"
        runs[name] = (run_tree(tree, args.per_category, args.variants, path), path)
        print(f"{name}: {runs[name][0]}", file=sys.stderr)
    seeds_rejected = sum(bool(semantic_rejections(t)) for t in load_split("train"))
    judged = {name: judge(path, args.per_category, args.variants) for name, (_, path) in runs.items() if name != "this again"}
    speed = {name: r["variants"] / (r["cpu_s"] / 60) for name, (r, _) in runs.items()}
    this_speed = (speed["this"] + speed["this again"]) / 2
    lines = [
        "# Semantic fidelity of procedural variants (issue 21)",
        "",
        f"`{' '.join(['python', *sys.argv])}` on {platform.node()} ({os.cpu_count()} CPUs), "
        f"{args.variants} variants of the first {args.per_category} training seeds per category.",
        "",
        f"- human training seeds rejected by the semantic gate: {seeds_rejected}/400",
        f"- throughput (validated variants per CPU-minute): this {this_speed:.1f} (runs {speed['this']:.1f}, "
        f"{speed['this again']:.1f}), base {speed['base']:.1f}: ratio {this_speed / speed['base']:.2f}",
        "",
        "| tree | category | variants | acceptance | any semantic finding | meaning error | structure match | same topology | same depth | codes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cats in judged.items():
        for c, m in cats.items():
            codes = ", ".join(f"{k} {v}" for k, v in sorted(m["codes"].items())) or "-"  # type: ignore[attr-defined]
            lines.append(
                f"| {name} | {c} | {m['n']:.0f} | {m['acceptance']:.0%} | {m['finding']:.1%} | {m['error']:.1%} "
                f"| {m['within']:.0%} | {m['topology']:.0%} | {m['depth']:.0%} | {codes} |"
            )
    report = "\n".join(lines) + "\n"
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
