"""Synthesis benchmarks: procedural throughput (1 vs 2 processes), LLM concurrency against a stub
with 1 s latency per call, and acceptance / structural match of the procedural backend.

    .venv/bin/python benchmarks/bench_synth.py                 # everything (~3 min on 2 cores)
    .venv/bin/python benchmarks/bench_synth.py --only llm      # one part: procedural | llm | quality
    .venv/bin/python benchmarks/bench_synth.py --quick         # smaller run, a smoke check
    .venv/bin/python benchmarks/bench_synth.py --acceptance 2  # every training seed, 2 variants each

(a) Procedural throughput: validated variants per minute of 1 and of 2 warmed-up worker
    processes (forked like Celery's prefork children) running the same request list — 100
    training seeds of all categories × 3 rng seeds, one `synthesize` (n_variants=1) each, pulled
    one at a time from a shared queue — target ≥ 1.8× on 2 cores; next to it the machine's own
    ceiling: a pure-Python reference job through the same harness, interleaved with it in time.
(b) LLM backend against a local OpenAI-compatible stub that sleeps 1 s per call: K graphs run in
    K threads of one worker process (each graph ≈ 10 sequential model calls); variants per minute
    and the most calls the stub saw in flight at once (target ≥ 8 concurrent calls per worker).
(c) Procedural quality over 100 training seeds (25 per category): acceptance (variants / seeds),
    variants per attempt, structural match (variants within the signature tolerance of their seed,
    same topology, same depth) and the rejection reasons.

(d) `--acceptance N`: every one of the 400 training seeds asks for N variants (one `synthesize` call
    each, rng seed = the seed's position); acceptance per category = validated variants / requested,
    plus the share of seeds that got at least one variant and the rejection reasons per category.
    With `--jsonl PATH` the variants are written out (for `rods synth audit`).

Prints a Markdown report and writes it, with the command and the machine, to
benchmarks/results/synth.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from graphs.synthesis.graph import synthesize  # noqa: E402
from rods.signature import DEFAULT_WEIGHTS, MATCH_TOLERANCE, signature_distance  # noqa: E402
from rods.tasks import CATEGORIES, Task, get_bfcl_task, load_split  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "synth.md"


def training_seeds(per_category: int) -> list[Task]:
    groups = [load_split("train", [c])[:per_category] for c in CATEGORIES]
    # interleave the categories so that every time window sees all four
    return [t for row in zip(*groups, strict=True) for t in row]


def _procedural():
    from graphs.synthesis.procedural import ProceduralBackend

    return ProceduralBackend()


# ---------------------------------------------------------------- (a) procedural throughput
#
# Worker processes are forked from this process after the graph modules are imported, as Celery's
# prefork pool forks its children from a worker that imported the task module. Each child warms
# up (compiled graph, held-out index, function docs, sampler tables: one synthesis per category)
# before a barrier; the clock starts when every child is warm. Both configurations run the same
# job list — every seed × `rounds` rng seeds, one graph run (n_variants=1) per job — pulled one
# job at a time from a shared queue (Celery's prefetch 1), so they do identical work and must
# produce the same number of variants. The machine's own ceiling is measured the same way with a
# pure-Python reference job. Phases run A B B A (1, 2, 2, 1 processes) to cancel drift.

_CHILD: dict[str, Any] = {}  # per worker process: the backend, or the reference's data


def _warm_child(kind: str, warm_ids: list[str], barrier: Any) -> None:
    if kind == "synth":
        _CHILD["backend"] = backend = _procedural()
        for task_id in warm_ids:
            synthesize(get_bfcl_task(task_id), n_variants=1, backend=backend)
    else:
        _CHILD["reference"] = _reference_data()
    barrier.wait()


def _synth_job(job: tuple[str, int]) -> tuple[int, float]:
    """One request: (validated variants, CPU seconds of this process)."""
    task_id, rng_seed = job
    c0 = time.process_time()
    res = synthesize(
        get_bfcl_task(task_id), n_variants=1, backend=_CHILD["backend"], rng_seed=rng_seed
    )
    return len(res.tasks), time.process_time() - c0


def _reference_data() -> list[frozenset[int]]:
    """~3 MB of shingle-like sets per process: the size of the held-out index a worker holds."""
    rng = random.Random(0)
    return [frozenset(rng.getrandbits(63) for _ in range(200)) for _ in range(400)]


def _reference_job(job: tuple[str, int]) -> tuple[int, float]:
    """Pure-Python work shaped like a graph run (~40 ms): small dicts and lists built and
    dropped, JSON round trips, string formatting, set intersections over the per-process data."""
    task_id, rng_seed = job
    c0 = time.process_time()
    sets = _CHILD["reference"]
    rng = random.Random(f"{task_id}/{rng_seed}")
    acc = 0
    for i in range(2000):
        record = {
            "id": i,
            "name": f"{task_id}-{rng.randrange(10**6)}",
            "items": [rng.random() for _ in range(8)],
        }
        acc += len(json.loads(json.dumps(record))["items"])
        acc += len(sorted(record["items"]))
        a, b = sets[rng.randrange(len(sets))], sets[rng.randrange(len(sets))]
        acc += len(a & b) + sum(1 for k in record if k in record)
    return int(acc > 0), time.process_time() - c0


def _steal_ticks() -> int:
    """Host time taken from this VM's vCPUs (/proc/stat `steal`), 0 where not reported."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return 0


