"""`rods report RUN_DIR [--compare STATIC_RUN_DIR]`: (re)write a run's `report.html`.

A thin shell over `report.html` (imported inside the functions, so `rods --help` stays light).
`write_report` is also what `rods demo` and `rods train` call at the end of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def write_report(run_dir: Path, compare: Path | None = None) -> Path:
    """Write `<run_dir>/report.html` from the run's files; returns its path."""
    from report.html import write_report as build

    return build(run_dir, compare)


def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory (metrics.jsonl, events.jsonl, synth.json, buffer.jsonl)")],
    compare: Annotated[Path | None, typer.Option("--compare", help="a static run's directory (or its metrics.jsonl) to overlay")] = None,
) -> None:
    """Write RUN_DIR/report.html: plots of reward, depletion, regions, pool, synthesis, latency."""
    if not run_dir.is_dir():
        err.print(f"[bold red]error:[/] {run_dir}: no such run directory")
        raise typer.Exit(2)
    if compare is not None and not compare.exists():
        err.print(f"[bold red]error:[/] --compare {compare}: no such run directory or file")
        raise typer.Exit(2)
    path = write_report(run_dir, compare)
    console.print(f"report: {path}")
