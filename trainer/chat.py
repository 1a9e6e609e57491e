"""Conversations the policy sees: the demo task subset, ground-truth conversations, and the
incremental chat renderer that both the rollout engine and SFT use.

Contracts:
- The tool list is rendered once, in the system part, with the tools visible at turn 0. A
  miss_func turn that reveals functions appends a note naming them to its user message (names
  only when `compact_tools`, else the JSON schemas), so the prefix of a conversation never changes
  and token ids can be appended without re-rendering or re-tokenizing anything generated.
- An assistant message is its raw text: one or more `<tool_call>{json}</tool_call>` lines, or
  plain text that ends the user turn. Ground-truth conversations put one call per message (so a
  call can read the previous result) and end each turn with `TURN_END_TEXT`.
- `ChatRenderer.continuation_ids` returns the tokens that follow an assistant message's end-of-turn
  token: the new tool/user messages and the next generation prompt. It is the difference of two
  renders of the same chat template, cut after the end-of-turn string, so it works for any
  template that renders earlier messages the same whatever follows them (ours, Qwen2.5-style).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rods.env import Episode, GroundTruthCache
from rods.env.tools import openai_tools
from rods.tasks import Task, ToolCall

TURN_END_TEXT = "Done."  # the assistant's plain-text message that closes a user turn


# ---------------------------------------------------------------- Gemma's turn format

GEMMA_TOOLS_PREAMBLE = (
    "You can call these tools. To call one, write "
    '<tool_call>{"name": ..., "arguments": {...}}</tool_call> on a line of its own; '
    "answer in plain text when no call is needed."
)
# Gemma's own turn format (`<start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n`) with
# this project's tool conventions: Gemma has no system or tool role, so the tool list (and a
# leading system message) opens the first user turn, as Gemma's template folds a system prompt,
# and each tool result is a user turn of its own wrapped in <tool_response>. Assistant messages
# are their raw text (the `<tool_call>{json}</tool_call>` lines), structured `tool_calls` are
# written in the same form. `<end_of_turn>` ends every turn, so it is the eos of the policy.
# Variables as in the tiny template: `compact_tools` (default false here: each tool's JSON
# schema on a line) and `tool_result_chars` (default 80, as the tiny template and the rollout
# settings, so SFT data and rollouts agree; 0 = results whole, the bfcl protocol's).
GEMMA_CHAT_TEMPLATE = (  # every newline is a Jinja string: trim_blocks would eat a literal one
    "{%- set compact = compact_tools if compact_tools is defined else false -%}"
    "{%- set cut = tool_result_chars if tool_result_chars is defined else 80 -%}"
    "{%- set U = '<start_of_turn>user\\n' -%}{%- set E = '<end_of_turn>\\n' -%}"
    "{{ bos_token }}"
    "{%- set ns = namespace(pre='') -%}"
    "{%- if tools -%}{%- set ns.pre = '" + GEMMA_TOOLS_PREAMBLE + "' -%}"  # no ' inside
    "{%- if compact -%}{%- set ns.pre = ns.pre ~ '\\ntools: ' -%}"
    "{%- for t in tools -%}{%- set ns.pre = ns.pre ~ (t.function.name if t.function is defined else t.name)"
    " ~ (', ' if not loop.last else '') -%}{%- endfor -%}"
    "{%- else -%}{%- for t in tools -%}{%- set ns.pre = ns.pre ~ '\\n' ~ (t | tojson) -%}{%- endfor -%}"
    "{%- endif -%}{%- endif -%}"
    "{%- set msgs = messages -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set ns.pre = (ns.pre ~ '\\n\\n' if ns.pre else '') ~ messages[0].content -%}"
    "{%- set msgs = messages[1:] -%}{%- endif -%}"
    "{%- if ns.pre and not (msgs and msgs[0].role == 'user') -%}"
    "{{ U ~ ns.pre ~ E }}{%- set ns.pre = '' -%}{%- endif -%}"
    "{%- for m in msgs -%}"
    "{%- if m.role == 'user' or m.role == 'system' -%}{{ U }}"
    "{%- if loop.first and ns.pre -%}{{ ns.pre ~ '\\n\\n' }}{%- endif -%}{{ m.content ~ E }}"
    "{%- elif m.role == 'assistant' -%}{{ '<start_of_turn>model\\n' }}{{ m.content if m.content else '' }}"
    "{%- if m.tool_calls is defined and m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}{%- set f = c.function if c.function is defined else c -%}"
    "{%- if m.content or not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "{{ '<tool_call>{\"name\":' ~ (f.name | tojson) ~ ',\"arguments\":' }}"
    "{{ (f.arguments | tojson) if f.arguments is mapping else f.arguments }}{{ '}</tool_call>' }}"
    "{%- endfor -%}{%- endif -%}{{ E }}"
    "{%- elif m.role == 'tool' -%}{{ U ~ '<tool_response>\\n' }}"
    "{{ m.content[:cut] if cut and cut > 0 else m.content }}{{ '\\n</tool_response>' ~ E }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)
GEMMA_END_OF_TURN = "<end_of_turn>"  # eos of the policy: ends every model turn
GEMMA_PAD = "<pad>"


# ---------------------------------------------------------------- the demo subset


def is_demo_task(task: Task) -> bool:
    """CPU-demo filter (CPU-DEMO.md): a BFCL base task with no empty ground-truth turn, at most 4
    turns, at most 2 ground-truth calls per turn and at most 5 calls in all — short conversations
    a 4.7 M-parameter model can learn in minutes. Applied to the training split, ~half of the
    split's 100 base tasks remain."""
    gt = task.ground_truth
    return (
        task.category == "base"
        and all(len(turn) > 0 for turn in gt)
        and len(gt) <= 4
        and max(len(turn) for turn in gt) <= 2
        and sum(len(turn) for turn in gt) <= 5
    )


