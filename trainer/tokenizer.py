"""The tiny policy's byte-level BPE tokenizer and chat template, trained on the task corpus.

The corpus is the training seeds' ground-truth conversations (tool results from executing the
ground truth through `rods.env`), rendered with the chat template below. Training is
deterministic: the same corpus gives the same `tokenizer.json` bytes (tests build twice and
compare hashes); the BPE trainer orders merges by count and then by pair, so thread scheduling
does not change them.

Chat format (one line of text per message piece, no newlines between messages):

    <|system|>tools: cd, ls, mv, ...<|end|>            compact: function names only (tiny model)
    <|user|>Move 'final_report.pdf' ...<|end|>
    <|assistant|><tool_call>{"name":"cd","arguments":{"folder":"document"}}</tool_call><|end|>
    <|tool|>{"current_working_directory": "document"}<|end|>   cut to `tool_result_chars`
    <|assistant|>Done.<|end|>                          plain text ends the user turn

Template variables: `compact_tools` (default true; false renders each tool's JSON schema, for
models that can read it) and `tool_result_chars` (default 80; 0 = no cut). `<|end|>` is the
eos/end-of-turn token; `<|endoftext|>` pads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rods.tasks import Task

PAD, END = "<|endoftext|>", "<|end|>"  # Qwen2's pad/unk name, so Qwen2Tokenizer adds nothing
SPECIAL_TOKENS: tuple[str, ...] = (
    PAD,
    END,
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|tool|>",
    "<tool_call>",
    "</tool_call>",
)
VOCAB_SIZE = 2048  # docs/CPU-DEMO.md: small enough for a 4.7 M-param model, ~480 tokens a conversation
QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
TOOL_RESULT_CHARS = 80  # docs/CPU-DEMO.md: tool results cut to ~80 characters for the tiny model

CHAT_TEMPLATE = (
    "{%- set compact = compact_tools if compact_tools is defined else true -%}"
    "{%- set cut = tool_result_chars if tool_result_chars is defined else "
    + str(TOOL_RESULT_CHARS)
    + " -%}"
    "{%- if tools -%}<|system|>"
    "{%- if compact -%}{{ 'tools: ' }}"
    "{%- for t in tools -%}{{ t.function.name if t.function is defined else t.name }}"
    "{%- if not loop.last %}, {% endif -%}{%- endfor -%}"
    "{%- else -%}{{ 'tools:' }}"
    "{%- for t in tools -%}{{ '\\n' }}{{ t | tojson }}{%- endfor -%}"
    "{%- endif -%}<|end|>{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}<|system|>{{ m.content }}<|end|>"
    "{%- elif m.role == 'user' -%}<|user|>{{ m.content }}<|end|>"
    "{%- elif m.role == 'assistant' -%}<|assistant|>{{ m.content if m.content else '' }}"
    "{%- if m.tool_calls is defined and m.tool_calls -%}"
    "{%- for c in m.tool_calls -%}{%- set f = c.function if c.function is defined else c -%}"
    "{%- if m.content or not loop.first %}\n{% endif -%}"
    '<tool_call>{"name":{{ f.name | tojson }},"arguments":'
    "{{ (f.arguments | tojson) if f.arguments is mapping else f.arguments }}}</tool_call>"
    "{%- endfor -%}{%- endif -%}<|end|>"
    "{%- elif m.role == 'tool' -%}<|tool|>"
    "{{ m.content[:cut] if cut and cut > 0 else m.content }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def render_template(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, gen: bool, **kwargs: Any
) -> str:
    """Render `CHAT_TEMPLATE` without a tokenizer (to build the tokenizer's own corpus), in the
    same sandboxed Jinja environment settings transformers uses."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, tools=tools, add_generation_prompt=gen, **kwargs
    )


def corpus_texts(tasks: Sequence[Task], max_steps_per_turn: int = 5) -> list[str]:
    """The rendered ground-truth conversation of every task, in the given order."""
    from rods.env import GroundTruthCache
    from trainer.chat import ground_truth_conversation

    cache = GroundTruthCache()
    texts = []
    for task in tasks:
        conv = ground_truth_conversation(task, cache, max_steps_per_turn=max_steps_per_turn)
        texts.append(render_template(conv.messages, conv.tools, gen=False))
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts`, special tokens first (ids 0..7)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Qwen2's components exactly: `AutoTokenizer` loads a qwen2 model's tokenizer as
    # `Qwen2Tokenizer`, which rebuilds them from the vocab and merges; identical components give
    # identical ids whichever way the directory is loaded.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def wrap_tokenizer(tok: Any) -> Any:
    """The trained tokenizer as a transformers fast tokenizer with the chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        unk_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )


def build_tokenizer(tasks: Sequence[Task], vocab_size: int = VOCAB_SIZE) -> Any:
    """Train on the tasks' rendered ground-truth conversations and wrap for transformers."""
    return wrap_tokenizer(train_tokenizer(corpus_texts(tasks), vocab_size))
