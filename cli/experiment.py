"""`rods experiment`: every arm × seed from one shared warm start, evaluated held-out, one report.

    rods experiment --config configs/experiment-cpu.toml [--arms static,rods] [--seeds 0,1,2]
                    [--steps N] [--out runs/exp]

The arms differ from `rods` in exactly one thing (same warm start, model, GRPO settings, task
sampler, seeds and trajectory budget):

    static     the run's buffer with synthesis off (the fair control)
    rods       boundary-driven synthesis (the method)
    uniform    synthesis requests for tasks drawn uniformly, at rods's request rate
    offline    the same graph run up front on every training seed (K variants each, capped at
               P_max), then trained on as a fixed pool (synthesis off during training)
    env-hints  actionable hints in tool error messages, synthesis off

One private Redis (append-only, under <out>/redis) serves every run, each under its own run name;
the synthesis arms get two Celery workers and a dispatcher per run, as in `rods demo`. Training
runs in this process (`trainer.loop.train`). The warm start is built once (<out>/warmstart) and
reused by every arm and seed. Held-out evaluation (greedy, bfcl-eval's checker) runs on each
checkpoint, at fixed fractions of the budget, with every configured protocol.

Resumable: an arm/seed with `done.json` is skipped; an interrupted one resumes from its last
checkpoint (the trainer's resume) with its Redis run intact; finished evaluations are kept.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from rods.fileio import atomic_write_text

if TYPE_CHECKING:
    from cli.experiment_config import ExperimentFile

console = Console(stderr=True)

ARMS = ("static", "rods", "uniform", "offline", "env-hints")
SYNTH_ARMS = {"rods", "uniform"}  # arms whose training publishes requests to the service


def load_experiment(path: Path) -> tuple[ExperimentFile, Any]:
    """(the experiment settings, the shared TrainConfig); one clear error for a bad file."""
    from cli.experiment_config import load

    return load(path)


def arm_config(cfg: Any, arm: str, seed: int, steps: int, eval_points: int) -> Any:
    """The TrainConfig of one arm and seed: the shared one, changed in the arm's one thing."""
    every = max(1, steps // max(1, eval_points))
    update: dict[str, Any] = {
        "policy": cfg.policy.model_copy(update={"seed": seed}),
        "loop": cfg.loop.model_copy(update={
            "steps": steps, "checkpoint_every": every, "keep_checkpoints": eval_points + 2,
            "mode": {"rods": "rods", "uniform": "uniform"}.get(arm, "static"),
        }),  # fmt: skip
    }
    if arm == "env-hints":
        update["env"] = cfg.env.model_copy(update={"hints": True})
    return cfg.model_copy(update=update)


def heldout_tasks(cfg: Any) -> list[Any]:
    """The evaluation split filtered by the training subset's structural rule (never by content)."""
    from rods.tasks import load_split
    from trainer.chat import demo_subset

    tasks = load_split("eval", cfg.tasks.categories)
    return demo_subset(tasks) if cfg.tasks.subset == "demo" else tasks


# ---------------------------------------------------------------- the parts of one run


def warm_start(out: Path, exp: ExperimentFile, cfg: Any) -> str:
    """The shared warm start, built once: <out>/warmstart/sft/best (0 steps: the model itself)."""
    from trainer.sft import SFTConfig, run_sft

    if exp.warm_start.steps == 0:
        return str(cfg.policy.model)
    best = out / "warmstart" / "sft" / "best"
    if (best / "config.json").exists():
        console.print(f"warm start: cached at {best}")
        return str(best)
    ws = exp.warm_start
    console.print(f"[bold]warm start[/]: {ws.steps} SFT steps on the `{ws.subset}` subset (built once)")
    sft = SFTConfig(model=cfg.policy.model, subset=ws.subset, steps=ws.steps, lr=ws.lr, seed=0)  # type: ignore[arg-type]
    return str(run_sft(sft, out / "warmstart"))


def offline_pool(out: Path, exp: ExperimentFile, cfg: Any) -> list[Any]:
    """K variants of every training seed (the configured synthesizer, fixed RNG), capped at P_max;
    cached."""
    from graphs.synthesis.backends import make_backend
    from graphs.synthesis.graph import synthesize
    from rods.config import Settings
    from rods.tasks import read_tasks, write_tasks
    from trainer.loop import run_settings, training_tasks

    path = out / "offline" / "variants.jsonl"
    if path.exists():
        return read_tasks(path)
    settings = run_settings(cfg, Settings())  # the run's [pool] (P_max) over the environment's
    seeds = training_tasks(cfg)
    backend = make_backend(settings)  # the synthesizer the workers of the other arms use
    variants: list[Any] = []
    with _progress() as bar:
        job = bar.add_task("offline pool: synthesizing", total=len(seeds))
        for i, seed in enumerate(seeds):
            result = synthesize(seed, n_variants=exp.experiment.offline_variants, backend=backend, rng_seed=i)
            variants += result.tasks
            bar.advance(job)
    variants = variants[: settings.p_max]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tasks(path, variants)
    console.print(f"offline pool: {len(variants)} variants of {len(seeds)} seeds → {path}")
    return variants


def load_offline_pool(settings: Any, cfg: Any, variants: list[Any]) -> None:
    """Seeds and the offline variants, all active from step 0 (the fixed pool)."""
    from rods.pool import TaskRecord
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from rods.store.contract import with_buffer_block
    from trainer.loop import run_settings, training_tasks

    settings = run_settings(cfg, settings)  # the rules the trainer will use on this buffer
    buffer = RedisBuffer(connect(settings), settings.run, settings.pool_rules())
    if buffer.counts().get("active", 0):
        return  # resumed: the pool is already there
    buffer.load_seeds(training_tasks(cfg))
    records = [
        with_buffer_block(t, TaskRecord(task_id=t.id, category=t.category, origin="synthetic",
                                        generation=t.rods.generation if t.rods else 1, state="active"))
        for t in variants
    ]  # fmt: skip
    buffer.import_tasks(records)


SEEDS_PROTOCOL = "train"  # the run's own training seeds are scored with the training loop's rules


def evaluate_checkpoints(run_dir: Path, cfg: Any, protocols: list[str], limit: int | None) -> list[dict[str, Any]]:
    """Held-out evaluation of every checkpoint of `run_dir`, and the final checkpoint on the run's
    own training seeds (what the arm reached where it trained), nothing twice: evals.json."""
    per_step = cfg.rollout.tasks_per_step * cfg.rollout.group_size
    ckpts = sorted((run_dir / "checkpoints").glob("step_*"), key=lambda c: int(c.name.split("_")[1]))
    jobs = [(c, p, "heldout") for c in ckpts for p in protocols] + [(c, SEEDS_PROTOCOL, "seeds") for c in ckpts[-1:]]
    return _run_evals(run_dir / "evals.json", cfg, limit, [
        (c, run_dir / "eval" / f"{c.name}-{p}{'-seeds' * (split == 'seeds')}", p, split,
         (step := int(c.name.split("_")[1])), step * per_step)
        for c, p, split in jobs
    ])  # fmt: skip


def evaluate_warm_start(out: Path, policy: str, cfg: Any, protocols: list[str], limit: int | None) -> None:
    """The shared warm start before any training, as every arm's checkpoints are evaluated:
    <out>/warmstart/evals.json (held-out with each protocol, and the training seeds)."""
    jobs = [(p, "heldout") for p in protocols] + [(SEEDS_PROTOCOL, "seeds")]
    _run_evals(out / "warmstart" / "evals.json", cfg, limit, [
        (Path(policy), out / "warmstart" / "eval" / f"{p}-{split}", p, split, 0, 0) for p, split in jobs
    ])  # fmt: skip


EvalJob = tuple[Path, Path, str, str, int, int]  # checkpoint, output dir, protocol, split, step, trajectories


def _run_evals(path: Path, cfg: Any, limit: int | None, jobs: list[EvalJob]) -> list[dict[str, Any]]:
    """Run the jobs whose (step, protocol, split) `path` does not hold yet (rows written before
    splits existed are held-out), appending each row to `path` as it finishes; all rows."""
    from trainer.evaluate import evaluate
    from trainer.loop import training_tasks

    done = json.loads(path.read_text()) if path.exists() else []
    have = {(e["step"], e["protocol"], e.get("split", "heldout")) for e in done}
    todo = [j for j in jobs if (j[4], j[2], j[3]) not in have]
    if not todo:
        return done
    tasks = {"heldout": heldout_tasks(cfg), "seeds": training_tasks(cfg)}  # read once, only when needed
    for ckpt, out_dir, protocol, split, step, trajectories in todo:
        rep = evaluate(str(ckpt), out_dir, tasks=tasks[split], limit=limit if split == "heldout" else None,
                       rollout_overrides=cfg.rollout.model_dump(), protocol=protocol, device=cfg.policy.device)  # fmt: skip
        done.append(_eval_row(rep, step, trajectories, protocol) | {"split": split})
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(done, indent=1))
    return done


