"""RODS inside TRL's GRPOTrainer on CPU: a tiny warm-started model, real Redis, real optimizer steps.

- one process: 4 steps, B = 2, G = 4, an epoch every 2 steps — the buffer gets 4 reports of 2
  groups × 4 rewards, a staged task is promoted and then sampled, boundary requests are
  published when the detector's rules fire, the weights change;
- two processes (`torchrun --nproc_per_node 2`, gloo), B = 3, G = 4, so a task's group is split
  across processes: every process trains on its slice of the same stored batch at every step,
  including the step where the promoted task first appears;
- the native rollout path and TRL's rollout_func + reward function, on the same seed and batch,
  produce the same completions and the same progress rewards.

Skipped only when the `trl` extra is not installed. The policy is the tiny model, warm-started
for a few seconds on the first turn of one task, so its rewards split (some 1/3, some 0) and the
detector has boundary groups to publish; a small deterministic reward jitter added for the
advantages only (the buffer always gets R_P) keeps every group's gradient non-zero.

Run as a script (`torchrun … tests/integration/test_trl.py ARGS.json`) it is the two-process
worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("trl", reason="the trl extra is not installed (pip install -e '.[trl]')")

from rods.config import Settings  # noqa: E402
from rods.rundir import ConfigChanged, RunDirBusy, RunLock  # noqa: E402
from rods.tasks import RodsMeta, Task, synthetic_id  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WARM_TASK = "multi_turn_base_12"  # its first turn is two short calls, learned in ~70 steps


def config(policy: Path, run: str, *, B: int, micro: int, steps: int, seed: int) -> TrainConfig:
    return TrainConfig.model_validate({
        "policy": {"init_from": str(policy), "device": "cpu", "seed": seed},
        "tasks": {"subset": "demo"},
        "rollout": {"group_size": 4, "tasks_per_step": B, "max_new_tokens": 40,
                    "max_total_tokens": 320, "compact_tools": True},
        "optim": {"lr": 1e-4, "kl_coef": 0.0, "micro_batch": micro},
        "loop": {"mode": "rods", "steps": steps, "checkpoint_every": 2, "steps_per_epoch": 2, "run": run},
    })


def variant_of(seed: Task) -> Task:
    """A synthetic child of `seed`: the same world and ground truth, a reworded last turn."""
    body = seed.to_bfcl()
    body["question"] = [*body["question"][:-1], [{"role": "user", "content": "And finally, wrap it up."}]]
    meta = RodsMeta(origin="synthetic", parent_id=seed.id, root_id=seed.id, generation=1)
    return Task.model_validate(body | {"id": synthetic_id(seed.category, body), "rods": meta})


def seed_sampling(ids: list[str], B: int, step: int, want: str) -> int:
    """A config seed whose draw at `step` (the buffer's: sorted ids, default_rng([seed, step])) has `want`."""
    pool = sorted(ids)
    for seed in range(100):
        idx = np.random.default_rng([seed, step]).choice(len(pool), size=min(B, len(pool)), replace=False)
        if want in {pool[i] for i in idx}:
            return seed
    raise AssertionError("no seed samples the task")


class Jitter:
    """A second reward (advantages only): small, deterministic in the completion's tokens.

    Records what each process trained on: (step, task ids of its rows, completion ids, process).
    """

    __name__ = "jitter"

    def __init__(self, out: Path | None = None):
        self.out = out
        self.rows: list[dict[str, Any]] = []

    def __call__(self, prompts, completions, completion_ids, task_id, rods_step, **kw):  # noqa: ANN001, ANN204
        from accelerate import PartialState

        row = {"process": PartialState().process_index, "step": int(rods_step[0]), "task_ids": list(task_id),
               "completion_ids": [list(c) for c in completion_ids]}
        self.rows.append(row)
        if self.out is not None:
            with (self.out / f"process-{row['process']}.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
        return [0.01 * (sum(c) % 89) / 89 for c in completion_ids]


@pytest.fixture(scope="module")
def warm_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after ~70 steps of SFT on the first turn of WARM_TASK (≈ 30 s on 1 core)."""
    from tests.unit.tiny_lm import demo_tasks, small_policy
    from trainer.policy import load_policy, save_policy
    from trainer.sft import sft_batch, sft_examples, sft_loss

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, tok = load_policy(small_policy(tmp_path_factory.mktemp("policy") / "tiny"))
    ex = sft_examples([t for t in demo_tasks(8) if t.id == WARM_TASK], tok)[0]
    ends = [i for i in range(1, len(ex.loss_mask)) if ex.loss_mask[i - 1] == 1 and ex.loss_mask[i] == 0]
    cut = ends[2]  # the first turn: two call messages and the closing answer
    ids, att, labels = sft_batch([type(ex)(ex.token_ids[:cut], ex.loss_mask[:cut])], tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(70):
        loss = sft_loss(model, ids, att, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.05
    return save_policy(model.eval(), tok, tmp_path_factory.mktemp("policy") / "warm")


def _demo(*ids: str) -> list[Task]:
    from tests.unit.tiny_lm import demo_tasks

    by_id = {t.id: t for t in demo_tasks(27)}
    return [by_id[i] for i in ids]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_one_process_reports_promotes_publishes_and_learns(tmp_path, warm_policy, redis_url, run_name, monkeypatch):
    from rods.boundary import BoundaryRequest
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from rods.store.keys import REQUEST_FIELD
    from trainer.trl.dataset import StepBatches
    from trainer.trl.loop import train_trl

    torch.set_num_threads(1)
    settings = Settings(redis_url=redis_url, run=run_name, connect_retries=8, beta=0.5)
    r = connect(settings)
    buffer = RedisBuffer(r, run_name, settings.pool_rules())
    warm, other = _demo(WARM_TASK, "multi_turn_base_37")
    staged = variant_of(warm)
    buffer.load_seeds([warm, other])
    assert buffer.add_staged([staged]).admitted == [staged.id]
    # the epoch end after step 1 promotes it; the batch of step 2 was drawn before (read ahead)
    seed = seed_sampling([warm.id, other.id, staged.id], 2, 3, staged.id)
    reports: list[tuple[int, list[tuple[str, int]]]] = []
    real_report = RedisBuffer.report

    def spy(self, groups, step):  # noqa: ANN001, ANN202
        reports.append((step, [(g.task_id, g.group_size) for g in groups]))
        return real_report(self, groups, step)

    monkeypatch.setattr(RedisBuffer, "report", spy)
    cfg = config(warm_policy, run_name, B=2, micro=4, steps=4, seed=seed)
    run_dir = tmp_path / "run"
    train_trl(cfg, run_dir, settings=settings, extra_reward_funcs=[Jitter()])

    assert [s for s, _ in reports] == [0, 1, 2, 3]
    assert all(len(groups) == 2 and all(n == 4 for _, n in groups) for _, groups in reports)
    batches = StepBatches(r, buffer, run_name, 2, seed).stored()
    assert all(staged.id not in batches[k] for k in (0, 1, 2))
    assert staged.id in batches[3] and staged.id in dict(reports[3][1])
    promoted = [e for e in buffer.events() if e.kind == "promote"]
    assert [(e.step, e.task_ids) for e in promoted] == [(1, [staged.id])]

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    for key in ("reward/mean", "boundary/frac_boundary", "buffer/active", "time/rollout", "time/step",
                "time/rods", "loss/total", "update/grad_norm"):
        assert all(key in m for m in metrics), key
    assert metrics[1]["buffer/promoted"] == 1.0 and metrics[1]["buffer/active"] == 3.0
    entries = r.xrange(f"rods:{run_name}:boundary")
    requests = [BoundaryRequest.model_validate_json(f[REQUEST_FIELD]) for _, f in entries]
    assert len(requests) == sum(m["boundary/requests"] for m in metrics) > 0
    assert all(q.task_id in batches[q.policy_step] and 0.2 <= q.reward_mean <= 0.85 for q in requests)

    before = _weights(warm_policy)
    after = _weights(run_dir / "checkpoints" / "checkpoint-4")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (run_dir / "checkpoints" / "checkpoint-4" / "rods_state.json").exists()
    r.close()


def test_native_and_trl_give_the_same_rewards_for_the_same_completions(tmp_path, warm_policy, redis_url,
                                                                        run_name):
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from trainer.policy import load_policy
    from trainer.rollout import HFRolloutEngine
    from trainer.trl.dataset import StepBatches
    from trainer.trl.loop import build_trainer
    from trainer.trl.rollout import step_generator, to_trl
    from trainer.types import RolloutSettings

    torch.set_num_threads(1)
    settings = Settings(redis_url=redis_url, run=run_name, connect_retries=8)
    r = connect(settings)
    buffer = RedisBuffer(r, run_name, settings.pool_rules())
    buffer.load_seeds(_demo(WARM_TASK, "multi_turn_base_37"))
    cfg = config(warm_policy, run_name, B=2, micro=8, steps=1, seed=3)
    jitter = Jitter()
    trainer, _, writer, _ = build_trainer(cfg, tmp_path / "run", settings=settings, extra_reward_funcs=[jitter])
    trainer.train()
    writer.close()
    trl_rewards = list(trainer._logs["rewards"]["progress"])
    trl_completions = jitter.rows[0]["completion_ids"]

    # the native rollout engine over the same model, batch and sampling seed
    batch = buffer.get_tasks(StepBatches(r, buffer, run_name, 2, 3).stored()[0])
    model, tok = load_policy(warm_policy)
    engine = HFRolloutEngine(model, tok, RolloutSettings.from_config(cfg.rollout), refill_frac=cfg.rollout.refill_frac)
    engine.generator = step_generator(3, 0, 0, torch.device("cpu"))
    flat = [t for g in engine.rollout(batch, 4) for t in g]
    assert to_trl(flat, engine.eos_id)["completion_ids"] == trl_completions
    assert [t.reward for t in flat] == pytest.approx(trl_rewards, nan_ok=True)
    assert len({round(x, 6) for x in trl_rewards}) > 1  # not a trivial all-equal comparison
    r.close()


def test_a_resumed_run_trains_the_batches_decided_before_the_crash(tmp_path, warm_policy, redis_url, run_name):
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from trainer.trl.dataset import StepBatches
    from trainer.trl.loop import train_trl

    torch.set_num_threads(1)
    settings = Settings(redis_url=redis_url, run=run_name, connect_retries=8)
    r = connect(settings)
    buffer = RedisBuffer(r, run_name, settings.pool_rules())
    buffer.load_seeds(_demo(WARM_TASK, "multi_turn_base_37", "multi_turn_base_4"))
    run_dir = tmp_path / "run"
    train_trl(config(warm_policy, run_name, B=2, micro=8, steps=2, seed=5), run_dir, settings=settings)
    decided = StepBatches(r, buffer, run_name, 2, 5).stored()
    assert sorted(decided) == [0, 1, 2]  # step 2 was read ahead before the run stopped
    jitter = Jitter()
    result = train_trl(config(warm_policy, run_name, B=2, micro=8, steps=3, seed=5), run_dir,
                       settings=settings, extra_reward_funcs=[jitter])
    assert result.resumed_from == 2
    assert [row["step"] for row in jitter.rows] == [2]
    assert jitter.rows[0]["task_ids"] == [t for t in decided[2] for _ in range(4)]
    assert {k: v for k, v in StepBatches(r, buffer, run_name, 2, 5).stored().items() if k < 3} == decided
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    recorded = (run_dir / "config.json").read_text()
    with pytest.raises(ConfigChanged, match=r"optim\.lr: 0\.0001 -> 0\.0002"):  # the record is never overwritten
        train_trl(config(warm_policy, run_name, B=2, micro=8, steps=4, seed=5).model_copy(
            update={"optim": cfg_optim(lr=2e-4)}), run_dir, settings=settings)
    assert (run_dir / "config.json").read_text() == recorded
    with RunLock(run_dir, "rods train (another one)"), pytest.raises(RunDirBusy, match="another one"):
        train_trl(config(warm_policy, run_name, B=2, micro=8, steps=4, seed=5), run_dir, settings=settings)
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    r.close()


def cfg_optim(**update: Any) -> Any:
    return TrainConfig.model_validate({"optim": {"lr": 1e-4, "kl_coef": 0.0, "micro_batch": 8}}).optim.model_copy(update=update)


def test_rods_train_trainer_trl_runs_one_process_and_writes_the_report(tmp_path, warm_policy, redis_url, run_name):
    cfg = config(warm_policy, run_name, B=2, micro=8, steps=1, seed=0)
    (tmp_path / "trl.toml").write_text(_toml(cfg.model_dump(exclude_none=True)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "REDIS_URL": redis_url, "TRL_EXPERIMENTAL_SILENCE": "1"}
    argv = [sys.executable, "-m", "cli", "train", "--trainer", "trl", "--config", str(tmp_path / "trl.toml"),
            "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "done:" in done.stdout and (tmp_path / "run" / "report.html").exists()
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["step"] == 1


def _cli_two_processes(tmp_path: Path, cfg: TrainConfig, redis_url: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m cli train --trainer trl`, as the README launches it (CPU)."""
    (tmp_path / "trl.toml").write_text(_toml(cfg.model_dump(exclude_none=True)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "REDIS_URL": redis_url, "TRL_EXPERIMENTAL_SILENCE": "1", "CUDA_VISIBLE_DEVICES": ""}
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
            "-m", "cli", "train", "--trainer", "trl", "--config", str(tmp_path / "trl.toml"),
            "--run-dir", str(tmp_path / "run")]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_rods_train_trainer_trl_under_torchrun_reports_once(tmp_path, redis_url, run_name):
    from tests.unit.tiny_lm import small_policy

    cfg = config(small_policy(tmp_path / "tiny"), run_name, B=3, micro=3, steps=1, seed=0)
    done = _cli_two_processes(tmp_path, cfg, redis_url)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stdout.count("done:") == 1 and (tmp_path / "run" / "report.html").exists()  # the main process's


def test_a_config_error_under_torchrun_is_one_line_from_the_main_process(tmp_path, redis_url, run_name):
    from tests.unit.tiny_lm import small_policy

    # a real model, so that the model-path check passes and the error is the launcher-time one
    cfg = config(small_policy(tmp_path / "tiny"), run_name, B=3, micro=4, steps=1, seed=0)  # 6 rollouts per process
    done = _cli_two_processes(tmp_path, cfg, redis_url)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert ours == ["error: optim.micro_batch = 4 must divide the 6 rollouts per process"], done.stderr[-3000:]


def _toml(d: dict[str, Any]) -> str:
    """The config sections as TOML (flat tables of scalars and lists)."""
    out = []
    for section, fields in d.items():
        out.append(f"[{section}]")
        out += [f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in fields.items()]
    return "\n".join(out) + "\n"


def test_a_group_of_two_tasks_is_refused():
    from rods.env.reward import Score
    from trainer.trl.dataset import pad_to
    from trainer.trl.reward import MixedGroupError, check_groups
    from trainer.types import Trajectory

    def row(task: str, step: int = 0) -> tuple[str, int, Trajectory]:
        score = Score(task, [False], 0.0, False)
        return task, step, Trajectory(task, [], [], [], 0.0, False, score, "completed", 0)

    assert [[t.task_id for t in g] for g in check_groups([row("a")] * 2 + [row("b")] * 2, 2)] == [["a"] * 2, ["b"] * 2]
    with pytest.raises(MixedGroupError, match="mixes"):  # what TRL alone would train on silently
        check_groups([row("a"), row("a"), row("b"), row("a")], 2)
    with pytest.raises(MixedGroupError, match="out of step"):  # one task, but rows of two steps
        check_groups([row("a", 0), row("a", 1)], 2)
    with pytest.raises(MixedGroupError, match="out of step"):  # whole groups, of two steps
        check_groups([row("a", 0), row("a", 0), row("b", 1), row("b", 1)], 2)
    with pytest.raises(MixedGroupError, match="whole number"):
        check_groups([row("a")] * 3, 2)
    assert pad_to(["x", "y"], 5) == ["x", "y", "x", "y", "x"] and pad_to(["x", "y", "z"], 2) == ["x", "y"]


class GreedyServer:
    """A stand-in for TRL's VLLMClient: greedy messages from a local model, one call per round."""

    def __init__(self, model: Any):
        self.model = model
        self.calls: list[int] = []

    def generate(self, prompts, n, temperature, top_p, max_tokens, logprobs, generation_kwargs):  # noqa: ANN001, ANN201
        assert n == 1 and logprobs == 0 and temperature == 0.0
        stop = set(generation_kwargs["stop_token_ids"])
        self.calls.append(len(prompts))
        out_ids, out_lps = [], []
        for prompt in prompts:
            ids, lps = list(prompt), []
            while len(ids) - len(prompt) < max_tokens:
                with torch.no_grad():
                    logp = torch.log_softmax(self.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
                tok = int(logp.argmax())
                ids.append(tok)
                lps.append([float(logp[tok])])
                if tok in stop:
                    break
            out_ids.append(ids[len(prompt):])
            out_lps.append(lps)
        return {"completion_ids": out_ids, "logprobs": out_lps}


def test_server_engine_makes_one_generate_call_per_turn_and_matches_the_hf_engine(tmp_path):
    from tests.unit.tiny_lm import demo_tasks, small_policy
    from trainer.policy import load_policy
    from trainer.rollout import HFRolloutEngine
    from trainer.trl.rollout import ServerRolloutEngine, server_round
    from trainer.types import RolloutSettings

    torch.set_num_threads(1)
    model, tok = load_policy(small_policy(tmp_path / "tiny", n_corpus=4))
    settings = RolloutSettings(greedy=True, max_new_tokens=8, max_total_tokens=200, compact_tools=True)
    tasks = demo_tasks(2)
    server = GreedyServer(model)
    engine = ServerRolloutEngine(model, tok, settings, lambda _: None)
    engine.generate_round = server_round(server, settings, engine.stop_ids)
    got = [t for g in engine.rollout(tasks, 2) for t in g]
    ref = [t for g in HFRolloutEngine(model, tok, settings).rollout(tasks, 2) for t in g]
    assert len(server.calls) == engine.rounds > 1  # one call per round of assistant messages
    assert server.calls[0] == 4 and server.calls == sorted(server.calls, reverse=True)
    for a, b in zip(got, ref, strict=True):
        assert a.token_ids == b.token_ids and a.loss_mask == b.loss_mask and a.reward == b.reward
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_cli_names_the_extra_when_trl_is_missing(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError(name="trl")
    monkeypatch.delitem(sys.modules, "trainer.trl.loop", raising=False)
    monkeypatch.delitem(sys.modules, "trainer.trl.rollout", raising=False)
    res = CliRunner().invoke(app, ["train", "--trainer", "trl", "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "install the trl extra: pip install -e '.[trl]'" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_on_slices_of_one_batch_per_step(tmp_path, warm_policy, redis_url, run_name):
    from rods.store.buffer import RedisBuffer
    from rods.store.connection import connect
    from trainer.trl.dataset import StepBatches

    settings = Settings(redis_url=redis_url, run=run_name, connect_retries=8, beta=0.34)
    r = connect(settings)
    buffer = RedisBuffer(r, run_name, settings.pool_rules())
    seeds = _demo(WARM_TASK, "multi_turn_base_37", "multi_turn_base_4")
    staged = variant_of(seeds[0])
    buffer.load_seeds(seeds)
    buffer.add_staged([staged])
    seed = seed_sampling([*(t.id for t in seeds), staged.id], 3, 3, staged.id)
    args = {"policy": str(warm_policy), "run": run_name, "redis_url": redis_url, "seed": seed,
            "run_dir": str(tmp_path / "run"), "out": str(tmp_path)}
    (tmp_path / "args.json").write_text(json.dumps(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "TRL_EXPERIMENTAL_SILENCE": "1", "CUDA_VISIBLE_DEVICES": ""}  # CPU processes, also on a GPU host
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--master_port", str(_free_port()), __file__, str(tmp_path / "args.json")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    views = [[json.loads(x) for x in (tmp_path / f"process-{p}.jsonl").read_text().splitlines()] for p in (0, 1)]
    batches = StepBatches(r, buffer, run_name, 3, seed).stored()
    assert [v["step"] for v in views[0]] == [v["step"] for v in views[1]] == [0, 1, 2, 3]
    for v0, v1 in zip(*views, strict=True):
        rows = v0["task_ids"] + v1["task_ids"]  # process order, as TRL gathers
        assert rows == [t for t in batches[v0["step"]] for _ in range(4)]
        assert len(v0["task_ids"]) == len(v1["task_ids"]) == 6  # the second task's group is split 2 + 2
        assert all(len(set(rows[g : g + 4])) == 1 for g in range(0, 12, 4))
    assert all(staged.id not in batches[k] for k in (0, 1, 2)) and staged.id in batches[3]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4] and metrics[1]["buffer/active"] == 4.0
    r.close()


def _worker(path: str) -> None:
    """One process of the two-process test (run under torchrun)."""
    from trainer.trl.loop import train_trl

    torch.set_num_threads(1)
    a = json.loads(Path(path).read_text())
    settings = Settings(redis_url=a["redis_url"], run=a["run"], connect_retries=8, beta=0.34)
    cfg = config(Path(a["policy"]), a["run"], B=3, micro=3, steps=4, seed=a["seed"])
    train_trl(cfg, Path(a["run_dir"]), settings=settings, extra_reward_funcs=[Jitter(Path(a["out"]))])


if __name__ == "__main__":
    _worker(sys.argv[1])


def test_cpu_processes_on_a_gpu_host_are_told_to_hide_the_gpus(tmp_path, monkeypatch):
    from trainer.config import ConfigError
    from trainer.trl.loop import train_trl

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = config(tmp_path / "policy", "t-gpu-host", B=2, micro=8, steps=1, seed=0)
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES= "):
        train_trl(cfg, tmp_path / "run", settings=Settings(redis_url="redis://127.0.0.1:1/0", run="t-gpu-host"))