def _phase(
    kind: str, n_procs: int, jobs: list[tuple[str, int]], warm_ids: list[str]
) -> dict[str, float]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(n_procs + 1)
    job_fn = _synth_job if kind == "synth" else _reference_job
    with ctx.Pool(n_procs, initializer=_warm_child, initargs=(kind, warm_ids, barrier)) as pool:
        barrier.wait()  # every child warm
        s0, t0 = _steal_ticks(), time.perf_counter()
        out = list(pool.imap_unordered(job_fn, jobs, chunksize=1))
        wall = time.perf_counter() - t0
        steal = (_steal_ticks() - s0) / os.sysconf("SC_CLK_TCK")
    cpu = sum(c for _, c in out)
    return {"units": sum(v for v, _ in out), "wall": wall, "cpu": cpu, "steal": steal}


# Phases in time order: each kind runs 1, 2, 2, 1 processes, and the two kinds alternate so that
# the reference sees the same machine conditions as synthesis within a few seconds.
_SCHEDULE = (
    ("reference", 1), ("synth", 1), ("synth", 2), ("reference", 2),
    ("reference", 2), ("synth", 2), ("synth", 1), ("reference", 1),
)  # fmt: skip


def _summary(phases: dict[int, list[dict[str, float]]]) -> dict[str, Any]:
    units = {p["units"] for ps in phases.values() for p in ps}
    if len(units) != 1:
        raise RuntimeError(f"the same jobs gave different unit counts {units}")
    per_phase = units.pop()

    def total(n: int, key: str) -> float:
        return sum(p[key] for p in phases[n])

    done = {n: per_phase * len(phases[n]) for n in (1, 2)}
    return {
        "units": per_phase,
        "rate": {n: done[n] / total(n, "wall") * 60 for n in (1, 2)},  # per wall minute
        "ratio": (total(1, "wall") / len(phases[1])) / (total(2, "wall") / len(phases[2])),
        "per_cpu_min": {n: done[n] / total(n, "cpu") * 60 for n in (1, 2)},
        "cores": {n: total(n, "cpu") / total(n, "wall") for n in (1, 2)},
        "steal": {n: total(n, "steal") / total(n, "wall") for n in (1, 2)},
        "wall": {n: total(n, "wall") / len(phases[n]) for n in (1, 2)},
    }


