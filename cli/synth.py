"""`rods synth …`: run the synthesis graph on one seed without Celery, and validate task files.

    rods synth run --seed TASK_ID --n N [--backend procedural|llm] [--model M] [--api-base URL]
                   [--tasks FILE.jsonl] --out FILE.jsonl
    rods synth validate FILE.jsonl [--json]
    rods synth audit VARIANTS.jsonl [--against train|FILE.jsonl] [--json]
    rods synth codes [--json]          what each failure and rejection code means, what to change

`run` asks for one variant at a time (at most `MAX_VARIANTS`), shows progress, and APPENDS each
variant to --out as soon as it is accepted (a whole line, flushed and fsynced), so an interrupted
run keeps what it made and a rerun adds to the earlier variants; --out is checked before any
work (never the --tasks file, never a file whose last line was cut off) and a run that accepts
nothing leaves it as it was. Ctrl-C says what was kept and the command that continues. A seed
from --tasks is refused when its content is a near-duplicate of a held-out evaluation task,
whatever its id (`held_out_overlap`, the critique's own contamination guard); `rods buffer
import` applies the same check.

Mounted by `cli/app.py` as `app.add_typer(synth_app, name="synth")`. `graphs` is imported inside
the commands only: `rods` never imports `graphs` at import time (docs/ARCHITECTURE.md §2).
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import check_input_file, check_output_file
from cli.errors import fail as _fail
from rods.tasks import (
    CATEGORIES,
    Task,
    TaskFileError,
    category_of,
    get_bfcl_task,
    is_eval_task,
    read_tasks,
    split_ids,
)

synth_app = typer.Typer(no_args_is_help=True, help="The synthesis graph, without Celery.")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages name long paths: never wrap them
MAX_VARIANTS = 1000  # per `synth run`: a larger number is a typo, and the service makes the rest
GIVE_UP_AFTER = 20  # consecutive variants that all failed: the seed or the backend will not work


def id_problem(task_id: str, what: str = "task") -> str | None:
    """What is wrong with a task id (None: nothing); `what` names the task in the message."""
    try:
        category = category_of(task_id)
    except ValueError:
        category = None
    if category in CATEGORIES:
        return None
    return (
        f"{what} id {task_id!r} is not of the form multi_turn_<category>_<n> with <category> one of "
        f"{', '.join(CATEGORIES)} (the category decides how a variant is augmented); rename it, "
        f"e.g. multi_turn_base_{task_id.rsplit('_', 1)[-1] or '0'}"
    )


def is_bfcl_seed(task: Task) -> bool:
    """A BFCL training seed under its own id, with its content unchanged (its `rods` block aside)."""
    if task.id not in split_ids("train"):
        return False
    return task.model_dump(exclude={"rods"}) == get_bfcl_task(task.id).model_dump(exclude={"rods"})


def held_out_overlap(task: Task) -> str | None:
    """Why `task` must not be trained on or synthesized from: a held-out id, or content that is a
    near-duplicate of a held-out task whatever the id (the critique's `eval_duplicate` guard).
    None: no overlap. The BFCL training seeds themselves are exempt: the split is by scenario
    (docs/ARCHITECTURE.md §3), and none is near a held-out task once bfcl-eval's long-context
    filler is not counted as content (`rods.shingles`; tests/unit/test_near_duplicates.py)."""
    from graphs.synthesis import gates

    if is_eval_task(task.id):
        return f"{task.id} is a held-out evaluation task"
    if is_bfcl_seed(task):
        return None
    index = gates.eval_index()
    nearest, similarity = index.nearest(task)
    if similarity >= index.threshold:
        return (
            f"{task.id}'s content is a near-duplicate of held-out task {nearest} (similarity "
            f"{similarity:.2f} ≥ {index.threshold}), whatever its id: held-out data never enters training"
        )
    return None


def _load_seed(seed_id: str, tasks_file: Path | None) -> Task:
    if tasks_file is None:
        try:
            return get_bfcl_task(seed_id)
        except KeyError as e:
            raise _fail(f"{e.args[0]}; give --tasks FILE.jsonl for a seed from a task file") from None
    check_input_file(tasks_file, "task file")
    try:
        found = [t for t in read_tasks(tasks_file) if t.id == seed_id]
    except TaskFileError as e:
        raise _fail(str(e)) from None
    if not found:
        raise _fail(f"{tasks_file}: no task with id {seed_id!r}")
    problem = id_problem(seed_id, "seed")
    if problem:
        raise _fail(problem)
    overlap = held_out_overlap(found[0])
    if overlap:
        raise _fail(f"refusing seed {seed_id}: {overlap}")
    return found[0]


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    """NaN and infinities become null: the JSON written is valid JSON."""
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _merge(total: Any, part: Any) -> None:
    """Add one `SynthesisResult` into a running total (in place)."""
    for name in ("failures", "rejections", "patches", "latency_s"):
        into = getattr(total, name)
        for k, v in getattr(part, name).items():
            into[k] = into.get(k, 0) + v
    total.tasks.extend(part.tasks)
    total.exceptions.extend(part.exceptions[: max(0, 5 - len(total.exceptions))])
    for name in ("attempts", "prompt_tokens", "completion_tokens", "cost_usd", "model_calls"):
        setattr(total, name, getattr(total, name) + getattr(part, name))


def _backend(kind: str | None, model: str | None, api_base: str | None) -> Any:
    """The configured backend (`RODS_SYNTH_*`, sampling included), with the flags given."""
    from pydantic import ValidationError

    from graphs.synthesis.backends import BackendConfigError, make_backend
    from rods.config import Settings, SettingsError

    try:
        return make_backend(Settings(), kind=kind, model=model, api_base=api_base)
    except SettingsError as e:  # a RODS_* variable: its name, value and what is allowed
        raise _fail(str(e)) from None
    except ValidationError as e:
        first = e.errors()[0]
        raise _fail(f"the environment's {first['loc'][0]!r} setting: {first['msg']}") from None
    except BackendConfigError as e:
        raise _fail(str(e)) from None


@synth_app.command("run")
def run(
    seed: Annotated[str, typer.Option("--seed", help="id of a training seed (or of a task in --tasks)")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file the validated variants are appended to (created when missing; never truncated)")],
    n: Annotated[int, typer.Option("--n", min=1, max=MAX_VARIANTS, help=f"variants wanted (1–{MAX_VARIANTS})")] = 1,
    backend: Annotated[str | None, typer.Option("--backend", help="procedural | llm (default: RODS_SYNTH_BACKEND, procedural)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="litellm model string (llm; default: RODS_SYNTH_MODEL)")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="OpenAI-compatible server URL (default: RODS_SYNTH_API_BASE)")] = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", help="take the seed from this task file")] = None,
    rng_seed: Annotated[int, typer.Option("--rng-seed", help="seed of the run's randomness")] = 0,
) -> None:
    """Synthesize up to N validated variants of one seed, appending each to --out as accepted
    (earlier lines of --out are kept)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rods.fileio import JsonlAppender, OutputPathError, check_output_path

    check_output_file(out)  # every cheap check before the graph (LangGraph) is imported
    try:
        check_output_path(out, [tasks])
        sink = JsonlAppender(out)  # opens the file only with the first accepted variant
        earlier = read_tasks(out) if out.exists() else []  # a rerun must not append the same variants again
    except OutputPathError as e:
        raise _fail(str(e)) from None
    except TaskFileError as e:
        raise _fail(f"--out {out} is appended to, but it is not a valid task file ({e}); give another --out") from None
    if earlier:
        err.print(f"appending to {out} ({len(earlier)} tasks already there are kept)", markup=False, highlight=False)
    seed_task = _load_seed(seed, tasks)

    from graphs.synthesis import gates
    from graphs.synthesis.graph import EvalSeedError, check_seed, synthesize
    from graphs.synthesis.state import SynthConfig, SynthesisResult, result_metrics

    try:
        check_seed(seed_task)
    except EvalSeedError as e:
        raise _fail(str(e)) from None
    chosen = _backend(backend, model, api_base)
    from graphs.synthesis.backend import BackendUnavailable
    preflight = getattr(chosen, "preflight", None)  # the llm backend's: a model-free backend has none
    if preflight is not None:  # a dead, silent or keyless server: one line in seconds
        try:
            preflight()
        except BackendUnavailable as e:
            raise _fail(str(e), code=1) from None

    total = SynthesisResult(seed_id=seed_task.id, requested=n)
    pool = gates.DedupIndex(threshold=SynthConfig().near_duplicate)  # --out's variants and this run's
    for task in earlier:
        pool.add(task)
    misses = 0
    done = 0  # variants asked for and finished: a resume starts at the next one
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err,
        ) as progress:  # fmt: skip
            bar = progress.add_task(f"variants of {seed_task.id}", total=n, info="")
            for i in range(n):
                # one variant per graph run: each is written the moment it is accepted
                try:
                    part = synthesize(seed_task, n_variants=1, backend=chosen, pool_index=pool,
                                      rng_seed=rng_seed + 7919 * i)  # fmt: skip
                except BackendUnavailable as e:  # the model server, not the seed: no stage can succeed
                    kept = f" ({sink.lines} variants appended to {out} before)" if sink.lines else ""
                    raise _fail(f"{e}{kept}", code=1) from None
                _merge(total, part)
                for task in part.tasks:
                    pool.add(task)
                    sink.append(task.to_bfcl())
                done = i + 1
                misses = 0 if part.tasks else misses + 1
                progress.update(bar, completed=len(total.tasks),
                                info=f"{total.attempts} attempts, {i + 1 - len(total.tasks)} given up")  # fmt: skip
                if misses >= GIVE_UP_AFTER:
                    err.print(f"stopping early: the last {misses} variants all failed (see the codes below)")
                    break
    except KeyboardInterrupt:
        err.print(_interrupted_line(sink.lines, out, seed, n, done, rng_seed, tasks, backend, model, api_base),
                  markup=False, highlight=False)
        raise typer.Exit(130) from None
    finally:
        sink.close()
    where = f"appended to {out}" if total.tasks else f"nothing written ({out} left as it was)"
    err.print(
        f"{len(total.tasks)}/{n} variants of {seed} {where} "
        f"({total.attempts} attempts, synthesizer {chosen.name})"
    )
    codes = {**total.failures, **total.rejections}
    if codes:
        top = sorted(codes.items(), key=lambda kv: -kv[1])[:5]
        err.print("most frequent codes: " + ", ".join(f"{k} {v}" for k, v in top) + " (`rods synth codes` explains them)")
    if earlier and total.rejections.get("pool_duplicate") and len(total.tasks) < n:
        err.print(f"{total.rejections['pool_duplicate']} variants were near-duplicates of the {len(earlier)} "
                  f"already in {out} (an earlier run with --rng-seed {rng_seed}?); give another --rng-seed "
                  "for new ones", markup=False, highlight=False)  # fmt: skip
    if total.exceptions:
        err.print(f"first exception: {total.exceptions[0]}", markup=False)
    sys.stdout.write(json.dumps(_finite(result_metrics(total)), sort_keys=True, allow_nan=False) + "\n")
    if not total.tasks:
        raise typer.Exit(1)


