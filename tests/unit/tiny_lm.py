"""Test doubles for the trainer: a small locally built policy and a scripted causal LM.

- `small_policy(dir)`: the tiny Qwen2 builder with its tokenizer trained on a few demo tasks
  (seconds, not the full 400-task corpus); random weights.
- `ScriptedLM`: a stand-in causal LM whose next-token logits are a one-hot of a fixed target
  sequence at the *position id* of each query. Stateless, so it works batched, with holes, and
  with cache row selection; under greedy decoding it "generates" exactly the target's tokens at
  assistant positions, which lets tests compare an engine trajectory with the SFT sequence.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from rods.tasks import Task, load_split
from trainer.chat import demo_subset
from trainer.policy import build_tiny_policy


def demo_tasks(n: int) -> list[Task]:
    return demo_subset(load_split("train"))[:n]


def small_policy(out_dir: Path, seed: int = 0, n_corpus: int = 8) -> Path:
    return build_tiny_policy(out_dir, seed=seed, tasks=demo_tasks(n_corpus))


class ScriptedLM(torch.nn.Module):
    """logits[n, l] = one-hot(target[position_ids[n, l] + 1]) · 20 (eos past the end)."""

    def __init__(self, target: list[int], vocab_size: int, eos_id: int):
        super().__init__()
        self.target = target
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a dtype
        self.generation_config = SimpleNamespace(eos_token_id=eos_id)
        self.calls = 0

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor.dtype

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        use_cache=True,
        logits_to_keep=0,
    ):
        self.calls += 1
        N, L = input_ids.shape
        nxt = position_ids + 1
        table = torch.tensor(self.target + [self.eos_id])
        ids_N_L = table[nxt.clamp(max=len(self.target))]
        logits = torch.zeros(N, L, self.vocab_size)
        logits.scatter_(-1, ids_N_L[..., None], 20.0)
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


class EndsMessagesEarly(torch.nn.Module):
    """A real causal LM whose end-of-turn logit is boosted at every `every`-th position id.

    Messages then end after varying numbers of tokens that depend only on positions (so a
    batched and a one-at-a-time rollout still compute the same logits), and the rows of a batch
    fall out of step: the case continuous batching has to get right, with a real KV cache.
    """

    def __init__(self, model: torch.nn.Module, eos_id: int, every: int = 7):
        super().__init__()
        self.inner = model
        self.eos_id = eos_id
        self.every = every
        self.generation_config = model.generation_config

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def config(self) -> object:
        return self.inner.config

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kw):
        out = self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kw
        )
        end = (position_ids % self.every) == self.every - 1
        out.logits[..., self.eos_id] += torch.where(end, 100.0, 0.0).to(out.logits.dtype)
        return out