def bench_procedural(rounds: int) -> list[str]:
    seeds = training_seeds(25)
    jobs = [(t.id, r) for r in range(rounds) for t in seeds]
    warm_ids = [seeds[i].id for i in range(len(CATEGORIES))]  # one seed per category
    phases: dict[str, dict[int, list[dict[str, float]]]] = {
        "reference": {1: [], 2: []},
        "synth": {1: [], 2: []},
    }
    for kind, n_procs in _SCHEDULE:
        phases[kind][n_procs].append(_phase(kind, n_procs, jobs, warm_ids))
    ref, syn = _summary(phases["reference"]), _summary(phases["synth"])
    n = len(jobs)

    def steal(m: dict[str, Any]) -> str:
        return (
            f"steal {m['steal'][1]:.0%} / {m['steal'][2]:.0%} of wall"
            if m["steal"][2] or m["steal"][1]
            else "no steal reported"
        )

    return [
        f"| procedural, 1 worker process ({n} requests, {syn['units']} variants, {syn['wall'][1]:.1f} s) | "
        f"**{syn['rate'][1]:.0f}** validated variants/min | {syn['per_cpu_min'][1]:.0f} per CPU-minute; got {syn['cores'][1]:.2f} cores |",
        f"| procedural, 2 worker processes, same {n} requests | {syn['rate'][2]:.0f} variants/min ({syn['wall'][2]:.1f} s) | "
        f"**{syn['ratio']:.2f}×** wall (target ≥ 1.8×); {syn['per_cpu_min'][2]:.0f} per CPU-minute; got {syn['cores'][2]:.2f} cores; {steal(syn)} |",
        f"| machine ceiling: pure-Python reference job, 2 processes vs 1, same harness | {ref['ratio']:.2f}× "
        f"({ref['rate'][1]:.0f} → {ref['rate'][2]:.0f} jobs/min) | per CPU-minute {ref['per_cpu_min'][1]:.0f} → {ref['per_cpu_min'][2]:.0f}; "
        f"got {ref['cores'][1]:.2f} / {ref['cores'][2]:.2f} cores; {steal(ref)} |",
        f"| procedural scaling relative to the machine's ceiling | **{syn['ratio'] / ref['ratio']:.2f}** "
        f"({syn['ratio']:.2f}× / {ref['ratio']:.2f}×) | 1.00 = synthesis scales exactly as plain Python does here |",
    ]


# ---------------------------------------------------------------- (b) LLM against a slow stub


def bench_llm(levels: list[int], graphs_per_thread: int, latency_s: float) -> list[str]:
    from llm_stub import SeedResponder, StubLLM

    from graphs.synthesis.llm import LLMBackend

    seed = get_bfcl_task("multi_turn_base_5")
    rows = []
    with StubLLM(SeedResponder(seed, tag="bench"), latency_s=0.0) as warm:
        warm_backend = LLMBackend(
            "openai/stub", api_base=warm.api_base, api_key="sk-stub", num_retries=0
        )
        synthesize(seed, n_variants=1, backend=warm_backend)  # imports litellm, builds indexes
    for k in levels:
        with StubLLM(SeedResponder(seed, tag="bench"), latency_s=latency_s) as stub:
            backend = LLMBackend(
                "openai/stub", api_base=stub.api_base, api_key="sk-stub", num_retries=0
            )
            n_graphs = k * graphs_per_thread
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=k) as pool:
                results = list(
                    pool.map(
                        lambda i, b=backend: synthesize(seed, n_variants=1, backend=b, rng_seed=i),
                        range(n_graphs),
                    )
                )
            wall = time.perf_counter() - t0
            variants = sum(len(r.tasks) for r in results)
            calls = sum(r.model_calls for r in results)
            rows.append(
                f"| LLM vs stub ({latency_s:.0f} s/call), {k} graphs in {k} threads, 1 process | "
                f"{variants / wall * 60:.1f} variants/min ({variants}/{n_graphs} in {wall:.1f} s, {calls} calls) | "
                f"max {stub.max_in_flight} calls in flight |"
            )
    return rows


# ---------------------------------------------------------------- (c) procedural quality


def bench_quality(per_category: int) -> tuple[list[str], list[str]]:
    backend = _procedural()
    seeds = training_seeds(per_category)
    accepted = attempts = within = same_topo = same_depth = 0
    by_cat: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    from rods.signature import compute_signature

    for i, seed in enumerate(seeds):
        res = synthesize(seed, n_variants=1, backend=backend, rng_seed=i)
        attempts += res.attempts
        reasons.update(res.rejections)
        failures.update(res.failures)
        for task in res.tasks:
            accepted += 1
            by_cat[seed.category] += 1
            s, v = compute_signature(seed), task.rods.signature
            within += signature_distance(v, s, DEFAULT_WEIGHTS) <= MATCH_TOLERANCE
            same_topo += v.topology == s.topology
            same_depth += v.depth == s.depth
    n = len(seeds)
    rows = [
        f"| procedural acceptance over {n} training seeds ({per_category} per category) | {accepted}/{n} = {accepted / n:.0%} | per category: {dict(by_cat)} |",
        f"| variants per attempt | {accepted}/{attempts} = {accepted / max(1, attempts):.0%} | ≤ 3 attempts per seed |",
        f"| structural match of the variants (distance ≤ {MATCH_TOLERANCE}) | {within}/{max(1, accepted)} | same topology {same_topo}, same depth {same_depth} |",
    ]
    notes = [
        "- rejections: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        if reasons
        else "- rejections: none",
        "- failures: " + ", ".join(f"{k} {v}" for k, v in failures.most_common())
        if failures
        else "- failures: none",
    ]
    return rows, notes