def demo_subset(tasks: Sequence[Task]) -> list[Task]:
    """The tasks that pass `is_demo_task`, in their given order."""
    return [t for t in tasks if is_demo_task(t)]


# ---------------------------------------------------------------- message pieces


def tool_call_text(calls: Sequence[ToolCall]) -> str:
    """Calls as the policy writes them: one `<tool_call>{json}</tool_call>` line per call."""
    return "\n".join(
        "<tool_call>"
        + json.dumps({"name": c.name, "arguments": c.arguments}, separators=(",", ":"))
        + "</tool_call>"
        for c in calls
    )


def reveal_note(new_tools: Sequence[dict[str, Any]], compact: bool) -> str:
    """Text appended to the user message of a turn that reveals held-out functions."""
    if compact:
        return "\nnew tools: " + ", ".join(t["function"]["name"] for t in new_tools)
    return "\nnew tools:\n" + "\n".join(json.dumps(t) for t in new_tools)


def user_turn_messages(
    next_user: list[dict[str, Any]], shown: set[str], ep: Episode, compact: bool
) -> list[dict[str, Any]]:
    """The next user turn's messages; names newly visible tools (updating `shown`)."""
    if not next_user:
        return []
    new = [t for t in openai_tools(ep.tools()) if t["function"]["name"] not in shown]
    if not new:
        return next_user
    shown.update(t["function"]["name"] for t in new)
    last = dict(next_user[-1])
    last["content"] = last["content"] + reveal_note(new, compact)
    return [*next_user[:-1], last]


@dataclass
class Conversation:
    """A ground-truth conversation: the tools shown at turn 0, and the messages that follow."""

    task_id: str
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    progress: float  # R_P of replaying it through the episode (1.0 unless the data is broken)


def ground_truth_conversation(
    task: Task, cache: GroundTruthCache, *, max_steps_per_turn: int = 5, compact: bool = True
) -> Conversation:
    """Replay the task's ground truth through a real `Episode`, as the policy would.

    One call per assistant message, then `TURN_END_TEXT`; a turn with more calls than
    `max_steps_per_turn - 1` packs several calls into a message so the step limit is not hit.
    The tool messages are the environment's own (executed results, error texts).
    """
    ep = Episode(task, cache, max_steps_per_turn=max_steps_per_turn)
    tools = openai_tools(ep.tools())
    shown = {t["function"]["name"] for t in tools}
    gt = cache.runtime(task).ground_truth
    messages = list(ep.opening())
    while not ep.done:
        calls = gt.turns[ep.turn].calls
        n_msgs = min(len(calls), max_steps_per_turn - 1)
        chunks = _contiguous(list(calls), n_msgs)
        texts = [tool_call_text(c) for c in chunks] + [TURN_END_TEXT]
        for text in texts:
            res = ep.step(text)
            messages.append({"role": "assistant", "content": text})
            messages += res.tool_messages
            messages += user_turn_messages(res.next_user, shown, ep, compact)
            if res.turn_done:
                break
    return Conversation(task.id, tools, messages, ep.score().progress)


