"""Multi-turn rollouts for TRL's `rollout_func`: our episode loop, TRL's tensors.

TRL calls `rollout_func(prompts, trainer)` once per generation with this process's rows (each
prompt is a task id, already repeated G times by TRL's sampler; a task's G rows may be split
across processes). We run one multi-turn episode per row and hand TRL what it trains on:

    prompt_ids     the rendered opening (system line with tools + first user turn + generation prompt)
    completion_ids everything after it: assistant messages, tool results, later user turns
    env_mask       1 exactly on the tokens the policy sampled (TRL's loss mask for the completion)
    logprobs       log π of those tokens at sampling time (0.0 elsewhere; masked out)
    rods_trajectory  the episode's summary (task id, R_P, correctness, stops, tool errors), which
                   TRL forwards to the reward function as a column

Two generators:
- `hf` (CPU, one GPU, or each GPU on its own): our batched `HFRolloutEngine` over the trainer's
  current model (unwrapped for generation), with a sampling generator seeded by (seed, step,
  process), so a resumed step samples as it did and processes do not repeat each other.
- the TRL vLLM server (`use_vllm`, `vllm_mode = "server"`): `ServerRolloutEngine`, the same
  episode loop in lock-step rounds; each round gathers every process's live rows and the main
  process makes ONE `VLLMClient.generate` call for all of them (one call per assistant turn),
  then scatters the messages back. TRL pushes the new weights to the server before each
  rollout_func call. Tested on CPU with a stand-in client (tests/integration/test_trl_server.py);
  not yet run against a real vLLM server.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import torch

from rods.env import GroundTruthCache
from trainer.rollout.base import MultiTurnEngine, Row
from trainer.rollout.hf import HFRolloutEngine
from trainer.types import RolloutSettings, Trajectory

# One round of generation: live rows' full token ids -> (message tokens, their log-probs) each;
# None once no process has a live row left (a collective: every process calls it each round).
GenerateRound = Callable[[list[list[int]]], list[tuple[list[int], list[float]]] | None]


def summary(t: Trajectory) -> Trajectory:
    """The trajectory without its token lists: what crosses processes for reports and metrics."""
    return dataclasses.replace(t, token_ids=[], loss_mask=[], logprobs=[], calls_per_turn=[])


def to_trl(trajs_N: Sequence[Trajectory], eos_id: int) -> dict[str, list[Any]]:
    """Split each trajectory at its first sampled token into TRL's prompt / completion fields."""
    out: dict[str, list[Any]] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask")}
    for t in trajs_N:
        p = t.loss_mask.index(1) if 1 in t.loss_mask else len(t.token_ids)
        completion, mask, logps = t.token_ids[p:], t.loss_mask[p:], t.logprobs[p:]
        if not completion:  # truncated before the first token: one masked end token (TRL needs one)
            completion, mask, logps = [eos_id], [0], [0.0]
        out["prompt_ids"].append(t.token_ids[:p])
        out["completion_ids"].append(completion)
        out["env_mask"].append(mask)
        out["logprobs"].append(logps)
    out["rods_trajectory"] = [summary(t) for t in trajs_N]
    return out