def _eval_row(rep: Any, step: int, trajectories: int, protocol: str) -> dict[str, Any]:
    table = rep.table()
    row: dict[str, Any] = {"step": step, "trajectories": trajectories, "protocol": protocol}
    for col, cell in table.items():
        row[col] = {"progress": cell.get("progress"), "accuracy": cell.get("accuracy"), "n": cell.get("n")}
    return row


def _progress() -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)  # fmt: skip


# ---------------------------------------------------------------- the command


def run_experiment(config: Path, out: Path, arms: list[str] | None, seeds: list[int] | None,
                   steps: int | None, eval_limit: int | None = None,
                   allow_config_change: bool = False) -> Path:  # fmt: skip
    exp, cfg = load_experiment(config)  # checked before torch is imported: a mistake is said at once
    from cli.demo import Supervisor, _rods, export_run
    from rods.config import Settings
    from rods.store.connection import connect
    from rods.store.server import RedisServer
    from trainer.loop import train

    if eval_limit is not None:
        exp.experiment.eval_limit = eval_limit
    arms = arms or exp.experiment.arms
    seeds = seeds if seeds is not None else exp.experiment.seeds
    steps = steps or cfg.loop.steps
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    per_step = cfg.rollout.tasks_per_step * cfg.rollout.group_size
    plan = {"config": str(config), "arms": arms, "seeds": seeds, "steps": steps,
            "trajectories_per_step": per_step, "protocols": exp.experiment.protocols,
            "eval_limit": exp.experiment.eval_limit}  # fmt: skip
    atomic_write_text(out / "experiment-plan.json", json.dumps(plan, indent=1))
    best = warm_start(out, exp, cfg)
    _check_resumes(out, cfg, arms, seeds, steps, exp.experiment.eval_points, best, allow_config_change)
    console.print("warm start: evaluating it (held-out and training seeds; cached)")
    evaluate_warm_start(out, best, cfg, exp.experiment.protocols, exp.experiment.eval_limit or None)
    variants = offline_pool(out, exp, cfg) if "offline" in arms else []

    (out / "redis").mkdir(exist_ok=True)
    server = RedisServer(appendonly=True, directory=str(out / "redis")).start()
    env = {**os.environ, "REDIS_URL": server.url, "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    (out / "logs").mkdir(exist_ok=True)
    workers = Supervisor(out / "logs", env)
    # seed-major: an interrupted run still has every arm at the seeds it finished
    jobs = [(a, s) for s in seeds for a in arms]
    t0 = time.monotonic()
    try:
        if SYNTH_ARMS & set(arms):
            for k in range(exp.experiment.workers):
                workers.start(f"worker{k}", _rods("worker", "--concurrency", "1", "--loglevel", "warning"))
        for i, (arm, seed) in enumerate(jobs):
            run_dir = out / arm / f"seed{seed}"
            arm_cfg = _arm_cfg(cfg, arm, seed, steps, exp.experiment.eval_points, best)
            if (run_dir / "done.json").exists():
                console.print(f"[{i + 1}/{len(jobs)}] {arm} seed {seed}: done, skipped")
                # evaluations added since it finished (nothing is evaluated twice)
                evaluate_checkpoints(run_dir, arm_cfg, exp.experiment.protocols, exp.experiment.eval_limit or None)
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            run = f"exp-{arm}-s{seed}"
            settings = Settings(redis_url=server.url, run=run)
            if arm == "offline":
                load_offline_pool(settings, arm_cfg, variants)
            dispatcher = Supervisor(out / "logs", {**env, "RODS_RUN": run})
            if arm in SYNTH_ARMS:
                dispatcher.start(f"dispatcher-{run}", _rods("dispatcher", "--run", run))
            t_arm = time.monotonic()
            try:
                with _progress() as bar:
                    job = bar.add_task(f"[{i + 1}/{len(jobs)}] {arm} seed {seed}: training", total=steps)

                    def on_step(done: int, m: dict[str, Any], bar: Any = bar, job: Any = job) -> None:
                        workers.check()
                        bar.update(job, completed=done)

                    result = train(arm_cfg, run_dir, settings=settings, on_step=on_step,
                                   allow_config_change=allow_config_change)
                if result.config_note:
                    console.print(f"{arm} seed {seed}: {result.config_note}", markup=False, highlight=False)
                train_s = time.monotonic() - t_arm
                export_run(connect(settings), run, run_dir)
                _pool_json(settings, run_dir)
            finally:
                dispatcher.stop_all()
            console.print(f"[{i + 1}/{len(jobs)}] {arm} seed {seed}: evaluating held-out checkpoints")
            evaluate_checkpoints(run_dir, arm_cfg, exp.experiment.protocols, exp.experiment.eval_limit or None)
            atomic_write_text(run_dir / "done.json", json.dumps(
                {"train_s": train_s, "total_s": time.monotonic() - t_arm}))  # fmt: skip
            left = len(jobs) - i - 1
            spent = time.monotonic() - t0
            console.print(f"[{i + 1}/{len(jobs)}] {arm} seed {seed}: {time.monotonic() - t_arm:.0f}s; "
                          f"about {spent / (i + 1) * left / 60:.0f} min left")  # fmt: skip
    finally:
        workers.stop_all()
        server.stop()
    from report.experiment import write_experiment_report

    page = write_experiment_report(out)
    console.print(f"[green]experiment written[/]: {page}")
    return page


def _arm_cfg(cfg: Any, arm: str, seed: int, steps: int, eval_points: int, best: Path) -> Any:
    arm_cfg = arm_config(cfg, arm, seed, steps, eval_points)
    return arm_cfg.model_copy(update={"policy": arm_cfg.policy.model_copy(update={"init_from": best})})


def _check_resumes(out: Path, cfg: Any, arms: list[str], seeds: list[int], steps: int,
                   eval_points: int, best: Path, allow_config_change: bool) -> None:
    """Before any arm trains: an unfinished arm whose recorded config differs from this run's is
    refused (`ConfigChanged`, fields named) unless `allow_config_change`, so a changed experiment
    file never silently mixes two settings in one arm; an arm in use elsewhere is `RunDirBusy`."""
    from rods.rundir import precheck_resume

    for seed in seeds:
        for arm in arms:
            run_dir = out / arm / f"seed{seed}"
            if run_dir.is_dir() and not (run_dir / "done.json").exists():
                arm_cfg = _arm_cfg(cfg, arm, seed, steps, eval_points, best)
                precheck_resume(run_dir, arm_cfg.model_dump_json(indent=2), allow_config_change)


def _pool_json(settings: Any, run_dir: Path) -> None:
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect

    counts = RedisBuffer(connect(settings), settings.run).counts()
    atomic_write_text(run_dir / "pool.json", json.dumps(counts))


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be integers separated by commas, e.g. 0,1,2") from None


def experiment(
    config: Annotated[Path, typer.Option("--config", help="experiment TOML (configs/experiment-cpu.toml)")],
    out: Annotated[Path, typer.Option("--out", help="output directory (resumable)")] = Path("runs/exp"),
    arms: Annotated[str | None, typer.Option("--arms", help=f"comma-separated subset of {','.join(ARMS)}")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="comma-separated seeds, e.g. 0,1,2")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="override the budget (a quick look)")] = None,
    eval_limit: Annotated[int | None, typer.Option("--eval-limit", min=0, help="held-out tasks per category (0: all)")] = None,
    allow_config_change: Annotated[bool, typer.Option("--allow-config-change", help="resume unfinished arms with a config that differs from their config.json (the old one is kept under configs/)")] = False,
) -> None:
    """Run every arm × seed from one shared warm start; write experiment.html and .json.

    Resumable: finished arms are skipped, unfinished ones resume from their last checkpoint; an
    unfinished arm recorded with another config is refused (fields named) before any arm trains,
    unless --allow-config-change."""
    from rods.rundir import ConfigChanged, RunDirBusy
    from trainer.config import ConfigError

    arm_list = [a.strip() for a in arms.split(",")] if arms else None
    if arm_list and (bad := [a for a in arm_list if a not in ARMS]):
        raise typer.BadParameter(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
    try:
        run_experiment(config, out, arm_list, _int_list(seeds, "--seeds"), steps, eval_limit, allow_config_change)
    except (ConfigError, ConfigChanged, RunDirBusy) as e:
        from cli.errors import fail

        raise fail(str(e)) from None  # one line, no markup: a message names [sections]