def _interrupted_line(kept: int, out: Path, seed: str, n: int, i: int, rng_seed: int, tasks: Path | None,
                      backend: str | None, model: str | None, api_base: str | None) -> str:
    """What Ctrl-C kept and the exact command that makes the rest: the same per-variant seeds
    (`rng_seed + 7919 * i`) continue from the variant that was interrupted."""
    import shlex

    argv = ["rods", "synth", "run", "--seed", seed, "--n", str(n - i), "--out", str(out),
            "--rng-seed", str(rng_seed + 7919 * i)]  # fmt: skip
    for flag, value in (("--tasks", tasks), ("--backend", backend), ("--model", model), ("--api-base", api_base)):
        if value is not None:
            argv += [flag, str(value)]
    return (f"interrupted: kept {kept} variants in {out} (appended); to make the remaining {n - i}, run: "
            + " ".join(shlex.quote(a) for a in argv))


@synth_app.command("codes")
def codes(as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False) -> None:
    """Every failure and rejection code of synthesis: what it means and what to change."""
    from graphs.synthesis.backend import FAILURE_CODES
    from graphs.synthesis.gates import REJECTION_REASONS
    from graphs.synthesis.state import CODE_HELP
    from rods.semantics import SOFT_CODES

    rows = [("failure", c) for c in FAILURE_CODES] + [("rejection", c) for c in REJECTION_REASONS]
    rows += [("finding", c) for c in sorted(SOFT_CODES)]  # counted by `rods synth audit`, not rejected
    missing = ("(not documented yet)", "")
    if as_json:
        payload = {c: {"kind": kind, "meaning": CODE_HELP.get(c, missing)[0], "change": CODE_HELP.get(c, missing)[1]}
                   for kind, c in rows}  # fmt: skip
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    typer.echo("Synthesis codes, counted as synth/fail/<code> (an attempt produced no task) and")
    typer.echo("synth/reject/<code> (a finished task failed a gate); findings are counted by")
    typer.echo("`rods synth audit` and reject nothing:")
    for kind, c in rows:
        meaning, change = CODE_HELP.get(c, missing)
        typer.echo(f"\n{c} ({kind})\n  means:  {meaning}\n  change: {change}")


