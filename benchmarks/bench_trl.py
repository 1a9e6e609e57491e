"""RODS inside TRL on CPU: a TRL step vs a native step, and RODS's overhead inside TRL.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trl.py --model runs/demo-sft/sft/best [--steps 3]

Same model, same batches, same sampling seeds. The TRL trainer (`build_trainer`, one process, a
private Redis with the demo seeds) decides each step's batch in Redis (`trainer.trl.dataset`);
after each TRL step, the native loop's pieces (`make_engine` rollouts + `grpo_update`) train a
fresh copy of the same model one step on that same batch with the same per-step sampling
generator, so the first step's completions are identical (later ones differ as the two updates
differ slightly). Interleaving the two keeps the shared machine's load drift out of the ratio. Both run with the same torch thread count (`--threads`, default 1: on this
shared 2-core machine two threads measured ~10× slower than one under load).

Where the time goes: TRL's step is split by timers around its own methods — our rollout_func,
the reward function (R_P + gather + report + detect + publish + epoch end: `time/rods`, plus the
dataset's Redis reads `time/sample`), the rest of `_prepare_inputs` (padding, reference log-probs,
advantages, logging), `compute_loss` (the forward passes), the rest of `training_step` (backward)
and the remainder (optimizer, grad clip, dataloader, callbacks). The native step: rollout and `grpo_update` (reference + forward + backward + optimizer).

Without `--model`, a quick warm start (70 SFT steps on the first turn of one demo task, as in
tests/integration/test_trl.py) stands in for the demo's warm start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rods.config import Settings
from rods.store.buffer import RedisBuffer
from rods.store.connection import connect
from rods.store.server import RedisServer
from trainer.config import load_config
from trainer.grpo import GRPOLossConfig
from trainer.loop import training_tasks
from trainer.policy import load_policy
from trainer.rollout import make_engine
from trainer.trl.dataset import StepBatches
from trainer.trl.loop import build_trainer
from trainer.trl.rollout import step_generator
from trainer.update import grpo_update


def quick_warm_start(out: Path) -> Path:
    from rods.tasks import load_split
    from trainer.chat import demo_subset
    from trainer.policy import build_tiny_policy, save_policy
    from trainer.sft import sft_batch, sft_examples, sft_loss

    torch.manual_seed(0)
    corpus = demo_subset(load_split("train"))[:8]  # tests/unit/tiny_lm.py small_policy's corpus
    model, tok = load_policy(build_tiny_policy(out / "tiny", seed=0, tasks=corpus))
    ex = sft_examples([t for t in corpus if t.id == "multi_turn_base_12"], tok)[0]
    ends = [i for i in range(1, len(ex.loss_mask)) if ex.loss_mask[i - 1] == 1 and ex.loss_mask[i] == 0]
    ids, att, labels = sft_batch([type(ex)(ex.token_ids[: ends[2]], ex.loss_mask[: ends[2]])], tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(70):
        loss = sft_loss(model, ids, att, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_policy(model.eval(), tok, out / "warm")


def timed(obj: Any, name: str, sink: dict[str, float]) -> None:
    """Wrap obj.name so each call adds its wall time to sink[name]."""
    inner = getattr(obj, name)

    def wrapper(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*a, **kw)
        finally:
            sink[name] = sink.get(name, 0.0) + time.perf_counter() - t0

    setattr(obj, name, wrapper)


class Native:
    """The native loop's pieces on a fresh copy of the model: one step per call, on a given batch."""

    def __init__(self, cfg: Any, model_dir: str, buffer: RedisBuffer):
        self.cfg, self.buffer = cfg, buffer
        self.model, self.tok = load_policy(model_dir)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas,
                                           weight_decay=cfg.optim.weight_decay)
        self.engine = make_engine(cfg.rollout, self.model, self.tok)
        self.ref_model = None
        if cfg.optim.kl_coef > 0:
            self.ref_model, _ = load_policy(model_dir)
            self.ref_model.eval().requires_grad_(False)
        self.loss_cfg = GRPOLossConfig(cfg.optim.clip_low, cfg.optim.clip_high, cfg.optim.kl_coef)

    def step(self, step: int, task_ids: list[str]) -> dict[str, float]:
        cfg = self.cfg
        self.engine.generator = step_generator(cfg.policy.seed, step, 0, torch.device("cpu"))
        t0 = time.perf_counter()
        groups = self.engine.rollout(self.buffer.get_tasks(task_ids), cfg.rollout.group_size)
        t1 = time.perf_counter()
        grpo_update(self.model, self.optimizer, groups, loss_cfg=self.loss_cfg, micro_batch=cfg.optim.micro_batch,
                    grad_clip=cfg.optim.grad_clip, pad_id=self.tok.pad_token_id, device=torch.device("cpu"),
                    ref_model=self.ref_model)
        t2 = time.perf_counter()
        return {"step_s": t2 - t0, "rollout_s": t1 - t0, "update_s": t2 - t1}


