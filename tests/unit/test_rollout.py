"""The `hf` rollout engine: token/mask/log-prob alignment, batching, budgets (CPU, no services)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tiny_lm import EndsMessagesEarly, ScriptedLM, demo_tasks, small_policy

from rods.env import GroundTruthCache
from trainer.chat import (
    ChatRenderer,
    end_of_turn_id,
    ground_truth_conversation,
    tokenize_conversation,
)
from trainer.policy import load_policy
from trainer.rollout import HFRolloutEngine, RolloutSettings, Trajectory, sample_tokens


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    return load_policy(small_policy(tmp_path_factory.mktemp("policy") / "policy-init"))


def _spans(traj: Trajectory) -> list[tuple[int, int]]:
    out, start = [], None
    for i, m in enumerate([*traj.loss_mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def _check_alignment(traj: Trajectory, tok: object) -> None:
    n = len(traj.token_ids)
    assert len(traj.loss_mask) == n and len(traj.logprobs) == n
    assert traj.n_generated == sum(traj.loss_mask)
    asst = tok.convert_tokens_to_ids("<|assistant|>")
    for i, (m, lp) in enumerate(zip(traj.loss_mask, traj.logprobs, strict=True)):
        if m:
            assert lp <= 0.0 and math.isfinite(lp)
        else:
            assert lp == 0.0
            assert (
                i == 0 or traj.token_ids[i - 1] != asst or i == n
            )  # a message follows every prompt
    for a, _ in _spans(traj):
        assert traj.token_ids[a - 1] == asst  # every generated span is an assistant message


def test_scripted_policy_reproduces_the_sft_sequence(policy: tuple[object, object]) -> None:
    """A policy that emits the ground truth gets R_P = 1 and exactly the SFT tokens and mask."""
    _, tok = policy
    task = demo_tasks(2)[1]
    cache = GroundTruthCache()
    conv = ground_truth_conversation(task, cache)
    gt = cache.runtime(task).ground_truth
    target = tokenize_conversation(conv, ChatRenderer(tok, {"compact_tools": True}))
    lm = ScriptedLM(target.token_ids, len(tok), tok.eos_token_id)
    settings = RolloutSettings(
        greedy=True, max_new_tokens=128, max_total_tokens=4096, compact_tools=True
    )
    engine = HFRolloutEngine(lm, tok, settings)
    (group,) = engine.rollout([task], 2)
    for traj in group:
        assert traj.token_ids == target.token_ids
        assert traj.loss_mask == target.loss_mask
        assert traj.reward == 1.0 and traj.correct and traj.stop_reason == "completed"
        assert traj.tool_errors == {} and traj.messages_cut == 0
        assert [[c.to_python() for c in turn] for turn in traj.calls_per_turn] == [
            [c.to_python() for c in turn.calls] for turn in gt.turns
        ]
        _check_alignment(traj, tok)
        # generated spans decode to the assistant messages; tool results and user turns are unmasked
        texts = [tok.decode(traj.token_ids[a:b]) for a, b in _spans(traj)]
        assert texts == [
            m["content"] + "<|end|>" for m in conv.messages if m["role"] == "assistant"
        ]


def test_token_budget_truncates_the_episode(policy: tuple[object, object]) -> None:
    _, tok = policy
    task = demo_tasks(2)[1]
    conv = ground_truth_conversation(task, GroundTruthCache())
    target = tokenize_conversation(conv, ChatRenderer(tok, {"compact_tools": True}))
    lm = ScriptedLM(target.token_ids, len(tok), tok.eos_token_id)
    budget = len(target.token_ids) - 5
    settings = RolloutSettings(
        greedy=True, max_new_tokens=128, max_total_tokens=budget, compact_tools=True
    )
    engine = HFRolloutEngine(lm, tok, settings)
    (traj,) = engine.rollout([task], 1)[0]
    assert traj.stop_reason == "truncated:max_tokens"
    assert len(traj.token_ids) <= budget
    assert traj.token_ids == target.token_ids[: len(traj.token_ids)]
    assert traj.reward == (task.n_turns - 1) / task.n_turns  # the last turn was never finished
    assert not traj.correct


def test_logprobs_match_a_forward_pass(policy: tuple[object, object]) -> None:
    model, tok = policy
    torch.manual_seed(0)
    settings = RolloutSettings(
        temperature=1.0, max_new_tokens=12, max_total_tokens=700, compact_tools=True
    )
    groups = HFRolloutEngine(model, tok, settings).rollout(demo_tasks(2), 2)
    for traj in (t for g in groups for t in g):
        _check_alignment(traj, tok)
        ids = torch.tensor([traj.token_ids])
        with torch.no_grad():
            logp_all = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        recomputed = logp_all.gather(-1, ids[0, 1:, None]).squeeze(-1)
        mask = torch.tensor(traj.loss_mask[1:], dtype=torch.bool)
        sampled = torch.tensor(traj.logprobs[1:])
        assert mask.sum() > 0
        assert torch.allclose(recomputed[mask], sampled[mask], atol=2e-4)


def test_batched_equals_sequential_under_greedy(policy: tuple[object, object]) -> None:
    model, tok = policy
    settings = RolloutSettings(
        greedy=True, max_new_tokens=10, max_total_tokens=700, compact_tools=True
    )
    tasks = demo_tasks(3)
    batched = HFRolloutEngine(model, tok, settings).rollout(tasks, 2)
    sequential = HFRolloutEngine(model, tok, settings, sequential=True).rollout(tasks, 2)
    assert [[t.task_id for t in g] for g in batched] == [[t.id] * 2 for t in tasks]
    for gb, gs in zip(batched, sequential, strict=True):
        for b, s in zip(gb, gs, strict=True):
            assert b.token_ids == s.token_ids and b.loss_mask == s.loss_mask
            assert b.reward == s.reward and b.stop_reason == s.stop_reason
            assert max(abs(x - y) for x, y in zip(b.logprobs, s.logprobs, strict=True)) < 1e-4


def test_continuous_batching_equals_sequential(policy: tuple[object, object]) -> None:
    """Rows that end messages at different times, refilled at once, early or in lock-step,
    generate exactly what one-at-a-time decoding generates (greedy, real KV cache)."""
    model, tok = policy
    lm = EndsMessagesEarly(model, end_of_turn_id(tok), every=7)
    settings = RolloutSettings(
        greedy=True, max_new_tokens=12, max_total_tokens=900, compact_tools=True
    )
    tasks = demo_tasks(3)
    sequential = HFRolloutEngine(lm, tok, settings, sequential=True).rollout(tasks, 2)
    for refill_frac in (0.0, 0.25, 1.0):
        batched = HFRolloutEngine(lm, tok, settings, refill_frac=refill_frac).rollout(tasks, 2)
        lengths = set()
        for gb, gs in zip(batched, sequential, strict=True):
            for b, s in zip(gb, gs, strict=True):
                assert b.token_ids == s.token_ids and b.loss_mask == s.loss_mask, refill_frac
                assert b.reward == s.reward and b.stop_reason == s.stop_reason
                assert max(abs(x - y) for x, y in zip(b.logprobs, s.logprobs, strict=True)) < 1e-4
                lengths.update(e - a for a, e in _spans(b))
        assert len(lengths) > 2  # messages really ended at different lengths


def test_message_cut_after_max_calls(policy: tuple[object, object]) -> None:
    """A message is ended by the engine after `max_calls_per_message` closing tags."""
    _, tok = policy
    task = demo_tasks(1)[0]
    conv = ground_truth_conversation(task, GroundTruthCache())
    first = next(m["content"] for m in conv.messages if m["role"] == "assistant")
    renderer = ChatRenderer(tok, {"compact_tools": True})
    prompt = renderer.prompt_ids(conv.messages[:1], conv.tools)
    twice = renderer.encode(first + "\n" + first)  # a message with two calls, no end token
    lm = ScriptedLM(prompt + twice, len(tok), tok.eos_token_id)
    settings = RolloutSettings(
        greedy=True,
        max_new_tokens=200,
        max_calls_per_message=1,
        max_total_tokens=4096,
        compact_tools=True,
    )
    (traj,) = HFRolloutEngine(lm, tok, settings).rollout([task], 1)[0]
    a, b = _spans(traj)[0]
    assert tok.decode(traj.token_ids[a:b]) == first  # stopped at the first </tool_call>
    assert traj.token_ids[b] == tok.eos_token_id and traj.loss_mask[b] == 0  # appended, not sampled
    assert traj.messages_cut >= 1


def test_top_p_keeps_the_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    settings = RolloutSettings(top_p=0.7, temperature=1.0)
    gen = torch.Generator().manual_seed(0)
    seen = {int(sample_tokens(logits, settings, gen)[0]) for _ in range(200)}
    assert seen == {0, 1}
    tok, logp = sample_tokens(logits, RolloutSettings(greedy=True), None)
    assert int(tok) == 0 and abs(float(logp) - math.log(0.5)) < 1e-6


def test_settings_from_the_trainer_config() -> None:
    """Settings read from the trainer's RolloutConfig (fields of the same name)."""
    from trainer.config import RolloutConfig

    s = RolloutSettings.from_config(
        RolloutConfig(max_new_tokens=7, compact_tools=True), greedy=True
    )
    assert s.max_new_tokens == 7 and s.greedy and s.compact_tools


def test_settings_defaults_are_the_configs() -> None:
    """Each knob has one default: the settings' shared fields default to RolloutConfig's."""
    from trainer.config import RolloutConfig

    cfg = RolloutConfig()
    plain = RolloutSettings()
    shared = {f.name for f in dataclasses.fields(RolloutSettings)} & RolloutConfig.model_fields.keys()
    assert shared >= {"max_new_tokens", "max_total_tokens", "compact_tools", "temperature"}
    assert {n: getattr(plain, n) for n in shared} == {n: getattr(cfg, n) for n in shared}
    assert RolloutSettings.from_config(cfg) == plain


def test_decoding_on_cuda_leaves_out_cudnn_attention_and_restores_it():
    # cuDNN attention builds a plan per new key length: measured 6x slower decoding on an H200
    # (BENCHMARKS.md, "GPU"); the other backends stay on.
    from trainer.rollout.hf import _decode_attention

    before = torch.backends.cuda.cudnn_sdp_enabled()
    with _decode_attention(torch.device("cuda")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with _decode_attention(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before