# ---------------------------------------------------------------- (d) acceptance, all seeds


def bench_acceptance(n_variants: int, jsonl: Path | None) -> tuple[list[str], list[str]]:
    backend = _procedural()
    got: Counter[str] = Counter()
    seeds_with: Counter[str] = Counter()
    seeds_n: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
    out = jsonl.open("w", encoding="utf-8") if jsonl is not None else None
    t0 = time.perf_counter()
    for category in CATEGORIES:
        for i, seed in enumerate(load_split("train", [category])):
            res = synthesize(seed, n_variants=n_variants, backend=backend, rng_seed=i)
            seeds_n[category] += 1
            got[category] += len(res.tasks)
            seeds_with[category] += bool(res.tasks)
            reasons[category].update(res.rejections)
            reasons[category].update(res.failures)
            for task in res.tasks:
                if out is not None:
                    out.write(task.model_dump_json() + "\n")
    if out is not None:
        out.close()
    wall = time.perf_counter() - t0
    rows, notes = [], []
    for c in CATEGORIES:
        asked = seeds_n[c] * n_variants
        rows.append(
            f"| acceptance, {c} ({seeds_n[c]} training seeds × {n_variants}) | "
            f"**{got[c] / asked:.0%}** ({got[c]}/{asked}) | seeds with ≥ 1 variant: {seeds_with[c]}/{seeds_n[c]} |"
        )
        top = ", ".join(f"{k} {v}" for k, v in reasons[c].most_common(6)) or "none"
        notes.append(f"- {c}: failures and rejections (all attempts): {top}")
    total = sum(got.values())
    notes.append(f"- {total} variants in {wall:.0f} s wall ({total / wall * 60:.0f} validated variants/min, one process)")
    return rows, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["procedural", "llm", "quality"], action="append")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--acceptance", type=int, metavar="N", help="only (d): N variants per training seed")
    ap.add_argument("--jsonl", type=Path, help="with --acceptance: write the variants here")
    args = ap.parse_args()
    parts = args.only or ([] if args.acceptance else ["procedural", "llm", "quality"])
    rows: list[str] = []
    notes: list[str] = []
    if args.acceptance:
        r, n = bench_acceptance(args.acceptance, args.jsonl)
        rows += r
        notes += n
    if "procedural" in parts:
        rows += bench_procedural(1 if args.quick else 3)
    if "llm" in parts:
        rows += bench_llm([1, 8] if args.quick else [1, 8, 16], 1 if args.quick else 2, 1.0)
    if "quality" in parts:
        r, n = bench_quality(5 if args.quick else 25)
        rows += r
        notes += n
    load = os.getloadavg()[0]
    report = "\n".join(
        [
            "# Synthesis benchmarks",
            "",
            f"Command: `.venv/bin/python benchmarks/bench_synth.py{(' ' + ' '.join(sys.argv[1:])) if sys.argv[1:] else ''}`",
            f"Machine: nproc {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-min load average at the end: {load:.2f} (the machine is shared)",
            "",
            "| figure | measured | note |",
            "|---|---|---|",
            *rows,
            "",
            *notes,
            "- \"got N cores\" = the worker processes' CPU seconds in their jobs / wall seconds (the parent's "
            "queue handling and the last job of a phase running alone are the rest). Both configurations run the "
            "same requests and must produce the same variants (checked); phases run 1, 2, 2, 1 processes, the "
            "reference and synthesis alternating, and each figure sums both phases of its kind.",
            "- The machine ceiling is what 2 processes of plain Python get here (2 vCPUs of a shared host: "
            "frequency, SMT siblings and other tenants are invisible to the VM's CPU accounting, and "
            "steal is not reported); the synthesis ratio divided by it is the part our code controls.",
            "",
            "Variants are validated: every gate passed (fresh re-execution, availability, size limits, "
            "signature tolerance, no pool or held-out near-duplicate) after augmentation into the seed's category. "
            "The LLM stub replies instantly after its sleep; its replies imitate the seed (tests/integration/llm_stub.py).",
        ]
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
