"""The multi-turn loop every rollout engine shares: episodes, token bookkeeping, stop rules.

An engine subclasses `MultiTurnEngine` and decides only how rows are batched and decoded
(`_run`); `Row` is one rollout in flight; `sample_tokens` is the shared sampler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from rods.env import Episode, GroundTruthCache
from rods.env.tools import openai_tools
from rods.tasks import Task
from trainer.chat import ChatRenderer, end_of_turn_id, user_turn_messages
from trainer.types import RolloutSettings, Trajectory


@dataclass
class Row:
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

    def _new_rows(self, task: Task, group_size: int) -> list[Row]:
        rows = []
        prompt: list[int] | None = None
        for _ in range(group_size):
            ep = Episode(
                task,
                self.cache,
                max_steps_per_turn=self.settings.max_steps_per_turn,
                protocol=self.settings.protocol,  # type: ignore[arg-type]
                hints=self.settings.env_hints,
            )
            tools = openai_tools(ep.tools())
            opening = ep.opening()
            if prompt is None:
                prompt = self.renderer.prompt_ids(opening, tools)
            row = Row(
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
    def _run(self, rows: list[Row]) -> None:
        """Generate every row to its end (hf: continuous batching; vllm: its own scheduler)."""

    @abstractmethod
    def sync_weights(self, model: Any) -> None:
        """Make the engine sample from `model`'s current weights."""

    @staticmethod
    def _begin_message(r: Row) -> None:
        r.msg_start, r.generating, r.ended_by_eos, r.calls_in_msg = len(r.token_ids), True, False, 0

    def _finish(self, row: Row) -> Trajectory:
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

    def _accept(self, r: Row, tok: int, logp: float) -> None:
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

    def _closes_call(self, r: Row, tok: int) -> bool:
        if self.close_id is not None:
            closed = tok == self.close_id
        else:  # the tag spans several tokens: look at the message text
            text = self.tokenizer.decode(r.token_ids[r.msg_start :], skip_special_tokens=False)
            closed = text.count("</tool_call>") > r.calls_in_msg
        r.calls_in_msg += closed
        return closed

    def _step_env(self, r: Row) -> None:
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
