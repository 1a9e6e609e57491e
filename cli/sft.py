"""Trainer commands of the `rods` CLI: thin shells over `trainer.*` (imported inside each command,
so `import rods` never imports torch or transformers).

    rods sft [--run-dir DIR] [--steps N] [--model tiny|PACKAGED|PATH] [--batch-size B] [--max-seq-tokens T]
             [--probe-every K] [--measure/--no-measure]

Register with `app.command("sft")(sft)` in `cli/app.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def sft(
    run_dir: Annotated[
        Path, typer.Option("--run-dir", help="run directory (sft/ is written under it)")
    ] = Path("runs/demo"),
    steps: Annotated[
        int | None, typer.Option("--steps", help="optimiser steps (default: SFTConfig.steps)")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="'tiny' (built locally), a packaged model (gemma-3-270m), a local model dir, or a hub id")
    ] = "tiny",
    subset: Annotated[
        str,
        typer.Option("--subset", help="demo (short base seeds) or all (the 400 training seeds)"),
    ] = "demo",
    probe_every: Annotated[
        int | None, typer.Option("--probe-every", help="steps between boundary probes")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="AdamW learning rate (default 2e-3, the tiny model's)"),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="model init, batch order and sampling seed")
    ] = 0,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="conversations per step (default 8)")
    ] = None,
    max_seq_tokens: Annotated[
        int | None,
        typer.Option("--max-seq-tokens", min=16, help="leave out longer conversations (default 1024)"),
    ] = None,
    measure: Annotated[
        bool,
        typer.Option(
            "--measure/--no-measure",
            help="after training, roll out the chosen checkpoint 8x on every pool task and report the regions",
        ),
    ] = True,
) -> None:
    """Supervised warm start on the seeds' ground-truth conversations; the checkpoint is the one
    with the most probe tasks in the boundary band."""
    from trainer.sft import SFTConfig, measure_warm_start, run_sft

    overrides = {"model": model, "subset": subset, "seed": seed}
    if steps is not None:
        overrides["steps"] = steps
    if probe_every is not None:
        overrides["probe_every"] = probe_every
    if lr is not None:
        overrides["lr"] = lr
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if max_seq_tokens is not None:
        overrides["max_seq_tokens"] = max_seq_tokens
    cfg = SFTConfig(**overrides)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]sft"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("sft", total=cfg.steps, info="")

        def show(row: dict) -> None:
            bar.update(task, completed=row["step"], info=f"loss {row['sft/loss']:.3f}")
            if "probe/frac_boundary" in row:
                bar.console.print(
                    f"step {row['step']:4d}  loss {row['sft/loss']:.3f}  {row['time/elapsed']:.0f}s"
                    f"  probe: non-zero {row['probe/frac_nonzero']:.0%}  boundary {row['probe/frac_boundary']:.0%}"
                    f"  mastered {row['probe/frac_mastered']:.0%}"
                )

        best = run_sft(cfg, run_dir, log=show)
    summary = json.loads((run_dir / "sft" / "summary.json").read_text())
    console.print(f"[green]warm start:[/] {best} (step {summary['best'].get('step')})")
    if measure:
        result = measure_warm_start(best, cfg)
        (run_dir / "sft" / "measure.json").write_text(json.dumps(result, indent=2))
        console.print(
            f"pool of {result['probe/tasks']:.0f} tasks × {cfg.probe_samples} rollouts: "
            f"non-zero R_P {result['probe/frac_nonzero']:.0%}, boundary {result['probe/frac_boundary']:.0%}, "
            f"mastered {result['probe/frac_mastered']:.0%}, mean R_P {result['probe/reward_mean']:.3f}"
        )
