"""`rods synth …`: run the synthesis graph on one seed without Celery, and validate task files.

    rods synth run --seed TASK_ID --n N [--backend procedural|llm] [--model M] [--api-base URL]
                   [--tasks FILE.jsonl] --out FILE.jsonl
    rods synth validate FILE.jsonl [--json]

Mounted by `cli/app.py` as `app.add_typer(synth_app, name="synth")`. `graphs` is imported inside
the commands only: `rods` never imports `graphs` at import time (ARCHITECTURE §2).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rods.tasks import Task, TaskFileError, get_bfcl_task, read_tasks, write_tasks

synth_app = typer.Typer(no_args_is_help=True, help="The synthesis graph, without Celery.")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages name long paths: never wrap them


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _load_seed(seed_id: str, tasks_file: Path | None) -> Task:
    if tasks_file is None:
        try:
            return get_bfcl_task(seed_id)
        except KeyError as e:
            raise _fail(f"{e.args[0]}; give --tasks FILE.jsonl for a seed from a task file") from None
    try:
        found = [t for t in read_tasks(tasks_file) if t.id == seed_id]
    except TaskFileError as e:
        raise _fail(str(e)) from None
    if not found:
        raise _fail(f"{tasks_file}: no task with id {seed_id!r}")
    return found[0]


def _backend(kind: str | None, model: str | None, api_base: str | None) -> Any:
    """The configured backend (`RODS_SYNTH_*`, sampling included), with the flags given."""
    from pydantic import ValidationError

    from graphs.synthesis.backends import BackendConfigError, make_backend
    from rods.config import Settings

    try:
        return make_backend(Settings(), kind=kind, model=model, api_base=api_base)
    except ValidationError as e:
        first = e.errors()[0]
        raise _fail(f"the environment's {first['loc'][0]!r} setting: {first['msg']}") from None
    except BackendConfigError as e:
        raise _fail(str(e)) from None


@synth_app.command("run")
def run(
    seed: Annotated[str, typer.Option("--seed", help="id of a training seed (or of a task in --tasks)")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file for the validated variants")],
    n: Annotated[int, typer.Option("--n", min=1, help="variants wanted")] = 1,
    backend: Annotated[str | None, typer.Option("--backend", help="procedural | llm (default: RODS_SYNTH_BACKEND, procedural)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="litellm model string (llm; default: RODS_SYNTH_MODEL)")] = None,
    api_base: Annotated[str | None, typer.Option("--api-base", help="OpenAI-compatible server URL (default: RODS_SYNTH_API_BASE)")] = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", help="take the seed from this task file")] = None,
    rng_seed: Annotated[int, typer.Option("--rng-seed", help="seed of the run's randomness")] = 0,
) -> None:
    """Synthesize up to N validated variants of one seed and write them as BFCL JSONL."""
    from graphs.synthesis.graph import EvalSeedError, check_seed, synthesize
    from graphs.synthesis.state import result_metrics

    seed_task = _load_seed(seed, tasks)
    try:
        check_seed(seed_task)
    except EvalSeedError as e:
        raise _fail(str(e)) from None
    chosen = _backend(backend, model, api_base)
    from graphs.synthesis.backend import BackendUnavailable

    try:
        result = synthesize(seed_task, n_variants=n, backend=chosen, rng_seed=rng_seed)
    except BackendUnavailable as e:  # the model server, not the seed: no stage can succeed
        raise _fail(str(e), code=1) from None
    write_tasks(out, result.tasks)
    err.print(
        f"{len(result.tasks)}/{n} variants of {seed} written to {out} "
        f"({result.attempts} attempts, synthesizer {chosen.name})"
    )
    sys.stdout.write(json.dumps(result_metrics(result), sort_keys=True) + "\n")
    if not result.tasks:
        raise typer.Exit(1)


def validate_tasks(tasks: list[Task]) -> list[tuple[str, list[str]]]:
    """Gate reasons per task: every gate, the earlier tasks of the file as the pool, the parent's
    signature (a BFCL seed or an earlier task of the file) as the structural reference."""
    from graphs.synthesis import gates
    from rods.env.reward import GroundTruthCache
    from rods.signature import DEFAULT_WEIGHTS, MATCH_TOLERANCE, compute_signature

    cache = GroundTruthCache(max_tasks=256)
    pool = gates.DedupIndex()
    evals = gates.eval_index()
    by_id = {t.id: t for t in tasks}
    out = []
    for task in tasks:
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
            pool=pool,
            evals=evals,
        )
        pool.add(task)
        out.append((task.id, reasons))
    return out


@synth_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="BFCL-format JSONL task file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Run the critique gates on every task of a file; exit 1 if any task is rejected."""
    try:
        tasks = read_tasks(file)
    except TaskFileError as e:
        raise _fail(str(e)) from None
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
