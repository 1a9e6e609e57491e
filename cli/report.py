"""`rods report RUN_DIR [--compare STATIC_RUN_DIR]`: (re)write a run's `report.html`.

A thin shell over `report.html` (imported inside the functions, so `rods --help` stays light).
`write_report` is also what `rods demo` and `rods train` call at the end of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

console = Console()
err = Console(stderr=True, soft_wrap=True)


def write_report(run_dir: Path, compare: Path | None = None) -> Path:
    """Write `<run_dir>/report.html` from the run's files; returns its path."""
    from report.html import write_report as build

    return build(run_dir, compare)


def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory (metrics.jsonl, events.jsonl, synth.json, buffer.jsonl)")],
    compare: Annotated[Path | None, typer.Option("--compare", help="a static run's directory (or its metrics.jsonl) to overlay")] = None,
) -> None:
    """Write RUN_DIR/report.html: plots of reward, depletion, regions, pool, synthesis, latency.

    Warns (on stderr) about each input that is missing or unreadable; the page says it too."""
    if not run_dir.is_dir():
        err.print(f"[bold red]error:[/] {run_dir}: no such run directory")
        raise typer.Exit(2)
    if compare is not None and not compare.exists():
        err.print(f"[bold red]error:[/] --compare {compare}: no such run directory or file")
        raise typer.Exit(2)
    from report.data import load_run
    from report.html import render
    from rods.fileio import atomic_write_text

    data = load_run(run_dir, compare)
    for note in data.notes:  # each missing or unreadable input, so a thin page is explained
        err.print(Text.assemble(("warning: ", "yellow"), note))
    path = run_dir / "report.html"
    atomic_write_text(path, render(data))  # whole or not at all
    console.print(f"report: {path}" + (f" ({len(data.notes)} warning(s) above)" if data.notes else ""))
