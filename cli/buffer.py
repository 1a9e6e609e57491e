"""`rods buffer …`: load the seeds of a run, show its counts, export and import its tasks, and
convert a run stored by an older version (`migrate`).

Mounted by `cli/app.py` as `app.add_typer(buffer_app, name="buffer")`. Every command takes
`--redis-url` and `--run` (defaults: `REDIS_URL`, `RODS_RUN`). Exports are BFCL-format JSONL, one
task per line, in state order (active, staged, retired) then admission order, each with its
`rods` block (lineage) and `rods.buffer` (state, statistics); `import` restores them, so
export → import (into an empty run) → export gives the same file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from rods.config import Settings
from rods.pool import STATES, TaskState
from rods.store.buffer import RedisBuffer
from rods.store.connection import RedisUnavailable, connect
from rods.store.migrate import migrate_layout
from rods.tasks import TaskFileError, load_split, read_tasks, write_tasks

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
    buf = _open(redis_url, run)
    metrics = buf.metrics()
    if as_json:
        typer.echo(json.dumps(metrics, sort_keys=True))
        return
    typer.echo(f"run {buf.run}")
    for state in STATES:
        typer.echo(f"{state:>8}: {int(metrics[f'buffer/{state}'])}")
        prefix = f"buffer/{state}/"
        for key in sorted(k for k in metrics if k.startswith(prefix)):
            typer.echo(f"          {key.removeprefix(prefix)}: {int(metrics[key])}")


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
    buf = _open(redis_url, run)
    chosen: list[TaskState] = [s for s in STATES if s in states]
    n = write_tasks(file, buf.export_tasks(chosen))
    typer.echo(f"run {buf.run}: wrote {n} tasks to {file}")


@buffer_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="BFCL-format JSONL file (e.g. from export).")],
    redis_url: RedisUrl = None,
    run: Run = None,
) -> None:
    """Add the file's tasks to the run, restoring state and stats from their `rods.buffer` block."""
    try:
        tasks = read_tasks(file)
    except TaskFileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    buf = _open(redis_url, run)
    res = buf.import_tasks(tasks)
    typer.echo(
        f"run {buf.run}: imported {len(res.admitted)}, {len(res.duplicates)} already present, "
        f"{len(res.rejected)} rejected"
    )
    for task_id, why in res.rejected.items():
        typer.echo(f"rejected {task_id}: {why}", err=True)


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
