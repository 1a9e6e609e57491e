"""The `hf` engine: batched multi-turn rollouts with a transformers causal LM (CPU or GPU)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from rods.env import GroundTruthCache
from trainer.config import RolloutConfig
from trainer.rollout.base import MultiTurnEngine, Row, sample_tokens
from trainer.rollout.kv_cache import BatchCache
from trainer.types import RolloutSettings


class HFRolloutEngine(MultiTurnEngine):
    """Batched multi-turn rollouts with a transformers causal LM (CPU or GPU).

    `sequential=True` runs one rollout at a time through the same code (the reference).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: RolloutSettings,
        *,
        device: str | torch.device = "cpu",
        cache: GroundTruthCache | None = None,
        sequential: bool = False,
        refill_frac: float = RolloutConfig.model_fields["refill_frac"].default,
    ):
        super().__init__(model, tokenizer, settings, cache=cache)
        self.device = torch.device(device)
        self.sequential = sequential
        # Waiting rows are fed once they are this share of the rows in flight (1.0 = lock-step
        # rounds: one message per row per round). See `_run_batch`.
        self.refill_frac = refill_frac

    def sync_weights(self, model: Any) -> None:
        self.model = model  # same process, same tensors: nothing to copy

    def _run(self, rows: list[Row]) -> None:
        was_training = self.model.training
        config = getattr(self.model, "config", None)
        attn = getattr(config, "_attn_implementation", None)
        self.model.eval()
        if config is not None and self.device.type == "cpu" and attn == "sdpa":
            # Decoding one query over a masked cache: eager attention measured 1.25x faster than
            # sdpa end to end on the 2-core CPU (benchmarks/bench_rollout.py setting).
            config._attn_implementation = "eager"
        try:
            with _decode_attention(self.device):
                for part in ([r] for r in rows) if self.sequential else [rows]:
                    self._run_batch(part)
        finally:
            self.model.train(was_training)
            if config is not None:
                config._attn_implementation = attn

    def _run_batch(self, rows: list[Row]) -> None:
        """Decode until every episode is over; rows advance independently.

        Each decode forward feeds every generating row its last sampled token. A row whose
        message ends is stepped in the environment at once and waits, as a hole, with its
        continuation (tool results, next user turn, generation prompt) unfed. Waiting rows are
        fed in a forward of their own (`BatchCache.forward(rows=…)`, so the generating rows
        are not padded to the continuation's length) once they are at least `refill_frac` of
        the rows in flight, or nothing else is generating; then they generate again. Finished
        rows leave the batch at once (measured: cheaper than computing them as holes until the
        next squeeze); holes are squeezed out of the cache whenever they are more than half of
        it (squeezing more often measured slower).
        """
        s = self.settings
        rows = [r for r in rows if not r.ep.done]
        if not rows:
            return
        batch = BatchCache(self.model, len(rows), self.pad_id, self.device)
        for r in rows:
            self._begin_message(r)
        fed = rows  # rows with a fresh next-token distribution, in the order of `logits_n_V`
        logits_n_V = batch.prefill([r.token_ids for r in rows])  # shared prompts computed once
        for r in rows:
            r.n_fed = len(r.token_ids)
        while True:
            tok_n, logp_n = sample_tokens(logits_n_V, s, self.generator)
            for r, tok, lp in zip(fed, tok_n.tolist(), logp_n.tolist(), strict=True):
                self._accept(r, tok, lp)
                if not r.generating:
                    self._step_env(r)  # its message ended: the episode goes on or is over
            if all(r.ep.done for r in rows):
                return
            if any(r.ep.done for r in rows):  # finished rows leave the batch at once
                keep = [i for i, r in enumerate(rows) if not r.ep.done]
                batch.select(keep)
                rows = [rows[i] for i in keep]
            if batch.real_fraction() < 0.5:
                batch.compact()
            waiting = [i for i, r in enumerate(rows) if not r.generating]  # none is done here
            decoding = [i for i, r in enumerate(rows) if r.generating]
            logits, fed = [], []
            if waiting and (not decoding or len(waiting) >= self.refill_frac * len(rows)):
                chunks = [rows[i].token_ids[rows[i].n_fed :] for i in waiting]
                logits.append(batch.forward(chunks, [rows[i].n_fed for i in waiting], waiting))
                for i, c in zip(waiting, chunks, strict=True):
                    rows[i].n_fed += len(c)
                    self._begin_message(rows[i])
                    fed.append(rows[i])
            if decoding:
                last = set(decoding)  # each has exactly one unfed token: its last sampled one
                chunks = [r.token_ids[-1:] if i in last else [] for i, r in enumerate(rows)]
                logits.append(batch.forward(chunks, [r.n_fed for r in rows])[decoding])
                for i in decoding:
                    rows[i].n_fed += 1
                    fed.append(rows[i])
            logits_n_V = torch.cat(logits)


# cuDNN's attention builds an execution plan for every new (batch, query, key) shape; decoding
# changes the key length at every token, so on a GPU that prefers it (Hopper) each call pays the
# plan build. The other kernels take the same masks without that cost.
_DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _decode_attention(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """SDPA without the cuDNN backend while decoding on CUDA; a no-op elsewhere."""
    return sdpa_kernel(_DECODE_BACKENDS) if device.type == "cuda" else contextlib.nullcontext()