def _contiguous(items: list[Any], n: int) -> list[list[Any]]:
    """Split `items` into `n` contiguous, non-empty, near-equal slices (n ≤ len(items))."""
    if n <= 0:
        return []
    q, r = divmod(len(items), n)
    out, start = [], 0
    for k in range(n):
        size = q + (1 if k < r else 0)
        out.append(items[start : start + size])
        start += size
    return out


# ---------------------------------------------------------------- incremental rendering


class ChatRenderer:
    """Token ids of conversation pieces from a tokenizer's chat template, rendered incrementally.

    `template_kwargs` go to the template (ours reads `compact_tools` and `tool_result_chars`).
    """

    def __init__(self, tokenizer: Any, template_kwargs: dict[str, Any] | None = None):
        self.tokenizer = tokenizer
        self.kwargs = dict(template_kwargs or {})
        eos = end_of_turn_id(tokenizer)
        self.end_text = tokenizer.decode([eos])

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], gen: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=gen, tokenize=False, **self.kwargs
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """The opening: system part, first user turn, generation prompt."""
        return self.encode(self.render(messages, tools, gen=True))

    def continuation_ids(
        self,
        history: list[dict[str, Any]],
        assistant_text: str,
        new_messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
    ) -> list[int]:
        """Tokens after the assistant message's end-of-turn token, up to the next generation
        prompt. `history` ends where the assistant message starts."""
        before = self.render(history, tools, gen=True)
        full = self.render(
            [*history, {"role": "assistant", "content": assistant_text}, *new_messages],
            tools,
            gen=True,
        )
        if not full.startswith(before):
            raise ValueError(
                "the chat template re-renders earlier messages when a message is added; "
                "incremental token ids are impossible with it"
            )
        rest = full[len(before) :]
        at = rest.find(assistant_text)  # the content as rendered; the end-of-turn text follows it
        cut = rest.find(self.end_text, at + len(assistant_text) if at >= 0 else 0)
        if cut < 0:
            raise ValueError(
                f"the chat template does not end assistant messages with {self.end_text!r}"
            )
        return self.encode(rest[cut + len(self.end_text) :])

    def assistant_ids(self, text: str) -> list[int]:
        """Canonical tokens of an assistant message, end-of-turn token included (SFT targets)."""
        return self.encode(text) + [end_of_turn_id(self.tokenizer)]


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that ends an assistant message: the tokenizer's eos."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; set one that ends assistant messages")
    return int(tokenizer.eos_token_id)


@dataclass
class TokenizedConversation:
    token_ids: list[int]
    loss_mask: list[int]  # 1 on assistant tokens (content + end-of-turn), 0 elsewhere


def tokenize_conversation(conv: Conversation, renderer: ChatRenderer) -> TokenizedConversation:
    """Token ids and the assistant-only loss mask, built exactly as the rollout engine builds
    them: the opening prompt, then per assistant message its tokens and the continuation."""
    msgs = conv.messages
    first_asst = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    ids = renderer.prompt_ids(msgs[:first_asst], conv.tools)
    mask = [0] * len(ids)
    i = first_asst
    while i < len(msgs):
        text = msgs[i]["content"]
        a_ids = renderer.assistant_ids(text)
        ids += a_ids
        mask += [1] * len(a_ids)
        j = i + 1
        while j < len(msgs) and msgs[j]["role"] != "assistant":
            j += 1
        if j < len(msgs):  # more to come: the continuation up to the next generation prompt
            c_ids = renderer.continuation_ids(msgs[:i], text, msgs[i + 1 : j], conv.tools)
            ids += c_ids
            mask += [0] * len(c_ids)
        i = j
    return TokenizedConversation(ids, mask)
