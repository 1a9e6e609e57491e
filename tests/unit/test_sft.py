"""The supervised warm start: batches, loss masking, a short run that lowers the loss (CPU)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tiny_lm import demo_tasks, small_policy

from trainer.policy import load_policy
from trainer.sft import SFTConfig, epoch_order, run_sft, sft_batch, sft_examples


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_policy(tmp_path_factory.mktemp("policy") / "policy-init", n_corpus=4)


def test_batch_labels_only_assistant_tokens(policy_dir: Path) -> None:
    _, tok = load_policy(policy_dir)
    examples = sft_examples(demo_tasks(2), tok)
    ids, att, labels = sft_batch(examples, tok.pad_token_id)
    for i, e in enumerate(examples):
        n = len(e.token_ids)
        assert att[i, :n].all() and not att[i, n:].any()
        labelled = labels[i] != -100
        assert labelled[:n].tolist() == [bool(m) for m in e.loss_mask]
        assert not labelled[n:].any()
        assert (labels[i][labelled] == ids[i][labelled]).all()
        # the labelled tokens are the assistant messages: tool calls, "Done.", end tokens
        text = tok.decode(ids[i][labelled].tolist())
        assert "<tool_call>" in text and "<|user|>" not in text and "<|tool|>" not in text


def test_epoch_order_is_a_permutation_of_length_buckets() -> None:
    gen = random.Random(1)
    lengths = [gen.randint(100, 900) for _ in range(27)]
    orders = [epoch_order(lengths, 8, random.Random(seed)) for seed in range(3)]
    for order in orders:
        assert sorted(order) == list(range(27))
        batches = [order[k : k + 8] for k in range(0, 27, 8)]
        padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        # shuffled, unsorted batches of the same lengths pad far more
        shuffled = list(range(27))
        gen.shuffle(shuffled)
        plain = [shuffled[k : k + 8] for k in range(0, 27, 8)]
        assert padded < 0.85 * sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert len({tuple(o) for o in orders}) == 3  # batches differ between epochs


def test_short_sft_run_lowers_the_loss(policy_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = SFTConfig(
        model=str(policy_dir),
        steps=12,
        batch_size=2,
        lr=3e-3,
        warmup_steps=2,
        probe_every=6,
        probe_below_loss=100.0,
        probe_tasks=1,
        probe_samples=2,
        max_new_tokens=8,
        max_total_tokens=600,
        stop_when_mastered=False,
    )
    rows: list[dict] = []
    best = run_sft(cfg, tmp_path, log=rows.append, tasks=demo_tasks(2))
    losses = [r["sft/loss"] for r in rows]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3
    probes = [r for r in rows if "probe/frac_boundary" in r]
    assert [r["step"] for r in probes] == [6, 12]
    summary = json.loads((tmp_path / "sft" / "summary.json").read_text())
    assert summary["best"]["step"] in (6, 12) and summary["steps_run"] == 12
    assert len((tmp_path / "sft" / "log.jsonl").read_text().splitlines()) == 12
    model, tok = load_policy(best)  # the chosen checkpoint is a loadable HF model dir
    assert len(tok) == model.config.vocab_size
