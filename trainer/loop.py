"""The GRPO training loop, one readable function: `train(cfg, run_dir)`.

    for step in steps:
        tasks_B   = source.sample(step)                  # the run's replay buffer, seeded draw
        groups_BG = engine.rollout(tasks_B, G)           # multi-turn rollouts, R_P per trajectory
        update    = grpo_update(model, groups_BG)        # group advantages, clipped loss
        detector  = source.after_step(step, groups_BG)   # report stats; publish (by mode)
        epoch end → source.end_epoch(step)               # retire, promote staged tasks
        metrics → metrics.jsonl (+ TensorBoard); checkpoint every K steps

The mode only changes what the source publishes (rods: boundary requests; uniform: as many
requests for random batch tasks; static: none); every mode needs the run's Redis. A run
directory holds `config.json`, `metrics.jsonl`, `checkpoints/`; starting `train` again on the
same directory resumes from the last checkpoint, epoch position included.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rods.config import Settings
from rods.tasks import Task, load_split
from trainer.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint, set_rng_state
from trainer.config import TrainConfig
from trainer.grpo import GRPOLossConfig
from trainer.metrics import MetricsLog, rollout_metrics
from trainer.sources import PUBLISH_OF_MODE, BufferSource
from trainer.update import grpo_update


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int
    resumed_from: int
    last_metrics: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("policy.device = 'cuda' but no CUDA device is available")
    return torch.device(name)


def training_tasks(cfg: TrainConfig) -> list[Task]:
    """The seed pool of a run: the training split, narrowed by the configured subset."""
    from trainer.sft import demo_subset

    tasks = load_split("train", cfg.tasks.categories)
    return demo_subset(tasks) if cfg.tasks.subset == "demo" else tasks


def _policy_source(cfg: TrainConfig, run_dir: Path) -> str:
    if cfg.policy.init_from:
        return cfg.policy.init_from
    if cfg.policy.model == "tiny":
        from trainer.policy import build_tiny_policy

        return str(build_tiny_policy(run_dir / "policy-init", seed=cfg.policy.seed))
    from trainer.models import resolve_source  # a packaged name: its directory, pulled on first use

    return resolve_source(cfg.policy.model)


def run_settings(cfg: TrainConfig, settings: Settings) -> Settings:
    """The process settings with this run's `[pool]` overrides applied."""
    overrides = cfg.pool.overrides()
    return settings.model_copy(update=overrides) if overrides else settings


def make_source(
    cfg: TrainConfig, run_dir: Path, settings: Settings, seeds: list[Task]
) -> BufferSource:
    """The run's buffer (seeds loaded once) behind the one task source; the mode decides only
    what is published (`trainer.sources.PUBLISH_OF_MODE`)."""
    from rods.signature import compute_signature
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from rods.store.stream import BoundaryStream

    settings = run_settings(cfg, settings)
    run = cfg.loop.run or settings.run  # RODS_RUN: the name the dispatcher and workers use too
    r = connect(settings)
    buffer = RedisBuffer(r, run, settings.pool_rules())
    if buffer.counts().get("active", 0) == 0:
        buffer.load_seeds(seeds)
    rules = settings.detector_rules()
    if cfg.loop.request_budget is not None:
        rules = rules.model_copy(update={"budget": cfg.loop.request_budget})
    publish = PUBLISH_OF_MODE[cfg.loop.mode]
    signatures = {t.id: compute_signature(t) for t in seeds} if publish != "none" else {}
    return BufferSource(buffer, BoundaryStream(r, run, settings), cfg.rollout.tasks_per_step,
                        cfg.policy.seed, rules, cfg.loop.steps_per_epoch, signatures, publish)


def train(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    settings: Settings | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Run (or resume) GRPO training in `run_dir`. `on_step(step, metrics)` drives a progress bar."""
    from trainer.policy import load_policy
    from trainer.rollout import make_engine

    settings = settings or Settings()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    torch.manual_seed(cfg.policy.seed)
    device = resolve_device(cfg.policy.device)

    resume = latest_checkpoint(run_dir)
    model, tokenizer = load_policy(str(resume) if resume else _policy_source(cfg, run_dir), device=device)
    ref_model = None
    if cfg.optim.kl_coef > 0:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        if resume:  # the reference is the policy the run started from, not the checkpoint
            ref_model, _ = load_policy(_policy_source(cfg, run_dir), device=device)
            ref_model.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay
    )
    start = 0
    seeds = training_tasks(cfg)
    source = make_source(cfg, run_dir, settings, seeds)
    if resume:
        state = load_trainer_state(resume)
        optimizer.load_state_dict(state.optimizer)
        set_rng_state(state.rng)
        start = state.step
        source.restore(state.extra.get("source", {}))
    engine = make_engine(cfg.rollout, model, tokenizer, device=device, env_hints=cfg.env.hints)
    loss_cfg = GRPOLossConfig.from_config(cfg.optim)
    log = MetricsLog(run_dir, resume_step=start)
    metrics: dict[str, Any] = {}
    try:
        for step in range(start, cfg.loop.steps):
            t_step = time.perf_counter()
            tasks_B = source.sample(step)
            t0 = time.perf_counter()
            model.eval()
            groups_B_G = engine.rollout(tasks_B, cfg.rollout.group_size)
            metrics = {"time/rollout": time.perf_counter() - t0, **rollout_metrics(groups_B_G)}
            metrics.update(
                grpo_update(
                    model, optimizer, groups_B_G, loss_cfg=loss_cfg, micro_batch=cfg.optim.micro_batch,
                    grad_clip=cfg.optim.grad_clip, pad_id=tokenizer.pad_token_id, device=device,
                    bf16=cfg.policy.bf16, ppo_epochs=cfg.optim.ppo_epochs, ref_model=ref_model,
                )
            )
            engine.sync_weights(model)
            metrics.update(source.after_step(step, groups_B_G))
            if source.is_epoch_end(step):
                metrics.update(source.end_epoch(step))
            metrics.update(source.pool_metrics())
            metrics["time/step"] = time.perf_counter() - t_step
            done = step + 1
            log.write(done, metrics)
            if done % cfg.loop.checkpoint_every == 0 or done == cfg.loop.steps:
                save_checkpoint(run_dir, done, model, tokenizer, optimizer,
                                extra={"mode": cfg.loop.mode, "source": source.state()}, keep=cfg.loop.keep_checkpoints)
            if on_step:
                on_step(done, metrics)
    finally:
        log.close()
    (run_dir / "summary.json").write_text(json.dumps({"steps": cfg.loop.steps, "last": metrics}, indent=2, default=str))
    return TrainResult(run_dir, cfg.loop.steps, start, metrics)
