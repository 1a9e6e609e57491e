"""`train_trl(cfg, run_dir)`: the RODS loop inside TRL's `GRPOTrainer` (`rods train --trainer trl`).

    dataset     = buffer_dataset(StepBatches)      # the same B task ids for step k in every process
    rollout     = RolloutFunc(...)                 # multi-turn episodes → prompt/completion/env_mask
    reward      = ProgressReward(BufferSource)     # R_P; gather, check groups, report, detect,
                                                   # publish, epoch end (main process)
    GRPOTrainer(model, reward, args, dataset, rollout_func=rollout).train()
    MetricsWriter → metrics.jsonl in the native names (main process)

One process (`rods train --trainer trl`) or several (`accelerate launch … -m cli train --trainer
trl`, `torchrun … -m cli train --trainer trl`): TRL shards each global batch of B·G rows over
the processes. The run's own config maps onto TRL's (`grpo_args`); one generation per optimiser
step (`steps_per_generation` = gradient accumulation), per-device batch = `optim.micro_batch`.
`rollout.engine = "vllm"` generates through TRL's vLLM server (`trl vllm-serve`, TRL's default
address `0.0.0.0:8000`), `"hf"` with our engine over the trainer's model.

The run directory: `config.json`, `metrics.jsonl` (what `rods report` reads, as for the native
trainer), `checkpoints/checkpoint-N` (TRL/transformers layout, plus `rods_state.json`: the
epoch position); starting again on the same directory resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rods.config import Settings
from rods.fileio import atomic_write_text
from rods.rundir import RunLock, record_config
from trainer.config import ConfigError, TrainConfig
from trainer.metrics import MetricsLog
from trainer.trl.dataset import StepBatches, buffer_dataset
from trainer.trl.reward import ProgressReward
from trainer.trl.rollout import RolloutFunc
from trainer.types import RolloutSettings

STATE_FILE = "rods_state.json"  # the epoch position, saved inside each TRL checkpoint
# TRL's log keys → the native trainer's metric names (the others are kept as trl/<key>)
TRL_NAMES = {
    "loss": "loss/total",
    "kl": "loss/kl",
    "entropy": "update/entropy",
    "grad_norm": "update/grad_norm",
    "clip_ratio/region_mean": "loss/clip_frac",
    "learning_rate": "optim/lr",
}


def grpo_args(cfg: TrainConfig, run_dir: Path, world: int, use_cpu: bool, **overrides: Any) -> Any:
    """TRL's `GRPOConfig` for the run's config on `world` processes (ConfigError if it cannot split)."""
    from trl import GRPOConfig

    B, G, micro = cfg.rollout.tasks_per_step, cfg.rollout.group_size, cfg.optim.micro_batch
    if (B * G) % world:
        raise ConfigError(f"B·G = {B}·{G} rollouts per step do not split over {world} processes")
    per_process = B * G // world
    if per_process % micro:
        raise ConfigError(f"optim.micro_batch = {micro} must divide the {per_process} rollouts per process")
    if cfg.optim.ppo_epochs != 1:  # TRL counts each pass as a step; the batch-per-step contract would break
        raise ConfigError("--trainer trl needs optim.ppo_epochs = 1 (one update per generated batch)")
    values: dict[str, Any] = dict(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=cfg.loop.steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=per_process // micro,
        num_generations=G,
        max_completion_length=cfg.rollout.max_total_tokens,
        temperature=cfg.rollout.temperature,
        top_p=cfg.rollout.top_p,
        learning_rate=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        adam_beta1=cfg.optim.betas[0],
        adam_beta2=cfg.optim.betas[1],
        max_grad_norm=cfg.optim.grad_clip,
        lr_scheduler_type="constant",
        beta=cfg.optim.kl_coef,
        epsilon=cfg.optim.clip_low,
        epsilon_high=cfg.optim.clip_high,
        num_iterations=1,
        loss_type="dapo",  # token mean over the whole update, as trainer/grpo.py
        scale_rewards="group",
        shuffle_dataset=False,  # the batch of a step is decided in Redis; never reorder it
        seed=cfg.policy.seed,
        bf16=cfg.policy.bf16,
        use_cpu=use_cpu,
        use_vllm=cfg.rollout.engine == "vllm",
        vllm_mode="server",
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.loop.checkpoint_every,
        save_total_limit=cfg.loop.keep_checkpoints,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        model_init_kwargs={"dtype": "float32"},  # master weights; bf16 is autocast (or DeepSpeed's)
    )
    values.update(overrides)
    return GRPOConfig(**values)


def _metrics_callback(reward: ProgressReward, log: MetricsLog | None, source: Any,
                      on_step: Callable[[int, dict[str, Any]], None] | None) -> Any:
    from transformers import TrainerCallback

    class MetricsWriter(TrainerCallback):
        """Main process: one metrics.jsonl line per step; the epoch position in each checkpoint."""

        t_step = 0.0
        step_seconds = float("nan")
        last: dict[str, Any] = {}

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            self.t_step = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            self.step_seconds = time.perf_counter() - self.t_step
            if state.global_step >= args.max_steps:
                control.should_save = True  # always a checkpoint at the end, as the native loop

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001, ANN201
            if log is None or not logs or "loss" not in logs:
                return
            done = state.global_step
            metrics: dict[str, Any] = reward.pending.pop(done - 1, {})
            for k, v in logs.items():
                metrics[TRL_NAMES.get(k, f"trl/{k}")] = v
            metrics["time/step"] = self.step_seconds
            metrics["time/update"] = self.step_seconds - metrics.get("time/rollout", 0.0) - metrics.get("time/rods", 0.0)
            log.write(done, metrics)
            self.last = metrics
            if on_step:
                on_step(done, metrics)

        def close(self) -> None:
            if log is not None:
                log.close()

        def on_save(self, args, state, control, **kw):  # noqa: ANN001, ANN201
            if source is None:
                return
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                atomic_write_text(ckpt / STATE_FILE, json.dumps(source.state()))

    return MetricsWriter()


def build_trainer(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    settings: Settings | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    extra_reward_funcs: Sequence[Callable[..., Any]] = (),
    allow_config_change: bool = False,
    **trl_overrides: Any,
) -> tuple[Any, ProgressReward, Any, Path | None]:
    """The configured `GRPOTrainer`, its reward, the metrics writer and the checkpoint to resume.

    `extra_reward_funcs` are added to R_P for the advantages only (tests use a small jitter);
    the buffer always gets R_P.
    """
    from accelerate import PartialState
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from trainer.loop import (
        _policy_source,
        make_source,
        resolve_device,
        run_settings,
        training_tasks,
    )

    settings = run_settings(cfg, settings or Settings())  # with the run's [pool] overrides
    device = resolve_device(cfg.policy.device)
    # TRL's config sets up the process group (gloo on CPU); the launchers export WORLD_SIZE
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device.type == "cpu" and world > 1 and os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        import torch

        if torch.cuda.is_available():  # accelerate would put rank k's barrier on cuda:k
            raise ConfigError(
                "policy.device is \"cpu\" but this host has CUDA devices: launch the processes with "
                "CUDA_VISIBLE_DEVICES= (empty) to train on CPU, or set policy.device = \"cuda\""
            )
    args = grpo_args(cfg, run_dir, world, use_cpu=device.type == "cpu", **trl_overrides)
    state = PartialState()
    if state.num_processes != world:
        raise RuntimeError(f"{state.num_processes} processes joined, WORLD_SIZE says {world}")
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = run_dir / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    resume = Path(last) if last else None
    run = cfg.loop.run or settings.run
    r = connect(settings)
    source, config_note = None, None
    batches = StepBatches(r, None, run, cfg.rollout.tasks_per_step, cfg.policy.seed)
    if state.is_main_process:
        done = int(resume.name.split("-")[-1]) if resume else 0
        config_note = record_config(run_dir, cfg.model_dump_json(indent=2), done, allow_config_change)
        source = make_source(cfg, run_dir, settings, training_tasks(cfg))  # loads the seeds if needed;
        # the mode (rods / uniform / static) decides only what it publishes
        if resume and (resume / STATE_FILE).exists():
            source.restore(json.loads((resume / STATE_FILE).read_text()))
        if resume is None:
            batches.clear()  # a fresh run decides its batches anew
        _policy_source(cfg, run_dir)  # builds the tiny model once, before the others read it
    state.wait_for_everyone()
    batches.buffer = source.buffer if source is not None else RedisBuffer(r, run, settings.pool_rules())
    # TRL loads the model from its path (fp32 master weights; under ZeRO-3 partitioned as it loads)
    src = _policy_source(cfg, run_dir)
    tokenizer = AutoTokenizer.from_pretrained(src)
    if tokenizer.pad_token_id is None:  # as trainer.policy.load_policy
        tokenizer.pad_token = tokenizer.eos_token
    rollout = RolloutFunc(
        batches.buffer, tokenizer, RolloutSettings.from_config(cfg.rollout), seed=cfg.policy.seed,
        refill_frac=cfg.rollout.refill_frac, use_server=cfg.rollout.engine == "vllm",
    )
    reward = ProgressReward(source, cfg.rollout.group_size, batches=batches, rollout=rollout)
    start = json.loads((resume / "trainer_state.json").read_text())["global_step"] if resume else 0
    log = MetricsLog(run_dir, resume_step=start) if state.is_main_process else None
    writer = _metrics_callback(reward, log, source, on_step)
    reward_funcs: list[Any] = [reward, *extra_reward_funcs]
    trainer = GRPOTrainer(
        model=src, reward_funcs=reward_funcs, args=args,
        train_dataset=buffer_dataset(batches), processing_class=tokenizer,
        rollout_func=rollout, callbacks=[writer],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # its log dicts would interleave with `rods train`'s bar
    writer.config_note = config_note if state.is_main_process else None
    return trainer, reward, writer, resume


def train_trl(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    settings: Settings | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    extra_reward_funcs: Sequence[Callable[..., Any]] = (),
    allow_config_change: bool = False,
    **trl_overrides: Any,
) -> Any:
    """Run (or resume) training in `run_dir`; returns the native loop's `TrainResult`.

    The main process holds the run directory's lock (`rods.rundir.RunLock`) throughout, and a
    resume with another config is refused unless `allow_config_change`, as in the native loop."""
    if os.environ.get("RANK", "0") != "0":  # the launcher's other processes: the main one holds the lock
        return _train_trl(cfg, run_dir, settings, on_step, extra_reward_funcs, allow_config_change, trl_overrides)
    with RunLock(run_dir):
        return _train_trl(cfg, run_dir, settings, on_step, extra_reward_funcs, allow_config_change, trl_overrides)


def _train_trl(cfg: TrainConfig, run_dir: Path, settings: Settings | None,
               on_step: Callable[[int, dict[str, Any]], None] | None,
               extra_reward_funcs: Sequence[Callable[..., Any]], allow_config_change: bool,
               trl_overrides: dict[str, Any]) -> Any:
    from trainer.loop import TrainResult

    trainer, reward, writer, resume = build_trainer(
        cfg, run_dir, settings=settings, on_step=on_step, extra_reward_funcs=extra_reward_funcs,
        allow_config_change=allow_config_change, **trl_overrides,
    )
    start = trainer.state.global_step
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        writer.close()
    if trainer.accelerator.is_main_process:
        summary = {"steps": cfg.loop.steps, "trainer": "trl", "last": writer.last}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    resumed = int(resume.name.split("-")[-1]) if resume else start
    return TrainResult(run_dir, cfg.loop.steps, resumed, writer.last, steps_run=cfg.loop.steps - resumed,
                       config_note=writer.config_note)