def validate_tasks(tasks: list[Task], pool_tasks: list[Task] | None = None) -> list[tuple[str, list[str]]]:
    """Gate reasons per task: every gate, `pool_tasks` and the earlier tasks of the file as the
    pool, the parent's signature (a BFCL seed, a pool task or an earlier task of the file) as the
    structural reference. An unchanged BFCL training seed is not a pool duplicate of another
    one: BFCL's four categories reuse each scenario (index N of each is mostly one conversation)
    and the seed pool holds all four, so only a non-seed task near it counts."""
    from graphs.synthesis import gates
    from rods.env.reward import GroundTruthCache
    from rods.signature import DEFAULT_WEIGHTS, MATCH_TOLERANCE, compute_signature

    cache = GroundTruthCache(max_tasks=256)
    pool = gates.DedupIndex(pool_tasks or ())
    evals = gates.eval_index()
    by_id = {t.id: t for t in [*(pool_tasks or ()), *tasks]}
    seed_ids = [t.id for t in pool_tasks or () if is_bfcl_seed(t)]
    out = []
    for task in tasks:
        seed = is_bfcl_seed(task)
        parent_sig = signature = None
        parent_id = task.rods.parent_id if task.rods else None
        if parent_id is not None:
            parent = by_id.get(parent_id)
            if parent is None:
                try:
                    parent = get_bfcl_task(parent_id)
                except KeyError:
                    parent = None
            if parent is not None:
                parent_sig, signature = compute_signature(parent), compute_signature(task)
        reasons = gates.run_gates(
            task,
            cache,
            seed_signature=parent_sig,
            signature=signature,
            tolerance=MATCH_TOLERANCE,
            weights=DEFAULT_WEIGHTS,
            pool=None if seed else pool,
            evals=evals,
        )
        if seed and pool.is_duplicate(task, exclude=(task.id, *seed_ids)):
            reasons = sorted({*reasons, "pool_duplicate"})
        pool.add(task)
        if seed:
            seed_ids.append(task.id)
        out.append((task.id, reasons))
    return out


