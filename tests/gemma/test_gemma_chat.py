"""The chat contracts on Gemma's real tokenizer (262,144-token SentencePiece-style vocabulary).

The same contracts tests/unit/test_policy.py, test_sft.py and test_rollout.py check with the tiny
tokenizer: the template renders tools, calls and results in Gemma's turn format; incremental
token ids decode to the whole render; the loss mask covers exactly the assistant messages and
their `<end_of_turn>`; tool calls survive encode → decode → parse; a scripted policy that emits
the ground truth reproduces the SFT sequence through the rollout engine with R_P = 1.
Cost: the session's pull (~1.5 min on 2 cores when not yet converted) and ~15 s of tokenizing.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rods.env import GroundTruthCache
from rods.env.calls import parse_tool_calls
from rods.tasks import ToolCall, load_split
from tests.unit.tiny_lm import ScriptedLM, demo_tasks
from trainer.chat import (
    GEMMA_END_OF_TURN,
    TURN_END_TEXT,
    ChatRenderer,
    ground_truth_conversation,
    tokenize_conversation,
    tool_call_text,
)
from trainer.rollout import HFRolloutEngine, RolloutSettings
from trainer.sft import sft_batch, sft_examples

pytestmark = pytest.mark.slow

TOOLS = [
    {"type": "function", "function": {"name": "cd", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}},
]


def test_tokenizer_specials_and_directory(gemma_dir: Path, gemma_tok) -> None:  # noqa: ANN001
    tok = gemma_tok
    assert len(tok) == 262_144
    assert tok.eos_token == GEMMA_END_OF_TURN and tok.eos_token_id == 106
    assert tok.pad_token == "<pad>" and tok.pad_token_id not in (None, tok.eos_token_id)
    assert tok.decode([tok.eos_token_id]) == GEMMA_END_OF_TURN
    for special in ("<start_of_turn>", "<end_of_turn>", "<bos>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert {"config.json", "model.safetensors", "tokenizer.json", "rods-model.json"} <= {
        p.name for p in gemma_dir.iterdir()
    }


def test_template_is_gemmas_turn_format_with_tools(gemma_tok) -> None:  # noqa: ANN001
    msgs = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "cd", "arguments": {"folder": "a"}}}]},
        {"role": "tool", "content": "x" * 200},
    ]
    text = gemma_tok.apply_chat_template(msgs, tools=TOOLS, tokenize=False, add_generation_prompt=True,
                                         tool_result_chars=0)
    assert text.startswith("<bos><start_of_turn>user\nYou can call these tools.")
    assert '\n{"type": "function", "function": {"name": "cd"' in text  # JSON schemas by default
    assert text.endswith(
        '\n\ngo<end_of_turn>\n<start_of_turn>model\n<tool_call>{"name":"cd","arguments":{"folder": "a"}}'
        "</tool_call><end_of_turn>\n<start_of_turn>user\n<tool_response>\n" + "x" * 200
        + "\n</tool_response><end_of_turn>\n<start_of_turn>model\n"
    )
    compact = gemma_tok.apply_chat_template(msgs, tools=TOOLS, tokenize=False, compact_tools=True)
    assert "\ntools: cd, ls\n\ngo<end_of_turn>" in compact  # the result cut to 80 by default:
    assert "x" * 80 + "\n</tool_response>" in compact and "x" * 81 not in compact
    assert not compact.endswith("<start_of_turn>model\n")
    system = gemma_tok.apply_chat_template([{"role": "system", "content": "Be brief."}, msgs[0]],
                                           tokenize=False, add_generation_prompt=True)
    assert system == "<bos><start_of_turn>user\nBe brief.\n\ngo<end_of_turn>\n<start_of_turn>model\n"


def _conversations(n: int) -> list:  # noqa: ANN001
    """Demo tasks and one task of each other category (a reveal note, missing parameters)."""
    train = load_split("train")
    picks = demo_tasks(n) + [next(t for t in train if t.category == c)
                             for c in ("miss_func", "miss_param", "long_context")]
    cache = GroundTruthCache()
    return [ground_truth_conversation(t, cache, compact=False) for t in picks]


def _spans(mask: list[int]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


def test_incremental_ids_and_assistant_mask(gemma_tok) -> None:  # noqa: ANN001
    tok = gemma_tok
    renderer = ChatRenderer(tok, {"compact_tools": False, "tool_result_chars": 0})
    for conv in _conversations(2):
        assert conv.progress == 1.0
        ex = tokenize_conversation(conv, renderer)
        whole = tok.apply_chat_template(conv.messages, tools=conv.tools, tokenize=False,
                                        compact_tools=False, tool_result_chars=0)
        # the pieces make the whole render (which closes the last turn with a newline: the
        # sequence ends at the eos, as a rollout does)
        assert tok.decode(ex.token_ids) + "\n" == whole
        assistant = [m["content"] for m in conv.messages if m["role"] == "assistant"]
        texts = [tok.decode(ex.token_ids[a:b]) for a, b in _spans(ex.loss_mask)]
        assert texts == [a + GEMMA_END_OF_TURN for a in assistant]
        assert assistant[-1] == TURN_END_TEXT
        # every masked span follows a generation prompt and ends with the eos
        prompt = tok("<start_of_turn>model\n", add_special_tokens=False)["input_ids"]
        for a, b in _spans(ex.loss_mask):
            assert ex.token_ids[a - len(prompt) : a] == prompt and ex.token_ids[b - 1] == tok.eos_token_id


def test_sft_labels_only_assistant_tokens(gemma_tok) -> None:  # noqa: ANN001
    tasks = demo_tasks(2)
    examples = sft_examples(tasks, gemma_tok, compact_tools=True, max_seq_tokens=2048)  # as SFT renders
    assert len(examples) == 2
    ids, att, labels = sft_batch(examples, gemma_tok.pad_token_id)
    for k, ex in enumerate(examples):
        n = len(ex.token_ids)
        assert att[k, :n].all() and not att[k, n:].any()
        kept = labels[k] != -100
        # labels are the assistant tokens, shifted or not as sft_batch does: compare as sets of ids
        assert kept.sum().item() == sum(ex.loss_mask)
        assert int(labels[k][kept][-1]) == gemma_tok.eos_token_id


@pytest.mark.parametrize(
    "calls",
    [
        [ToolCall(name="cd", arguments={"folder": "document"})],
        [ToolCall(name="mv", arguments={"source": "final_report.pdf", "destination": "temp"}),
         ToolCall(name="ls", arguments={"a": True})],
        [ToolCall(name="post_tweet", arguments={"content": "Ünïcødé — 東京 ☃ \"quoted\" \\ back",
                                                "tags": ["#a", "#b"], "mentions": []})],
        [ToolCall(name="get_stock_info", arguments={"symbol": "NVDA", "n": 3.25, "z": None})],
    ],
)
def test_tool_calls_round_trip_through_the_tokenizer(gemma_tok, calls: list[ToolCall]) -> None:  # noqa: ANN001
    text = tool_call_text(calls)
    ids = gemma_tok(text, add_special_tokens=False)["input_ids"]
    decoded = gemma_tok.decode(ids)
    assert decoded == text
    parsed = parse_tool_calls(decoded)
    assert parsed.errors == [] and [(c.name, c.arguments) for c in parsed.calls] == [
        (c.name, c.arguments) for c in calls
    ]


class LeanScriptedLM(ScriptedLM):
    """ScriptedLM that honours `logits_to_keep` (262k-wide logits for a whole prompt are ~1 GB)."""

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,  # noqa: ANN001
                use_cache=True, logits_to_keep=0):
        self.calls += 1
        if logits_to_keep:
            position_ids = position_ids[:, -logits_to_keep:]
        table = torch.tensor(self.target + [self.eos_id])
        ids_N_L = table[(position_ids + 1).clamp(max=len(self.target))]
        logits = torch.zeros(*ids_N_L.shape, self.vocab_size)
        logits.scatter_(-1, ids_N_L[..., None], 20.0)
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def test_scripted_policy_reproduces_the_sft_sequence(gemma_tok) -> None:  # noqa: ANN001
    """The rollout engine on Gemma's tokenizer: same tokens, same mask, R_P = 1, calls parsed."""
    tok = gemma_tok
    task = demo_tasks(2)[1]
    cache = GroundTruthCache()
    conv = ground_truth_conversation(task, cache, compact=False)
    target = tokenize_conversation(conv, ChatRenderer(tok, {"compact_tools": False,
                                                            "tool_result_chars": 80}))
    lm = LeanScriptedLM(target.token_ids, len(tok), tok.eos_token_id)
    settings = RolloutSettings(greedy=True, max_new_tokens=128, max_total_tokens=4096,
                               compact_tools=False, tool_result_chars=80)
    (group,) = HFRolloutEngine(lm, tok, settings).rollout([task], 1)
    (traj,) = group
    gt = cache.runtime(task).ground_truth
    assert traj.token_ids == target.token_ids and traj.loss_mask == target.loss_mask
    assert traj.reward == 1.0 and traj.correct and traj.stop_reason == "completed"
    assert traj.tool_errors == {}
    assert [[c.to_python() for c in turn] for turn in traj.calls_per_turn] == [
        [c.to_python() for c in turn.calls] for turn in gt.turns
    ]
