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
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from rods.env import Episode, GroundTruthCache, Score
from rods.env.tools import openai_tools
from rods.tasks import Task, ToolCall
from trainer.chat import ChatRenderer, end_of_turn_id, user_turn_messages
from trainer.config import RolloutConfig


@dataclass
class Trajectory:
    task_id: str
    token_ids: list[int]  # the full sequence: prompt, messages, tool results, user turns
    loss_mask: list[int]  # 1 only on tokens the policy sampled
    logprobs: list[
        float
    ]  # log π(token) of sampled tokens under the unmodified model; 0.0 elsewhere
    reward: float  # R_P = score.progress (NaN if unscorable)
    correct: bool  # officially correct (every non-empty turn succeeded)
    score: Score
    stop_reason: str  # the episode's: "completed" | "truncated:max_tokens"
    n_generated: int  # sum(loss_mask)
    tool_errors: dict[str, int] = field(default_factory=dict)  # error code -> count
    messages_cut: int = 0  # messages ended by the engine (max_new_tokens / max calls), not by eos
    # the executed calls per user turn reached (for rods.env.official.official_correct)
    calls_per_turn: list[list[ToolCall]] = field(default_factory=list)


class RolloutEngine(Protocol):
    def rollout(self, tasks_B: list[Task], group_size: int) -> list[list[Trajectory]]: ...

    def sync_weights(self, model: Any) -> None: ...


@dataclass(frozen=True)
class RolloutSettings:
    temperature: float = 1.0  # sampling temperature (ignored when greedy)
    top_p: float = 1.0  # nucleus sampling; 1.0 = the full distribution
    max_new_tokens: int = 64  # per assistant message (CPU-DEMO: ≤ 64 tokens a line)
    max_total_tokens: int = 1024  # per trajectory; the episode is truncated when it runs out
    max_steps_per_turn: int = 5  # calling messages per user turn (rods.env.episode default)
    max_calls_per_message: int = 3  # a message is cut after this many </tool_call> tags
    greedy: bool = False  # argmax decoding (evaluation)
    compact_tools: bool = True  # template kwarg: tool names only (tiny model) vs JSON schemas
    tool_result_chars: int = 80  # template kwarg: tool results cut to this many characters
    seed: int | None = None  # own sampling generator; None = torch's global RNG (checkpointed)

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> RolloutSettings:
        """From the trainer's `RolloutConfig` (fields of the same name), plus overrides."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in cfg.model_dump().items() if k in names}
        return cls(**{**values, **overrides})

    def template_kwargs(self) -> dict[str, Any]:
        return {"compact_tools": self.compact_tools, "tool_result_chars": self.tool_result_chars}


@dataclass
class _Row:
    """One rollout in flight."""

    task: Task
    ep: Episode
    tools: list[dict[str, Any]]  # shown in the system part (turn 0)
    shown: set[str]
    history: list[dict[str, Any]]  # messages so far (the renderer's input)
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    n_fed: int = 0  # token_ids[:n_fed] are in the KV cache
    msg_start: int = 0  # where the message being generated starts in token_ids
    generating: bool = False
    ended_by_eos: bool = False
    calls_in_msg: int = 0
    messages_cut: int = 0


def sample_tokens(
    logits_N_V: torch.Tensor, settings: RolloutSettings, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next tokens and their log-probs under the unmodified distribution. Pure but for the RNG."""
    logp_N_V = torch.log_softmax(logits_N_V, dim=-1)
    if settings.greedy:
        tok_N = logits_N_V.argmax(dim=-1)
    else:
        scaled_N_V = logits_N_V / max(settings.temperature, 1e-5)
        probs_N_V = torch.softmax(scaled_N_V, dim=-1)
        if settings.top_p < 1.0:
            sorted_N_V, order_N_V = probs_N_V.sort(dim=-1, descending=True)
            before_N_V = sorted_N_V.cumsum(-1) - sorted_N_V  # mass strictly above each token
            sorted_N_V = sorted_N_V.masked_fill(before_N_V >= settings.top_p, 0.0)
            probs_N_V = torch.zeros_like(probs_N_V).scatter(-1, order_N_V, sorted_N_V)
        tok_N = torch.multinomial(probs_N_V, 1, generator=generator).squeeze(-1)
    return tok_N, logp_N_V.gather(-1, tok_N[:, None]).squeeze(-1)


