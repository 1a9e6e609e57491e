"""Gemma 3 270M through the whole trainer on CPU: SFT, native GRPO, GRPO under TRL, evaluation
under both protocols — the smallest real run of each (configs/gemma-270m-cpu.toml's settings).

What is checked is that a pretrained model with its own 262k-vocabulary tokenizer and turn format
goes through every path: the loss falls, a GRPO step updates the weights and writes a loadable
checkpoint, TRL's GRPOTrainer steps, and the evaluation scores with bfcl-eval's checker. Learning
is not (two steps). Redis is a private server started here. The bfcl protocol's per-message cap
(4,096 new tokens) is lowered to 24 so that the smoke is bounded on 2 cores; its other settings
(21 steps a turn, whole tool results, no call cap, the model's context) are as shipped.
Cost: see BENCHMARKS.md (see BENCHMARKS.md "Gemma 3 270M on CPU").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rods.config import Settings
from rods.store.server import RedisServer
from tests.unit.tiny_lm import demo_tasks
from trainer.config import TrainConfig
from trainer.policy import load_policy, save_policy
from trainer.sft import sft_batch, sft_examples, sft_loss

# a module's fixture (SFT + save) and a test together can pass the suite's 600 s on busy 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]
TASK = "multi_turn_base_100"  # two turns of one call each (TradingBot): the shortest demo task
ROOT = Path(__file__).resolve().parents[2]


def _task():  # noqa: ANN202
    return next(t for t in demo_tasks(27) if t.id == TASK)


@pytest.fixture(scope="module")
def warm(gemma_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma after 2 SFT steps on TASK's first turn (its loss falls), saved as a directory."""
    torch.manual_seed(0)
    model, tok = load_policy(gemma_dir)
    (ex,) = sft_examples([_task()], tok, compact_tools=True)
    ends = [i for i in range(1, len(ex.loss_mask)) if ex.loss_mask[i - 1] == 1 and ex.loss_mask[i] == 0]
    cut = ends[1]  # the first turn: its call message and the closing answer
    ids, att, labels = sft_batch([type(ex)(ex.token_ids[:cut], ex.loss_mask[:cut])], tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    losses = []
    for _ in range(2):
        loss = sft_loss(model, ids, att, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    out = save_policy(model.eval(), tok, tmp_path_factory.mktemp("gemma") / "warm")
    del model, opt
    return out


@pytest.fixture(scope="module")
def redis_settings():  # noqa: ANN201
    with RedisServer() as server:
        yield Settings(redis_url=server.url, run="gemma-smoke", connect_retries=8)


def _config(warm: Path, run: str) -> TrainConfig:
    import tomllib

    raw = tomllib.loads((ROOT / "configs" / "gemma-270m-cpu.toml").read_text())
    raw["policy"]["init_from"] = str(warm)
    raw["loop"].update(steps=1, checkpoint_every=1, run=run)
    raw["rollout"].update(max_new_tokens=24, max_total_tokens=512, max_steps_per_turn=2)
    return TrainConfig.model_validate(raw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_config_names_the_packaged_model(gemma_dir: Path) -> None:
    from trainer.loop import _policy_source

    raw = TrainConfig.model_validate({"policy": {"model": "gemma-3-270m"}})
    assert _policy_source(raw, Path("unused")) == str(gemma_dir)  # already pulled: no work


def test_native_grpo_step(warm: Path, redis_settings: Settings, tmp_path: Path) -> None:
    from trainer.loop import train

    cfg = _config(warm, "gemma-native")
    result = train(cfg, tmp_path / "run", settings=redis_settings)
    assert result.steps_done == 1
    (row,) = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert row["step"] == 1 and math.isfinite(row["reward/mean"])
    from trainer.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(tmp_path / "run")
    assert ckpt is not None
    before, after = _weights(warm), _weights(ckpt)
    if row["reward/frac_zero_var"] < 1.0:  # a group with spread: the update moved the weights
        assert any(not torch.equal(before[k], after[k]) for k in before)
    model, tok = load_policy(ckpt)
    assert tok.eos_token == "<end_of_turn>" and model.config.vocab_size == 262_144


def test_trl_grpo_step(warm: Path, redis_settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("trl", reason="the trl extra is not installed (pip install -e '.[trl]')")
    from trainer.trl.loop import train_trl

    cfg = _config(warm, "gemma-trl")
    result = train_trl(cfg, tmp_path / "run", settings=redis_settings)
    assert result.steps_done == 1
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["step"] == 1 and math.isfinite(row["reward/mean"])


@pytest.mark.parametrize("protocol", ["train", "bfcl"])
def test_evaluation(warm: Path, tmp_path: Path, protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.evaluate as E

    monkeypatch.setattr(E, "BFCL_MAX_NEW_TOKENS", 24)  # bounded on CPU (module docstring)
    cfg = _config(warm, "unused")
    report = E.evaluate(str(warm), tmp_path, tasks=[_task()], protocol=protocol,  # type: ignore[arg-type]
                        rollout_overrides=cfg.rollout.model_dump())
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["protocol"] == protocol and len(saved["rows"]) == 1
    row = saved["rows"][0]
    assert row["task_id"] == TASK and 0.0 <= row["progress"] <= 1.0
    assert row["official_correct"] == row["correct"]  # bfcl-eval's checker agrees with ours
    assert report.table()["overall"]["accuracy"] == pytest.approx(100.0 * row["official_correct"])
