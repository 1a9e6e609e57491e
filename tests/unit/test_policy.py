"""The tiny policy builder, its tokenizer and chat template, ground-truth conversations (CPU)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tiny_lm import demo_tasks, small_policy

from rods.env import GroundTruthCache
from rods.tasks import load_split
from trainer.chat import (
    TURN_END_TEXT,
    ChatRenderer,
    demo_subset,
    ground_truth_conversation,
    is_demo_task,
    tokenize_conversation,
)
from trainer.policy import TINY_ARCH, count_parameters, load_policy, tiny_model
from trainer.tokenizer import render_template


def _hashes(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_policy(tmp_path_factory.mktemp("policy") / "policy-init")


def test_build_is_deterministic_and_cached(policy_dir: Path, tmp_path: Path) -> None:
    again = small_policy(tmp_path / "again")
    assert _hashes(again) == _hashes(policy_dir)  # same bytes, every file
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(
        _hashes(again)
    )
    stamp = (again / "model.safetensors").stat().st_mtime_ns
    assert small_policy(tmp_path / "again") == tmp_path / "again"  # cached: not rebuilt
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp
    other_seed = small_policy(tmp_path / "seed1", seed=1)
    h0, h1 = _hashes(policy_dir), _hashes(other_seed)
    assert h0["tokenizer.json"] == h1["tokenizer.json"]
    assert h0["model.safetensors"] != h1["model.safetensors"]


def test_tiny_architecture_size() -> None:
    model = tiny_model(vocab_size=2048, eos_id=1, pad_id=0, seed=0)
    n = count_parameters(model)
    assert 4.6e6 < n < 4.8e6  # docs/CPU-DEMO.md: ≈ 4.7 M
    assert (
        model.config.tie_word_embeddings
        and model.config.num_hidden_layers == TINY_ARCH["num_hidden_layers"]
    )


def test_tokenizer_round_trip_and_specials(policy_dir: Path) -> None:
    model, tok = load_policy(policy_dir)
    assert len(tok) == model.config.vocab_size
    assert tok.eos_token == "<|end|>" and tok.pad_token_id != tok.eos_token_id
    for special in (
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|tool|>",
        "<tool_call>",
        "</tool_call>",
    ):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    cache = GroundTruthCache()
    conv = ground_truth_conversation(demo_tasks(1)[0], cache)
    text = render_template(conv.messages, conv.tools, gen=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 2.5  # the BPE learned the corpus (not byte-level only)


def test_chat_template_renders_tools_calls_and_cuts_results(policy_dir: Path) -> None:
    _, tok = load_policy(policy_dir)
    tools = [
        {"type": "function", "function": {"name": "cd", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}},
    ]
    msgs = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "cd", "arguments": {"folder": "a"}}}],
        },
        {"role": "tool", "content": "x" * 200},
    ]
    compact = tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=True)
    assert compact == (
        '<|system|>tools: cd, ls<|end|><|user|>go<|end|><|assistant|><tool_call>{"name":"cd",'
        '"arguments":{"folder": "a"}}</tool_call><|end|><|tool|>'
        + "x" * 80
        + "<|end|><|assistant|>"
    )
    full = tok.apply_chat_template(
        msgs, tools=tools, tokenize=False, compact_tools=False, tool_result_chars=0
    )
    assert full.startswith('<|system|>tools:\n{"type": "function", "function": {"name": "cd"')
    assert "x" * 200 in full and not full.endswith("<|assistant|>")
    # the tokenizer's template and the builder's own renderer agree
    assert render_template(msgs, tools, gen=True) == compact


def test_demo_subset_filter() -> None:
    train = load_split("train")
    demo = demo_subset(train)
    assert 20 <= len(demo) <= 60
    for t in demo:
        assert t.category == "base" and t.n_turns <= 4
        assert all(1 <= len(turn) <= 2 for turn in t.ground_truth)
        assert sum(map(len, t.ground_truth)) <= 5
    rejected = [t for t in train if t.category == "base" and not is_demo_task(t)]
    assert rejected and all(
        t.n_turns > 4
        or any(len(u) == 0 or len(u) > 2 for u in t.ground_truth)
        or sum(map(len, t.ground_truth)) > 5
        for t in rejected
    )


def test_ground_truth_conversation_tokens_and_mask(policy_dir: Path) -> None:
    _, tok = load_policy(policy_dir)
    renderer = ChatRenderer(tok, {"compact_tools": True})
    cache = GroundTruthCache()
    for task in demo_tasks(3):
        conv = ground_truth_conversation(task, cache)
        assert conv.progress == 1.0  # replaying the ground truth solves the task
        ex = tokenize_conversation(conv, renderer)
        # the incrementally built ids decode to the template's render of the whole conversation
        assert tok.decode(ex.token_ids) == render_template(conv.messages, conv.tools, gen=False)
        spans, cur = [], []
        for t, m in zip(ex.token_ids, ex.loss_mask, strict=True):
            if m:
                cur.append(t)
            elif cur:
                spans.append(cur)
                cur = []
        if cur:
            spans.append(cur)
        assistant = [m["content"] for m in conv.messages if m["role"] == "assistant"]
        assert [tok.decode(s) for s in spans] == [a + "<|end|>" for a in assistant]
        assert (
            assistant[-1] == TURN_END_TEXT
            and sum(a == TURN_END_TEXT for a in assistant) == task.n_turns
        )