def _growing_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer that appends into preallocated, doubling buffers instead of `torch.cat`
        (which copies the whole cache every decode step; it was the largest cost on CPU)."""

        _buf_k: torch.Tensor | None = None
        _buf_v: torch.Tensor | None = None

        def update(self, key_states, value_states, *args, **kwargs):  # noqa: ANN001, ANN202
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n_old = self.keys.shape[-2] if self.keys.numel() else 0
            n_new = n_old + key_states.shape[-2]
            buf = self._buf_k
            if (
                buf is None
                or buf.shape[-2] < n_new
                or buf.shape[0] != key_states.shape[0]
                or (n_old and self.keys.data_ptr() != buf.data_ptr())  # replaced by select/compact
            ):
                N, H, _, D = key_states.shape
                cap = max(2 * n_new, 256)
                self._buf_k = key_states.new_empty((N, H, cap, D))
                self._buf_v = value_states.new_empty((N, H, cap, D))
                if n_old:
                    self._buf_k[:, :, :n_old] = self.keys
                    self._buf_v[:, :, :n_old] = self.values
            self._buf_k[:, :, n_old:n_new] = key_states
            self._buf_v[:, :, n_old:n_new] = value_states
            self.keys = self._buf_k[:, :, :n_new]
            self.values = self._buf_v[:, :, :n_new]
            return self.keys, self.values

        def keep_rows(self, idx: list[int]) -> None:
            """Keep rows `idx` (ascending) by moving them down in place: no new buffer, and
            each moved row is copied once (`batch_select_indices` gathers into a new tensor,
            which the next `update` then copies into a new buffer)."""
            if self._buf_k is None or self.keys.data_ptr() != self._buf_k.data_ptr():
                t = torch.tensor(idx, dtype=torch.long, device=self.keys.device)
                self.batch_select_indices(t)
                return
            K = self.keys.shape[-2]
            for j, i in enumerate(idx):
                if i != j:
                    self._buf_k[j, :, :K].copy_(self._buf_k[i, :, :K])
                    self._buf_v[j, :, :K].copy_(self._buf_v[i, :, :K])
            self._buf_k, self._buf_v = self._buf_k[: len(idx)], self._buf_v[: len(idx)]
            self.keys, self.values = self._buf_k[:, :, :K], self._buf_v[:, :, :K]

        def assign(self, keys: torch.Tensor, values: torch.Tensor) -> None:
            """Replace the contents, writing into the current buffer when they fit."""
            buf = self._buf_k
            if buf is None or buf.shape[0] != keys.shape[0] or buf.shape[-2] < keys.shape[-2]:
                self.keys, self.values = keys, values  # the next `update` makes a new buffer
                return
            K = keys.shape[-2]
            self._buf_k[:, :, :K].copy_(keys)
            self._buf_v[:, :, :K].copy_(values)
            self.keys, self.values = self._buf_k[:, :, :K], self._buf_v[:, :, :K]

    return GrowingLayer


class _BatchCache:
    """A KV cache over rows with holes, its key mask, and the forward pass that extends it."""

    def __init__(self, model: Any, n_rows: int, pad_id: int, device: torch.device):
        from transformers.cache_utils import Cache

        self.model = model
        self.pad_id = pad_id
        self.device = device
        self.kv = Cache(layer_class_to_replicate=_growing_layer_class())
        self.keep_N_K = torch.zeros((n_rows, 0), dtype=torch.bool, device=device)
        # Only the last position's logits are used: models that can skip the LM head elsewhere
        # (transformers' `logits_to_keep`) are asked to; it saves ~10 % of a chunk's compute.
        takes = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.last_logits_only = {"logits_to_keep": 1} if takes else {}

    def select(self, idx: list[int]) -> None:
        """Keep only these rows (strictly ascending indices), moved down in place."""
        if len(idx) == self.keep_N_K.shape[0]:
            return
        for layer in self.kv.layers:
            if layer.is_initialized:
                layer.keep_rows(idx)
        self.keep_N_K = self.keep_N_K[torch.tensor(idx, dtype=torch.long, device=self.device)]

    def compact(self) -> None:
        """Squeeze the holes out: each row's real keys move right-aligned into K' = the longest
        row's real length (left padding only). Positions are baked into the cached keys (RoPE),
        so moving them changes nothing the model computes; it bounds the cache to real tokens."""
        n_N = self.keep_N_K.sum(dim=1)
        K_new = int(n_N.max()) if n_N.numel() else 0
        if K_new == self.keep_N_K.shape[1]:
            return
        N, K = self.keep_N_K.shape
        # source index of each kept key, in order, right-aligned into K_new slots
        order_N_K = torch.argsort((~self.keep_N_K).to(torch.int8), dim=1, stable=True)  # kept first
        slot_K = torch.arange(K_new, device=self.device)
        offset_N = K_new - n_N  # left padding per row
        take_N_Kn = (slot_K[None, :] - offset_N[:, None]).clamp(min=0)
        src_N_Kn = order_N_K.gather(1, take_N_Kn)
        new_keep_N_Kn = slot_K[None, :] >= offset_N[:, None]
        for layer in self.kv.layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                continue
            _, H, _, D = layer.keys.shape
            index = src_N_Kn[:, None, :, None].expand(N, H, K_new, D)
            layer.assign(layer.keys.gather(2, index), layer.values.gather(2, index))
        self.keep_N_K = new_keep_N_Kn

    @torch.no_grad()
    def prefill(self, chunks_N: list[list[int]]) -> torch.Tensor:
        """The first forward of an empty cache, computing each distinct prompt once (the G
        rollouts of a task share theirs) and copying its keys and values to every row using it."""
        if self.keep_N_K.shape[1] != 0:
            raise RuntimeError("prefill needs an empty cache")
        first: dict[tuple[int, ...], int] = {}
        src_N = [first.setdefault(tuple(c), len(first)) for c in chunks_N]
        uniq_U = [list(c) for c in first]
        self.keep_N_K = self.keep_N_K[: len(uniq_U)]
        logits_U_V = self.forward(uniq_U, [0] * len(uniq_U))
        idx_N = torch.tensor(src_N, dtype=torch.long, device=self.device)
        self.kv.batch_select_indices(idx_N)
        self.keep_N_K = self.keep_N_K[idx_N]
        return logits_U_V[idx_N]

    @torch.no_grad()
    def forward(
        self, chunks_n: list[list[int]], start_pos_n: list[int], rows: list[int] | None = None
    ) -> torch.Tensor:
        """Feed rows their chunks (left-padded; empty = a hole); logits at the last position.

        `rows=None` computes every row (`chunks_n` has one chunk per row). Otherwise only the
        listed rows are computed, over a copy of their part of the cache, and every other row
        gets holes in the new columns: a long chunk for a few rows then costs those rows only,
        not the whole batch padded to its length. Returns logits for the computed rows.
        """
        n, L = len(chunks_n), max(1, max(len(c) for c in chunks_n))
        ids_n_L = torch.full((n, L), self.pad_id, dtype=torch.long)
        new_n_L = torch.zeros((n, L), dtype=torch.bool)
        pos_n_L = torch.zeros((n, L), dtype=torch.long)
        for i, (chunk, start) in enumerate(zip(chunks_n, start_pos_n, strict=True)):
            if chunk:
                ids_n_L[i, L - len(chunk) :] = torch.tensor(chunk, dtype=torch.long)
                new_n_L[i, L - len(chunk) :] = True
                pos_n_L[i, L - len(chunk) :] = torch.arange(start, start + len(chunk))
        new_n_L = new_n_L.to(self.device)
        if rows is None:
            kv, keep_n_K = self.kv, self.keep_N_K
        else:
            from transformers.cache_utils import Cache, DynamicLayer

            idx_n = torch.tensor(rows, dtype=torch.long, device=self.device)
            keep_n_K = self.keep_N_K[idx_n]
            layers = []
            for main in self.kv.layers:
                layer = DynamicLayer()
                layer.lazy_initialization(main.keys, main.values)
                layer.keys, layer.values = main.keys[idx_n], main.values[idx_n]
                layers.append(layer)
            kv = Cache(layers=layers)
        k_old = keep_n_K.shape[1]
        keep_n_K = torch.cat([keep_n_K, new_n_L], dim=1)
        K = k_old + L
        k_K = torch.arange(K, device=self.device)
        q_L = k_old + torch.arange(L, device=self.device)
        causal_L_K = k_K[None, :] <= q_L[:, None]
        self_L_K = k_K[None, :] == q_L[:, None]  # a hole's query sees itself: no empty softmax row
        allowed_n_L_K = (keep_n_K[:, None, :] & causal_L_K[None]) | self_L_K[None]
        dtype = self.model.dtype
        mask_n_1_L_K = torch.zeros((n, 1, L, K), dtype=dtype, device=self.device)
        mask_n_1_L_K.masked_fill_(~allowed_n_L_K[:, None], torch.finfo(dtype).min)
        out = self.model(
            input_ids=ids_n_L.to(self.device),
            attention_mask=mask_n_1_L_K,
            position_ids=pos_n_L.to(self.device),
            past_key_values=kv,
            use_cache=True,
            **self.last_logits_only,
        )
        if rows is None:
            self.kv, self.keep_N_K = out.past_key_values, keep_n_K
        else:  # the computed rows' new keys and values go into their rows; holes elsewhere
            N = self.keep_N_K.shape[0]
            new_N_L = torch.zeros((N, L), dtype=torch.bool, device=self.device)
            new_N_L[idx_n] = new_n_L
            self.keep_N_K = torch.cat([self.keep_N_K, new_N_L], dim=1)
            for main, sub in zip(self.kv.layers, out.past_key_values.layers, strict=True):
                k_n, v_n = sub.keys[:, :, -L:], sub.values[:, :, -L:]  # n, H, L, D
                k_N = k_n.new_zeros((N, *k_n.shape[1:]))
                v_N = v_n.new_zeros((N, *v_n.shape[1:]))
                k_N[idx_n], v_N[idx_n] = k_n, v_n
                main.update(k_N, v_N)
        return out.logits[:, -1].float()  # n, V

    def real_fraction(self) -> float:
        """Share of cached positions that are real tokens (the rest are holes)."""
        return float(self.keep_N_K.float().mean()) if self.keep_N_K.numel() else 1.0


class MultiTurnEngine(ABC):
    """What every engine shares: episodes, token bookkeeping, stop rules, env steps.

    Subclasses implement `_run(rows)`: generate messages for the live rows (calling `_accept`
    for each sampled token until the row stops generating, then `_step_env` on that row) until
    every row's episode is over; when and how rows are batched is theirs to decide.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: RolloutSettings,
        *,
        cache: GroundTruthCache | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.cache = cache or GroundTruthCache()
        self.renderer = ChatRenderer(tokenizer, settings.template_kwargs())
        self.eos_id = end_of_turn_id(tokenizer)
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        extra = gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else []
        self.stop_ids = {self.eos_id, *extra}
        close = tokenizer.convert_tokens_to_ids("</tool_call>")
        self.close_id = (
            close if isinstance(close, int) and close != tokenizer.unk_token_id else None
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.generator = None
        if settings.seed is not None:
            self.generator = torch.Generator().manual_seed(settings.seed)

    # ------------------------------------------------------------ episodes

    def _new_rows(self, task: Task, group_size: int) -> list[_Row]:
        rows = []
        prompt: list[int] | None = None
        for _ in range(group_size):
            ep = Episode(task, self.cache, max_steps_per_turn=self.settings.max_steps_per_turn)
            tools = openai_tools(ep.tools())
            opening = ep.opening()
            if prompt is None:
                prompt = self.renderer.prompt_ids(opening, tools)
            row = _Row(
                task,
                ep,
                tools,
                {t["function"]["name"] for t in tools},
                list(opening),
                list(prompt),
                [0] * len(prompt),
                [0.0] * len(prompt),
            )
            if len(prompt) >= self.settings.max_total_tokens:
                ep.truncate("max_tokens")
            rows.append(row)
        return rows

    def rollout(self, tasks_B: list[Task], group_size: int) -> list[list[Trajectory]]:
        rows_B_G = [self._new_rows(task, group_size) for task in tasks_B]
        self._run([r for rows in rows_B_G for r in rows])
        return [[self._finish(r) for r in rows] for rows in rows_B_G]

    @abstractmethod
    def _run(self, rows: list[_Row]) -> None:
        """Generate every row to its end (hf: continuous batching; vllm: its own scheduler)."""

    @abstractmethod
    def sync_weights(self, model: Any) -> None:
        """Make the engine sample from `model`'s current weights."""

    @staticmethod
    def _begin_message(r: _Row) -> None:
        r.msg_start, r.generating, r.ended_by_eos, r.calls_in_msg = len(r.token_ids), True, False, 0

    def _finish(self, row: _Row) -> Trajectory:
        score = row.ep.score()
        return Trajectory(
            task_id=row.task.id,
            token_ids=row.token_ids,
            loss_mask=row.loss_mask,
            logprobs=row.logprobs,
            reward=score.progress,
            correct=score.correct,
            score=score,
            stop_reason=row.ep.stop_reason or "unfinished",
            n_generated=sum(row.loss_mask),
            tool_errors=dict(score.errors),
            messages_cut=row.messages_cut,
            calls_per_turn=[list(c) for c in row.ep.calls_per_turn],
        )

    def _accept(self, r: _Row, tok: int, logp: float) -> None:
        """Append one sampled token and decide whether the message goes on."""
        s = self.settings
        r.token_ids.append(tok)
        r.loss_mask.append(1)
        r.logprobs.append(logp)
        n_msg = len(r.token_ids) - r.msg_start
        if tok in self.stop_ids:
            r.generating, r.ended_by_eos = False, True
        elif self._closes_call(r, tok) and r.calls_in_msg >= s.max_calls_per_message:
            r.generating = False
        elif n_msg >= s.max_new_tokens:
            r.generating = False
        if len(r.token_ids) >= s.max_total_tokens and (r.generating or not r.ended_by_eos):
            r.generating = False
            r.ep.truncate("max_tokens")

    def _closes_call(self, r: _Row, tok: int) -> bool:
        if self.close_id is not None:
            closed = tok == self.close_id
        else:  # the tag spans several tokens: look at the message text
            text = self.tokenizer.decode(r.token_ids[r.msg_start :], skip_special_tokens=False)
            closed = text.count("</tool_call>") > r.calls_in_msg
        r.calls_in_msg += closed
        return closed

    def _step_env(self, r: _Row) -> None:
        """Execute the finished message; append the continuation's ids (or truncate)."""
        if r.ep.done:  # truncated while generating
            return
        s = self.settings
        msg = r.token_ids[r.msg_start :]
        if r.ended_by_eos:
            msg = msg[:-1]
        else:  # cut by the engine: close the message with an end token the policy did not emit
            r.messages_cut += 1
            if len(r.token_ids) + 1 > s.max_total_tokens:
                r.ep.truncate("max_tokens")
                return
            r.token_ids.append(self.eos_id)
            r.loss_mask.append(0)
            r.logprobs.append(0.0)
        text = self.tokenizer.decode(msg, skip_special_tokens=False)
        res = r.ep.step(text)
        if r.ep.done:
            return
        new = [
            *res.tool_messages,
            *user_turn_messages(res.next_user, r.shown, r.ep, s.compact_tools),
        ]
        ext = self.renderer.continuation_ids(r.history, text, new, r.tools)
        r.history += [{"role": "assistant", "content": text}, *new]
        if len(r.token_ids) + len(ext) + 1 > s.max_total_tokens:  # no room for one more token
            r.ep.truncate("max_tokens")
            return
        r.token_ids += ext
        r.loss_mask += [0] * len(ext)
        r.logprobs += [0.0] * len(ext)


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

    def _run(self, rows: list[_Row]) -> None:
        was_training = self.model.training
        config = getattr(self.model, "config", None)
        attn = getattr(config, "_attn_implementation", None)
        self.model.eval()
        if config is not None and self.device.type == "cpu" and attn == "sdpa":
            # Decoding one query over a masked cache: eager attention measured 1.25x faster than
            # sdpa end to end on the 2-core CPU (benchmarks/bench_rollout.py setting).
            config._attn_implementation = "eager"
        try:
            for part in ([r] for r in rows) if self.sequential else [rows]:
                self._run_batch(part)
        finally:
            self.model.train(was_training)
            if config is not None:
                config._attn_implementation = attn

    def _run_batch(self, rows: list[_Row]) -> None:
        """Decode until every episode is over; rows advance independently.

        Each decode forward feeds every generating row its last sampled token. A row whose
        message ends is stepped in the environment at once and waits, as a hole, with its
        continuation (tool results, next user turn, generation prompt) unfed. Waiting rows are
        fed in a forward of their own (`_BatchCache.forward(rows=…)`, so the generating rows
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
        batch = _BatchCache(self.model, len(rows), self.pad_id, self.device)
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


def make_engine(
    cfg: Any, model: Any, tokenizer: Any, *, device: str | torch.device = "cpu", **overrides: Any
) -> MultiTurnEngine:
    """The configured engine (`cfg`: the trainer's RolloutConfig; `overrides`: e.g. greedy=True)."""
    settings = RolloutSettings.from_config(cfg, **overrides)
    if cfg.engine == "vllm":
        from trainer.rollout_vllm import VLLMRolloutEngine

        return VLLMRolloutEngine(model, tokenizer, settings)
    return HFRolloutEngine(model, tokenizer, settings, device=device, refill_frac=cfg.refill_frac)