def run_both(cfg: Any, settings: Settings, work: Path, model_dir: str, buffer: RedisBuffer, r: Any) -> tuple[list, list]:
    """TRL steps, each followed by the native step on the same batch (interleaved: the shared
    machine's load drifts over minutes, and alternating keeps the drift out of the ratio)."""
    from transformers import TrainerCallback

    trainer, reward, writer, _ = build_trainer(cfg, work / "trl", settings=settings)
    native = Native(cfg, model_dir, buffer)
    batches = StepBatches(r, buffer, settings.run, cfg.rollout.tasks_per_step, cfg.policy.seed)
    parts: dict[str, float] = {}
    for name in ("_prepare_inputs", "compute_loss", "training_step"):
        timed(trainer, name, parts)
    trl_rows: list[dict[str, float]] = []
    native_rows: list[dict[str, float]] = []

    class Interleave(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001, ANN201
            if not logs or "loss" not in logs:
                return
            m = writer.last  # this step's metrics (the writer's on_log ran first)
            reward_s = m["time/rods"] - m.get("time/sample", 0.0)
            row = {"step_s": m["time/step"], "rollout_s": m["time/rollout"], "rods_s": m["time/rods"],
                   "sample_s": m.get("time/sample", 0.0), "detector_s": m.get("time/detector", 0.0),
                   "score_other_s": parts["_prepare_inputs"] - m["time/rollout"] - reward_s,
                   "loss_forward_s": parts["compute_loss"],
                   "backward_s": parts["training_step"] - parts["_prepare_inputs"] - parts["compute_loss"]}
            row["optim_other_s"] = row["step_s"] - parts["training_step"]
            parts.clear()
            trl_rows.append(row)
            step = state.global_step - 1
            native_rows.append(native.step(step, batches.ids(step)))

    trainer.add_callback(Interleave())
    trainer.train()
    writer.close()
    return trl_rows, native_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a warm-started policy dir (rods sft); default: a quick warm start")
    ap.add_argument("--config", default="configs/demo.toml")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kl", type=float, help="override optim.kl_coef (0.01: both trainers do the full update "
                    "with a reference model; with 0 the native update skips zero-advantage rollouts)")
    ap.add_argument("--out", default="benchmarks/results/trl.md")
    args = ap.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-trl-"))
    model_dir = args.model or str(quick_warm_start(work))
    base = load_config(args.config)
    cfg = base.model_copy(update={
        "policy": base.policy.model_copy(update={"init_from": model_dir, "device": "cpu"}),
        "loop": base.loop.model_copy(update={"steps": args.steps, "checkpoint_every": 10_000, "run": "bench"}),
        "optim": base.optim.model_copy(update={"kl_coef": base.optim.kl_coef if args.kl is None else args.kl}),
    })
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, run="bench")
        r = connect(settings)
        buffer = RedisBuffer(r, "bench", settings.pool_rules())
        buffer.load_seeds(training_tasks(cfg))
        trl_rows, native_rows = run_both(cfg, settings, work, model_dir, buffer, r)
        r.close()

    for x in trl_rows:
        x["update_s"] = x["score_other_s"] + x["loss_forward_s"] + x["backward_s"] + x["optim_other_s"]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in rows)

    ratio = statistics.median(t["step_s"] / n["step_s"] for t, n in zip(trl_rows, native_rows, strict=True))
    first = trl_rows[0]["step_s"] / native_rows[0]["step_s"]
    overhead = statistics.median(x["rods_s"] / x["step_s"] for x in trl_rows)
    load = os.getloadavg()[0]
    text = f"""## RODS inside TRL (CPU, {args.config})

Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_trl.py {'--model ' + args.model + ' ' if args.model else ''}--steps {args.steps} --threads {args.threads}{'' if args.kl is None else f' --kl {args.kl}'}`
Machine: nproc {os.cpu_count()}, Python {platform.python_version()}, torch {torch.__version__}; 1-min load {load:.2f}
Batch: {cfg.rollout.tasks_per_step} tasks × G = {cfg.rollout.group_size}, micro-batch {cfg.optim.micro_batch}, KL {cfg.optim.kl_coef}, fp32, {args.threads} torch thread(s); model: {args.model or 'quick warm start'}.

| figure | result | target |
|---|---|---|
| TRL step / native step, same batches and model (median over {args.steps} steps; step 1, identical completions: {first:.3f}) | **{ratio:.3f}** | |
| RODS overhead inside TRL: (report + detect + publish + epoch end + gather + dataset reads) / TRL step, median | **{100 * overhead:.2f} %** ({1000 * med(trl_rows, 'rods_s'):.1f} ms of {med(trl_rows, 'step_s'):.1f} s; dataset reads {1000 * med(trl_rows, 'sample_s'):.1f} ms, report + detect + publish {1000 * med(trl_rows, 'detector_s'):.1f} ms) | ≤ 2 % |

Where the time goes (median seconds per step):

| part | TRL | native |
|---|---|---|
| rollout (the same hf engine) | {med(trl_rows, 'rollout_s'):.2f} | {med(native_rows, 'rollout_s'):.2f} |
| RODS work (reward function + dataset) | {med(trl_rows, 'rods_s'):.3f} | (in the native loop's after-step, not timed here) |
| TRL scoring besides rollout and reward (padding, reference log-probs when KL > 0, advantages, logging) | {med(trl_rows, 'score_other_s'):.2f} | — |
| forward passes for the loss (TRL `compute_loss`) | {med(trl_rows, 'loss_forward_s'):.2f} | — |
| backward (TRL) | {med(trl_rows, 'backward_s'):.2f} | — |
| optimizer, grad clip, dataloader, callbacks, logging (TRL) | {med(trl_rows, 'optim_other_s'):.2f} | — |
| update without the rollout (TRL: the four rows above; native: `grpo_update`, reference + forward + backward + optimizer) | {med(trl_rows, 'update_s'):.2f} | {med(native_rows, 'update_s'):.2f} |
| step | {med(trl_rows, 'step_s'):.2f} | {med(native_rows, 'step_s'):.2f} |

TRL per step: {json.dumps([{k: round(v, 4) for k, v in x.items()} for x in trl_rows])}
Native per step: {json.dumps([{k: round(v, 4) for k, v in x.items()} for x in native_rows])}
"""
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
