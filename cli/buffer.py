"""`rods buffer …`: load the seeds of a run, show its counts, export and import its tasks, and
convert a run stored by an older version (`migrate`).

Mounted by `cli/app.py` as `app.add_typer(buffer_app, name="buffer")`. Every command takes
`--redis-url` and `--run` (defaults: `REDIS_URL`, `RODS_RUN`). Exports are BFCL-format JSONL, one
task per line, in state order (active, staged, retired) then admission order, each with its
`rods` block (lineage) and `rods.buffer` (state, statistics); `import` restores them, so
export → import (into an empty run) → export gives the same file.

`import` admits nothing that synthesis would not: every task's id must have a category, nothing
held out may enter (by id, and by content: the critique's near-duplicate guard against the
evaluation split, whatever the id), a task that claims to be a seed must be a BFCL training seed
with its content unchanged, and synthetic tasks pass the same gates as `rods synth validate`
(`--trust` skips those gates, and says so; the id and held-out checks always run). What it
refuses is listed with the reason, and the command then exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import check_input_file, check_output_file
from rods.config import Settings
from rods.pool import STATES, TaskState
from rods.store.buffer import RedisBuffer
from rods.store.connection import RedisUnavailable, connect
from rods.store.migrate import migrate_layout
from rods.tasks import Task, TaskFileError, load_split, read_tasks, write_tasks

LAST_DEAD = 5  # dead letters shown by `stats`

buffer_app = typer.Typer(help="The replay buffer of a run in Redis.", no_args_is_help=True)

RedisUrl = Annotated[
    str | None, typer.Option("--redis-url", help="Redis URL (default: $REDIS_URL).")
]
Run = Annotated[
    str | None, typer.Option("--run", help="Run name (default: $RODS_RUN or 'default').")
]


def _connect(redis_url: str | None, run: str | None) -> tuple[Any, Settings]:
    settings = Settings()
    updates = {k: v for k, v in {"redis_url": redis_url, "run": run}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    try:
        return connect(settings), settings
    except RedisUnavailable as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _open(redis_url: str | None, run: str | None) -> RedisBuffer:
    r, settings = _connect(redis_url, run)
    try:
        return RedisBuffer(r, settings.run, settings.pool_rules(), settings.events_maxlen)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


MAX_RUNS_SHOWN = 8  # run names listed when a --run names none


def _require_run(buf: RedisBuffer) -> None:
    """Exit 2 with one line when Redis holds no key of the run (a typo in --run, or the wrong
    Redis): a command that reads the run would otherwise report zeros or write an empty file."""
    from rods.store.keys import PREFIX, RunKeys

    if next(iter(buf.r.scan_iter(match=RunKeys(buf.run).pattern, count=1000)), None) is not None:
        return
    runs: set[str] = set()
    for key in buf.r.scan_iter(match=f"{PREFIX}:*", count=1000):
        name = (key.decode() if isinstance(key, bytes) else str(key)).split(":")
        if len(name) > 2:
            runs.add(name[1])
        if len(runs) > MAX_RUNS_SHOWN:
            break
    shown = sorted(runs)[:MAX_RUNS_SHOWN]
    there = (f"runs there: {', '.join(shown)}{', …' if len(runs) > MAX_RUNS_SHOWN else ''}" if runs
             else "it holds no RODS run")  # fmt: skip
    typer.echo(f"error: no run named {buf.run!r} in this Redis ({there}); check --run / $RODS_RUN "
               f"(or load seeds first: rods buffer init --run {buf.run})", err=True)  # fmt: skip
    raise typer.Exit(2)


@buffer_app.command()
def init(redis_url: RedisUrl = None, run: Run = None) -> None:
    """Load the 400 training seeds into the run's active pool (again: nothing changes)."""
    buf = _open(redis_url, run)
    res = buf.load_seeds(load_split("train"))
    typer.echo(
        f"run {buf.run}: {len(res.admitted)} seeds loaded, {len(res.duplicates)} already present"
    )
    for task_id, why in res.rejected.items():
        typer.echo(f"rejected {task_id}: {why}", err=True)