def step_generator(seed: int, step: int, process: int, device: torch.device) -> torch.Generator:
    """A sampling generator that depends only on (seed, step, process)."""
    state = int(np.random.SeedSequence([seed, step, process]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


class ServerRolloutEngine(MultiTurnEngine):
    """The multi-turn loop in lock-step rounds, one collective `generate_round` per round."""

    def __init__(self, model: Any, tokenizer: Any, settings: RolloutSettings, generate_round: GenerateRound,
                 *, cache: GroundTruthCache | None = None):
        super().__init__(model, tokenizer, settings, cache=cache)
        self.generate_round = generate_round
        self.rounds = 0  # generate calls made (a metric and the tests' check)

    def sync_weights(self, model: Any) -> None:
        self.model = model  # TRL pushes weights to the server itself (before rollout_func)

    def _run(self, rows: list[Row]) -> None:
        live = [r for r in rows if not r.ep.done]
        while True:
            outs = self.generate_round([list(r.token_ids) for r in live])
            if outs is None:  # no live row in any process
                return
            self.rounds += 1
            for r, (tokens, logps) in zip(live, outs, strict=True):
                self._begin_message(r)
                for tok, lp in zip(tokens, logps, strict=True):
                    self._accept(r, tok, lp)
                    if not r.generating:
                        break  # tokens past a stop rule are discarded
                r.generating = False
                self._step_env(r)
            live = [r for r in live if not r.ep.done]


def server_round(client: Any, settings: RolloutSettings, stop_ids: Collection[int]) -> GenerateRound:
    """A `GenerateRound` over TRL's vLLM server: gather, one generate on main, scatter.

    `client` is the main process's `trl` `VLLMClient` (None on the other processes).
    """
    from accelerate.utils import broadcast_object_list, gather_object

    def generate_round(prompts: list[list[int]]) -> list[tuple[list[int], list[float]]] | None:
        per_process = gather_object([prompts])  # [process][row][token]
        if not any(per_process):
            return None
        payload: list[Any] = [None]
        if client is not None:
            flat = [p for ps in per_process for p in ps]
            got = client.generate(
                prompts=flat, n=1, temperature=0.0 if settings.greedy else settings.temperature,
                top_p=1.0 if settings.greedy else settings.top_p, max_tokens=settings.max_new_tokens,
                logprobs=0, generation_kwargs={"stop_token_ids": sorted(stop_ids)},
            )
            lps = [[float(tok[0]) for tok in seq] for seq in got["logprobs"]]  # [row][token][k=0]
            messages = list(zip(got["completion_ids"], lps, strict=True))
            sizes = [len(ps) for ps in per_process]
            starts = np.cumsum([0, *sizes]).tolist()
            payload = [[messages[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]]
        broadcast_object_list(payload, from_process=0)
        from accelerate import PartialState

        return payload[0][PartialState().process_index]

    return generate_round


class RolloutFunc:
    """TRL's `rollout_func`: episodes for this process's rows, split into TRL's fields."""

    def __init__(self, buffer: Any, tokenizer: Any, settings: RolloutSettings, *, seed: int,
                 refill_frac: float, use_server: bool = False):
        self.buffer = buffer  # task bodies by id (rods.store.contract.ReplayBuffer)
        self.tokenizer = tokenizer
        self.settings = settings
        self.seed = seed
        self.refill_frac = refill_frac
        self.use_server = use_server
        self.cache = GroundTruthCache()
        self.seconds = 0.0  # time of the last call (time/rollout)

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list[Any]]:
        t0 = time.perf_counter()
        tasks = self.buffer.get_tasks(list(prompts))
        acc = trainer.accelerator
        engine: MultiTurnEngine
        if self.use_server:
            model = acc.unwrap_model(trainer.model)
            client = getattr(trainer.vllm_generation, "vllm_client", None) if acc.is_main_process else None
            server = ServerRolloutEngine(model, self.tokenizer, self.settings, lambda _: None,
                                         cache=self.cache)
            server.generate_round = server_round(client, self.settings, server.stop_ids)
            engine = server
            groups = engine.rollout(tasks, 1)
        else:
            from trl.models import unwrap_model_for_generation

            with unwrap_model_for_generation(trainer.model_wrapped, acc) as model:
                engine = HFRolloutEngine(model, self.tokenizer, self.settings, device=acc.device,
                                         cache=self.cache, refill_frac=self.refill_frac)
                step = trainer.state.global_step
                engine.generator = step_generator(self.seed, step, acc.process_index, acc.device)
                groups = engine.rollout(tasks, 1)
        out = to_trl([g[0] for g in groups], engine.eos_id)
        self.seconds = time.perf_counter() - t0
        return out
