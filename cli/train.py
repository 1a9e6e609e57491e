"""Training commands of the `rods` CLI: `rods train`, `rods trainer` (the compose service), `rods eval`.

Thin shells over `trainer.*`, imported inside the commands (so `rods --help` never imports torch).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err = Console(stderr=True, soft_wrap=True)
_ERROR_GRACE_S = 5.0  # how long a non-main process waits before reporting its own error (see train)


def _load(config: Path | None, mode: str | None, steps: int | None):  # noqa: ANN202
    from cli.errors import check_input_file, fail
    from trainer.config import ConfigError, load_config

    if config is not None:
        check_input_file(config, "TOML config file", "e.g. configs/demo.toml")
    try:
        cfg = load_config(config)
    except ConfigError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    except UnicodeDecodeError as e:
        raise fail(f"--config {config}: not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    if mode is not None:
        if mode not in ("rods", "static", "uniform"):
            err.print(f"[bold red]error:[/] --mode must be 'rods', 'static' or 'uniform', not {mode!r}")
            raise typer.Exit(2)
        cfg = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"mode": mode})})
    if steps is not None:
        cfg = cfg.model_copy(update={"loop": cfg.loop.model_copy(update={"steps": steps})})
    return cfg


def _fmt(metrics: dict, key: str, spec: str = ".3f") -> str:
    v = metrics.get(key)
    return "—" if v is None or v != v else format(v, spec)


def train(
    config: Annotated[Path | None, typer.Option("--config", help="TOML config (see configs/)")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="rods (boundary requests), uniform (random requests) or static (synthesis off); all sample the run's buffer")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="GRPO updates (overrides the config)")] = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="run directory; an existing one is resumed")] = Path("runs/train"),
    init_from: Annotated[str | None, typer.Option("--init-from", help="start from this model dir (e.g. runs/demo/sft/best)")] = None,
    trainer: Annotated[str, typer.Option("--trainer", help="native (one device) or trl (TRL's GRPOTrainer; multi-GPU under accelerate launch / torchrun)")] = "native",
) -> None:
    """GRPO training on the tool environment; resumes from the run directory's last checkpoint."""
    from rods.store.connection import RedisUnavailable
    from trainer.config import ConfigError
    from trainer.loop import train as run_train

    cfg = _load(config, mode, steps)
    if init_from is not None:
        cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"init_from": init_from})})
    if trainer not in ("native", "trl"):
        err.print(f"[bold red]error:[/] --trainer must be 'native' or 'trl', not {trainer!r}")
        raise typer.Exit(2)
    if trainer == "trl":
        run_train = _trl_train()
        if not _is_main_process():  # one progress bar, one report and one error line: the main process's
            try:
                run_train(cfg, run_dir)
            except (RedisUnavailable, ConfigError) as e:
                # Most such errors hit every process alike, and the launcher stops all processes as
                # soon as one exits: wait for the main process to say it (and be stopped), and say
                # it here only if this process alone failed.
                time.sleep(_ERROR_GRACE_S)
                err.print(f"[bold red]error[/] (process {os.environ.get('RANK')}): {e}")
                raise typer.Exit(2) from None
            return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
    ) as progress:  # fmt: skip
        bar = progress.add_task(f"train ({cfg.loop.mode}, {trainer})", total=cfg.loop.steps, info="")
        t0 = time.monotonic()

        def on_step(step: int, m: dict) -> None:
            info = (
                f"R_P {_fmt(m, 'reward/mean')}  zero-var {_fmt(m, 'reward/frac_zero_var', '.0%')}  "
                f"boundary {_fmt(m, 'boundary/frac_boundary', '.0%')}  "
                f"req {_fmt(m, 'boundary/requests', '.0f')}  active {_fmt(m, 'buffer/active', '.0f')}"
            )
            progress.update(bar, completed=step, info=info)
            if not console.is_terminal:  # no bar without a TTY (compose logs, CI): one line per step
                console.print(f"step {step}/{cfg.loop.steps}  {info}  {time.monotonic() - t0:.0f}s", highlight=False, soft_wrap=True)

        try:
            result = run_train(cfg, run_dir, on_step=on_step)
        except (RedisUnavailable, ConfigError) as e:
            err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None
    if result.resumed_from:
        console.print(f"resumed from step {result.resumed_from}")
    from cli.report import write_report

    report = write_report(run_dir)
    console.print(f"[green]done:[/] {result.steps_done} steps in {run_dir} (metrics.jsonl, checkpoints/, {report.name})")


