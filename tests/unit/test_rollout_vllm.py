"""The `vllm` rollout engine's multi-turn loop, against a stand-in `vllm` module (CPU, no GPU).

The real engine needs vLLM and a CUDA device; these tests check everything of ours around
`LLM.generate`: prompts sent as token ids, stop rules, log-probs, the loss mask, environment
steps, and weight sync. The stand-in follows vLLM's documented output shape
(`RequestOutput.outputs[0].token_ids`, `.logprobs` as one {token id: Logprob} dict per token, a
stop token included in `token_ids`); whether an installed vLLM still matches it is checked only
by the gpu-marked tests on a GPU machine.
"""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import pytest
from tiny_lm import demo_tasks, small_policy

from rods.env import GroundTruthCache
from trainer.chat import ChatRenderer, ground_truth_conversation, tokenize_conversation
from trainer.policy import load_policy
from trainer.rollout import RolloutSettings


class FakeLLM:
    """Continues every prompt with a fixed target sequence (at the prompt's length), stopping
    after a stop token or `max_tokens`, like a policy that has memorised the ground truth."""

    target: list[int] = []
    instances: list[FakeLLM] = []

    def __init__(self, model: str, **kwargs: object):
        self.model, self.kwargs = model, kwargs
        self.calls: list[list[list[int]]] = []
        self.rpcs: list[tuple[object, dict]] = []
        self.params: list[list[SimpleNamespace]] = []
        self.prefix_resets = 0
        FakeLLM.instances.append(self)

    def generate(self, prompts: list[dict], params: list[SimpleNamespace], use_tqdm: bool = True):
        self.calls.append([p["prompt_token_ids"] for p in prompts])
        self.params.append(params)
        outs = []
        for p, params in zip(prompts, self.params[-1], strict=True):
            pos, toks = len(p["prompt_token_ids"]), []
            while len(toks) < params.max_tokens and pos < len(self.target):
                toks.append(self.target[pos])
                pos += 1
                if toks[-1] in params.stop_token_ids:
                    break
            logprobs = [{t: SimpleNamespace(logprob=-0.5)} for t in toks]
            completion = SimpleNamespace(token_ids=toks, logprobs=logprobs)
            outs.append(SimpleNamespace(outputs=[completion]))
        return outs

    def collective_rpc(self, method: object, args: tuple = (), kwargs: dict | None = None) -> None:
        self.rpcs.append((method, kwargs or {}))

    def reset_prefix_cache(self) -> None:
        self.prefix_resets += 1


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    mod = ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    mod.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", mod)
    FakeLLM.instances = []
    return mod


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    return load_policy(small_policy(tmp_path_factory.mktemp("policy") / "policy-init"))


def test_vllm_loop_reproduces_the_sft_sequence(fake_vllm: ModuleType, policy: tuple) -> None:
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = policy
    task = demo_tasks(2)[1]
    cache = GroundTruthCache()
    conv = ground_truth_conversation(task, cache)
    target = tokenize_conversation(conv, ChatRenderer(tok, {"compact_tools": True}))
    FakeLLM.target = target.token_ids
    settings = RolloutSettings(
        greedy=True, max_new_tokens=128, max_total_tokens=4096, compact_tools=True
    )
    engine = VLLMRolloutEngine(model, tok, settings, model_path="policy-dir", cache=cache)
    (group,) = engine.rollout([task], 2)
    llm = FakeLLM.instances[0]
    assert llm.model == "policy-dir" and llm.kwargs["enable_prefix_caching"] is True
    n_assistant = sum(m["role"] == "assistant" for m in conv.messages)
    assert len(llm.calls) == n_assistant  # one round per assistant message, both rows at once
    assert all(len(batch) == 2 for batch in llm.calls)
    for traj in group:
        assert traj.token_ids == target.token_ids
        assert traj.loss_mask == target.loss_mask
        assert traj.reward == 1.0 and traj.correct and traj.stop_reason == "completed"
        assert traj.messages_cut == 0
        assert {lp for lp, m in zip(traj.logprobs, traj.loss_mask, strict=True) if m} == {-0.5}
        assert all(lp == 0.0 for lp, m in zip(traj.logprobs, traj.loss_mask, strict=True) if not m)


def test_vllm_message_cut_at_max_new_tokens(fake_vllm: ModuleType, policy: tuple) -> None:
    """A message vLLM stops at max_tokens is closed by the engine with an unmasked end token."""
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = policy
    task = demo_tasks(1)[0]
    cache = GroundTruthCache()
    conv = ground_truth_conversation(task, cache)
    FakeLLM.target = tokenize_conversation(
        conv, ChatRenderer(tok, {"compact_tools": True})
    ).token_ids
    settings = RolloutSettings(
        greedy=True, max_new_tokens=3, max_total_tokens=4096, compact_tools=True
    )
    engine = VLLMRolloutEngine(model, tok, settings, model_path="p", cache=cache)
    (traj,) = engine.rollout([task], 1)[0]
    assert traj.messages_cut >= 1
    assert traj.n_generated == 3 * len(FakeLLM.instances[0].calls)  # 3 sampled tokens a message
    assert traj.reward < 1.0


