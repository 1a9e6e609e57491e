"""The `vllm` rollout engine: the same multi-turn loop as `hf`, generation by vLLM (GPU only).

vLLM is imported lazily, inside the class, so `trainer` imports without it; constructing the
engine without vLLM raises a RuntimeError naming the `gpu` extra. Each round sends every live
row's full token ids as a `TokensPrompt` (vLLM's prefix cache makes the shared prefix cheap), asks
for one message with the sampled tokens' log-probs, and feeds the tokens through the shared stop
rules (`MultiTurnEngine._accept`: eos, max calls per message, max new tokens, token budget);
tokens after a stop are discarded. `sync_weights(model)` loads the trainer's current weights
into vLLM's worker after each update.

Tested against a stand-in `vllm` module (tests/unit/test_rollout_vllm.py: the multi-turn loop,
stop rules, mask, log-probs, weight sync); not yet run against a real vLLM, as no GPU machine
has been lent to the project so far. The internal weight-loading hook (`collective_rpc` on the
worker's model runner) follows vLLM 0.8+ and may need adjusting to the installed version.
"""

from __future__ import annotations

from typing import Any

from rods.env import GroundTruthCache
from trainer.rollout.base import MultiTurnEngine, Row
from trainer.types import RolloutSettings


def _load_weights(worker: Any, weights: list[tuple[str, Any]]) -> None:
    """Runs inside a vLLM worker: copy named tensors into its model."""
    worker.model_runner.model.load_weights(weights=weights)


class VLLMRolloutEngine(MultiTurnEngine):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: RolloutSettings,
        *,
        model_path: str | None = None,
        gpu_memory_utilization: float = 0.5,
        cache: GroundTruthCache | None = None,
    ):
        try:
            import vllm
        except ImportError as e:
            raise RuntimeError(
                "the vllm rollout engine needs vLLM and a CUDA device: install the `gpu` extra "
                "(pip install -e '.[gpu]') or use rollout.engine = 'hf'"
            ) from e
        super().__init__(model, tokenizer, settings, cache=cache)
        self._vllm = vllm
        path = model_path or model.config._name_or_path
        self.llm = vllm.LLM(
            model=path,
            dtype="bfloat16",
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=settings.seed or 0,
        )

    def sync_weights(self, model: Any) -> None:
        self.model = model
        weights = [(k, v.detach().to("cpu")) for k, v in model.state_dict().items()]
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights

    def _run(self, rows: list[Row]) -> None:
        s = self.settings
        params = self._vllm.SamplingParams(
            temperature=0.0 if s.greedy else s.temperature,
            top_p=1.0 if s.greedy else s.top_p,
            max_tokens=s.max_new_tokens,
            stop_token_ids=sorted(self.stop_ids),
            logprobs=0,  # the sampled token's log-prob
        )
        live = [r for r in rows if not r.ep.done]
        while live:
            prompts = [self._vllm.TokensPrompt(prompt_token_ids=list(r.token_ids)) for r in live]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for r, out in zip(live, outputs, strict=True):
                self._begin_message(r)
                completion = out.outputs[0]
                for tok, lp in zip(completion.token_ids, completion.logprobs or [], strict=False):
                    self._accept(r, tok, lp[tok].logprob)
                    if not r.generating:
                        break
                r.generating = False
                self._step_env(r)
            live = [r for r in live if not r.ep.done]