def _trl_train():  # noqa: ANN202
    try:
        import trl  # noqa: F401

        from trainer.trl.loop import train_trl
    except ImportError as e:
        if e.name not in ("trl", "datasets", "accelerate"):
            raise
        err.print("[bold red]error:[/] --trainer trl needs TRL: install the trl extra: pip install -e '.\\[trl]'")
        raise typer.Exit(2) from None
    return train_trl


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"  # set by accelerate launch and torchrun


def trainer_service(
    config: Annotated[Path, typer.Option("--config", help="TOML config")],
    run_dir: Annotated[Path, typer.Option("--run-dir", help="run directory (a volume in compose)")],
    trainer: Annotated[str, typer.Option("--trainer", help="native or trl (launch under accelerate for several GPUs)")] = "native",
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="GRPO updates (overrides the config)")] = None,
    warm_start: Annotated[bool, typer.Option("--warm-start/--no-warm-start", help="native only: start from `rods sft` of the config's model, run once into <run-dir>/warm-start and reused")] = False,
) -> None:
    """The compose `trainer` services: `rods train` in rods mode, resuming after any restart."""
    init_from = None
    if warm_start:
        if trainer != "native":
            err.print("[bold red]error:[/] --warm-start is for --trainer native; give a TRL run a warm-started model in its config")
            raise typer.Exit(2)
        init_from = str(_warm_start(_load(config, None, None), run_dir / "warm-start"))
    train(config=config, mode="rods", steps=steps, run_dir=run_dir, init_from=init_from, trainer=trainer)


def _warm_start(cfg, warm_dir: Path) -> Path:  # noqa: ANN001
    """The supervised warm start of `cfg`'s model on its task subset (`rods sft`), cached."""
    from cli.sft import sft

    best = warm_dir / "sft" / "best"
    if (best / "config.json").exists():
        console.print(f"warm start: cached at {best}")
    else:
        console.print(f"warm start: supervised steps on seed ground truth into {warm_dir} (first start only)", soft_wrap=True)
        sft(run_dir=warm_dir, model=cfg.policy.model, subset=cfg.tasks.subset, measure=False)
    return best


def evaluate(
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="a model directory, or a run directory (its best/ or latest checkpoint)")],
    split: Annotated[str, typer.Option("--split", help="eval (held out) or train")] = "eval",
    protocol: Annotated[str, typer.Option("--protocol", help="train (the training rollout loop) or bfcl (bfcl-eval's inference semantics)")] = "train",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="tasks per category, for a quick look")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="where eval.json / eval.md go (default: <model>/eval-<split>-<protocol>)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config for rollout limits")] = None,
) -> None:
    """Greedy rollouts on a split, scored by bfcl-eval's own checker; prints the paper-shaped table."""
    from trainer.checkpoint import CheckpointNotFound, resolve_checkpoint
    from trainer.evaluate import PROTOCOLS
    from trainer.evaluate import evaluate as run_eval

    if split not in ("eval", "train"):
        err.print(f"[bold red]error:[/] --split must be 'eval' or 'train', not {split!r}")
        raise typer.Exit(2)
    if protocol not in PROTOCOLS:
        err.print(f"[bold red]error:[/] --protocol must be 'train' or 'bfcl', not {protocol!r}")
        raise typer.Exit(2)
    try:
        model_dir = resolve_checkpoint(Path(checkpoint))
    except CheckpointNotFound as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    cfg = _load(config, None, None)
    out_dir = out or model_dir / f"eval-{split}-{protocol}"
    report = run_eval(str(model_dir), out_dir, split=split, limit=limit, device=cfg.policy.device,
                      rollout_overrides=cfg.rollout.model_dump(), protocol=protocol)  # type: ignore[arg-type]
    console.print(report.markdown(f"{model_dir} on {split}", protocol))
    console.print(f"written to {out_dir}/eval.json and eval.md")