class TwoCallsLLM(FakeLLM):
    """Samples the k-th assistant message of the target on its k-th call (one row), saying its
    body twice, so a message with a tool call holds two: vLLM knows only stop tokens and
    max_tokens, and samples on past the engine's own cut after `max_calls_per_message` calls."""

    messages: list[list[int]] = []  # the target's assistant messages, end token included

    def generate(self, prompts: list[dict], params: list[SimpleNamespace], use_tqdm: bool = True):
        self.calls.append([p["prompt_token_ids"] for p in prompts])
        (msg,) = [self.messages[len(self.calls) - 1]] * len(prompts)
        toks = msg[:-1] + msg[:-1] + msg[-1:]
        logprobs = [{t: SimpleNamespace(logprob=-0.5)} for t in toks]
        return [SimpleNamespace(outputs=[SimpleNamespace(token_ids=toks, logprobs=logprobs)])]


def _sampled_runs(token_ids: list[int], loss_mask: list[int]) -> list[list[int]]:
    """The runs of loss-mask 1: one per assistant message."""
    runs: list[list[int]] = []
    for i, (t, m) in enumerate(zip(token_ids, loss_mask, strict=True)):
        if m and (i == 0 or not loss_mask[i - 1]):
            runs.append([])
        if m:
            runs[-1].append(t)
    return runs


def test_vllm_message_cut_after_max_calls_per_message(fake_vllm: ModuleType, policy: tuple) -> None:
    from trainer.rollout.vllm import VLLMRolloutEngine

    fake_vllm.LLM = TwoCallsLLM
    model, tok = policy
    task = demo_tasks(1)[0]
    cache = GroundTruthCache()
    conv = ground_truth_conversation(task, cache)
    target = tokenize_conversation(conv, ChatRenderer(tok, {"compact_tools": True}))
    TwoCallsLLM.messages = _sampled_runs(target.token_ids, target.loss_mask)
    n_calls = sum(
        m["content"].count("</tool_call>") for m in conv.messages if m["role"] == "assistant"
    )
    settings = RolloutSettings(
        greedy=True,
        max_new_tokens=1024,
        max_total_tokens=8192,
        max_calls_per_message=1,
        compact_tools=True,
    )
    engine = VLLMRolloutEngine(model, tok, settings, model_path="p", cache=cache)
    (traj,) = engine.rollout([task], 1)[0]
    # the sampled messages; a cut one ends right after its first call
    messages = [
        tok.decode(run, skip_special_tokens=False)
        for run in _sampled_runs(traj.token_ids, traj.loss_mask)
    ]
    with_calls = [m for m in messages if "</tool_call>" in m]
    assert len(with_calls) == n_calls > 0
    assert all(m.count("</tool_call>") == 1 and m.endswith("</tool_call>") for m in with_calls)
    assert traj.messages_cut == n_calls
    assert traj.reward == 1.0  # the duplicate calls were never executed


def test_vllm_sync_weights_sends_every_tensor(fake_vllm: ModuleType, policy: tuple) -> None:
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = policy
    engine = VLLMRolloutEngine(model, tok, RolloutSettings(), model_path="p")
    engine.sync_weights(model)
    llm = FakeLLM.instances[0]
    ((method, kwargs),) = llm.rpcs
    assert method == "reload_weights" and llm.prefix_resets == 1
    weights = kwargs["weights_iterator"]
    assert [name for name, _ in weights] == list(model.state_dict())
    # by reference: the engine core runs in this process, nothing is copied
    assert all(t.data_ptr() == v.data_ptr() for (_, t), v in zip(weights, model.state_dict().values(), strict=True))


def test_vllm_seeded_requests_differ_and_repeat(fake_vllm: ModuleType, policy: tuple) -> None:
    """With a seed, each request of a round gets its own seed; the same seed, the same ones."""
    from trainer.rollout.vllm import VLLMRolloutEngine

    model, tok = policy
    task = demo_tasks(1)[0]
    FakeLLM.target = []  # every message is empty: one round, the episode goes on
    seeds = []
    for _ in range(2):
        settings = RolloutSettings(seed=7, max_new_tokens=4, compact_tools=True)
        engine = VLLMRolloutEngine(model, tok, settings, model_path="p")
        engine.rollout([task], 3)
        llm = FakeLLM.instances[-1]
        seeds.append([[p.seed for p in round_] for round_ in llm.params])
        assert all(p.temperature == settings.temperature and p.ignore_eos for p in llm.params[0])
    assert seeds[0] == seeds[1]
    assert len(set(seeds[0][0])) == 3


def test_vllm_missing_names_the_gpu_extra(monkeypatch: pytest.MonkeyPatch, policy: tuple) -> None:
    from trainer.rollout.vllm import VLLMRolloutEngine

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    model, tok = policy
    with pytest.raises(RuntimeError, match=r"gpu"):
        VLLMRolloutEngine(model, tok, RolloutSettings(), model_path="p")