@synth_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="BFCL-format JSONL task file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Run the critique gates on every task of a file; exit 1 if any task is rejected."""
    check_input_file(file, "task file")
    try:
        tasks = read_tasks(file)
    except TaskFileError as e:
        raise _fail(str(e)) from None
    bad_ids = [problem for t in tasks if (problem := id_problem(t.id)) is not None]
    if bad_ids:  # the gates read the category from the id
        more = f" (and {len(bad_ids) - 1} more)" if len(bad_ids) > 1 else ""
        raise _fail(f"{file}: {bad_ids[0]}{more}")
    results = validate_tasks(tasks)
    counts = Counter(r for _, reasons in results for r in reasons)
    passed = sum(1 for _, reasons in results if not reasons)
    if as_json:
        payload = {
            "tasks": len(results),
            "passed": passed,
            "reasons": dict(sorted(counts.items())),
            "per_task": {tid: reasons for tid, reasons in results},
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        table = Table(title=f"{file}: {passed}/{len(results)} tasks pass every gate")
        table.add_column("reason")
        table.add_column("tasks", justify="right")
        for reason, k in sorted(counts.items()):
            table.add_row(reason, str(k))
        console.print(table)
        for tid, reasons in results:
            if reasons:
                console.print(f"{tid}: {', '.join(reasons)}")
    if passed < len(results):
        raise typer.Exit(1)


def _finite(value: Any) -> Any:
    """NaN → None, recursively (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@synth_app.command("audit")
def audit(
    file: Annotated[Path, typer.Argument(help="BFCL-format JSONL file of variants")],
    against: Annotated[
        str, typer.Option("--against", help="'train' (BFCL's training split) or a JSONL task file")
    ] = "train",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Compare variants with human-written tasks, per category (graphs/synthesis/audit.py)."""
    from graphs.synthesis.audit import METRICS
    from graphs.synthesis.audit import audit as run_audit
    from rods.tasks import load_split

    if against == "eval":
        raise _fail("the audit compares with the training split only; the evaluation split stays unseen")
    try:
        variants = read_tasks(file)
        reference = load_split("train") if against == "train" else read_tasks(Path(against))
    except TaskFileError as e:
        raise _fail(str(e)) from None
    if not variants:
        raise _fail(f"{file}: no tasks")
    report = _finite(run_audit(variants, reference))
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    for category, a in report["categories"].items():
        v, r = a["variants"], a["reference"]
        table = Table(title=f"{category}: {v['n']} variants vs {r['n']} reference tasks")
        for col in ("measure", "variants", "reference"):
            table.add_column(col, justify="left" if col == "measure" else "right")
        fmt = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
        for m in METRICS:
            table.add_row(m, fmt(v["metrics"][m]), fmt(r["metrics"][m]))
        for key in ("top_opener", "top_value"):
            table.add_row(key, f"{v[key][0]!r} {v[key][2]:.0%}", f"{r[key][0]!r} {r[key][2]:.0%}")
        table.add_row("discriminator AUC", fmt(a["auc"]), "(0.5: same)")
        cues = ", ".join(f"{c!r} {k}" for c, k in list(a["cue_phrases"].items())[:5])
        table.add_row("cue phrases", f"{a['cue_variants']} variants", cues or "-")
        table.add_row("reference copies", f"{a['copied_variants']} variants", "(8 words of a reference turn)")
        table.add_row("flags", ", ".join(a["flags"]) or "none", "")
        console.print(table)
    table = Table(title="semantic gate (rods.semantics): tasks with a finding / a meaning error")
    for col in ("category", "variants", "reference", "variants per code"):
        table.add_column(col)
    for category, sides in report["semantic"].items():
        v, r = sides["variants"], sides["reference"]
        cell = lambda x: f"{x['with_finding']}/{x['n']} / {x['with_error']}"  # noqa: E731
        codes = ", ".join(f"{c} {k}" for c, k in v["codes"].items()) or "-"
        table.add_row(category, cell(v), cell(r), codes)
    console.print(table)
    rejected = report["gate_rejections"]
    console.print("gate rejections in the runs that made these variants: "
                  + (", ".join(f"{c} {k}" for c, k in rejected.items()) or "none"))  # fmt: skip