@buffer_app.command()
def stats(
    redis_url: RedisUrl = None,
    run: Run = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the flat metrics as JSON.")
    ] = False,
) -> None:
    """Counts by state, then by origin, category, region, generation and retirement reason."""
    from rods.store.stream import BoundaryStream

    buf = _open(redis_url, run)
    _require_run(buf)
    metrics = buf.metrics()
    dead = BoundaryStream(buf.r, buf.run).dead_letters()
    metrics["stream/dead_letters"] = float(len(dead))
    if as_json:
        typer.echo(json.dumps(metrics, sort_keys=True))
        return
    typer.echo(f"run {buf.run}")
    for state in STATES:
        typer.echo(f"{state:>8}: {int(metrics[f'buffer/{state}'])}")
        prefix = f"buffer/{state}/"
        for key in sorted(k for k in metrics if k.startswith(prefix)):
            typer.echo(f"          {key.removeprefix(prefix)}: {int(metrics[key])}")
    typer.echo(f"dead-lettered requests: {len(dead)}" + (f" (last {min(len(dead), LAST_DEAD)}:)" if dead else ""))
    for letter in dead[-LAST_DEAD:]:
        typer.echo(f"  {letter.entry_id} after {letter.deliveries} deliveries: {letter.last_error or '(no error recorded)'}")


@buffer_app.command("export")
def export_cmd(
    file: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    redis_url: RedisUrl = None,
    run: Run = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only these states (repeatable).")
    ] = None,
) -> None:
    """Write the run's tasks as BFCL-format JSONL with their `rods` block (lineage, stats)."""
    states = state or list(STATES)
    bad = [s for s in states if s not in STATES]
    if bad:
        typer.echo(f"error: unknown state(s) {bad}; use {list(STATES)}", err=True)
        raise typer.Exit(2)
    check_output_file(file, "FILE")
    buf = _open(redis_url, run)
    _require_run(buf)  # before the file is touched: a typo never replaces a good export
    chosen: list[TaskState] = [s for s in STATES if s in states]
    n = write_tasks(file, buf.export_tasks(chosen))
    typer.echo(f"run {buf.run}: wrote {n} tasks to {file}")


@buffer_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="BFCL-format JSONL file (e.g. from export).")],
    redis_url: RedisUrl = None,
    run: Run = None,
    trust: Annotated[
        bool, typer.Option("--trust", help="Skip the critique gates (ids and the held-out guard still run).")
    ] = False,
) -> None:
    """Add the file's tasks to the run, restoring state and stats from their `rods.buffer` block.

    Runs the checks of `rods synth validate` first and refuses what fails them; exits 1 when
    anything was refused."""
    check_input_file(file, "task file")
    try:
        tasks = read_tasks(file)
    except TaskFileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    buf = _open(redis_url, run)
    kept, refused = screen_import(tasks, trust)
    res = buf.import_tasks(kept)
    refused.update(res.rejected)
    typer.echo(
        f"run {buf.run}: imported {len(res.admitted)}, {len(res.duplicates)} already present, "
        f"{len(refused)} refused"
        + (" (--trust: the critique gates were skipped; ids and the held-out guard were checked)" if trust else "")
    )
    for task_id, why in refused.items():
        typer.echo(f"refused {task_id}: {why}", err=True)
    if refused:
        raise typer.Exit(1)


def screen_import(tasks: list[Task], trust: bool) -> tuple[list[Task], dict[str, str]]:
    """(the tasks that may enter, task id → why each other one may not); see the module doc."""
    from cli.synth import held_out_overlap, id_problem, is_bfcl_seed, validate_tasks
    from graphs.synthesis.state import CODE_HELP
    from rods.store.contract import split_buffer_block

    refused: dict[str, str] = {}
    seeds: list[Task] = []
    synthetic: list[Task] = []
    for task in tasks:
        why = id_problem(task.id) or held_out_overlap(task)
        if why is None:
            try:
                split_buffer_block(task)
            except ValueError as e:
                why = f"its rods.buffer block is invalid ({' '.join(str(e).split())[:200]})"
        is_seed = task.rods is None or task.rods.origin == "seed"
        if why is None and is_seed and not trust and not is_bfcl_seed(task):
            why = (
                "it claims to be a seed (no rods block, or origin 'seed') but is not a BFCL training "
                "seed with its content unchanged; give a new task a rods block with origin "
                "'synthetic', or import with --trust"
            )
        if why is not None:
            refused[task.id] = why
        else:
            (seeds if is_seed else synthetic).append(task)
    if not trust and synthetic:
        for task, (_, reasons) in zip(synthetic, validate_tasks(synthetic, pool_tasks=seeds), strict=True):
            if reasons:
                refused[task.id] = "failed the gates: " + "; ".join(
                    f"{r} ({CODE_HELP[r][0]})" if r in CODE_HELP else r for r in reasons
                )
    return [t for t in tasks if t.id not in refused], refused  # the file's order: admission order


@buffer_app.command()
def migrate(redis_url: RedisUrl = None, run: Run = None) -> None:
    """Convert a run stored by an older RODS (a `rec:<task id>` key per task) in place. Stop the
    run's trainer and synthesis workers first; run it again if it was interrupted."""
    r, settings = _connect(redis_url, run)
    try:
        n = migrate_layout(r, settings.run)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"run {settings.run}: {n} records converted to the current layout")
