"""The trainer's vocabulary: what a rollout produces and what produces it.

`Trajectory` is one multi-turn episode as tokens (loss mask, log-probs, score); a
`RolloutEngine` turns a batch of tasks into groups of trajectories; a `TaskSource` hands the loop
its batches and takes back its groups. Every other trainer module types against these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rods.env import Score
from rods.tasks import Task, ToolCall
from trainer.config import RolloutConfig, default_of


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
    """What an engine reads at run time: the `RolloutConfig` knobs of the same name (their
    defaults and comments live there) plus the run-time-only knobs declared here."""

    temperature: float = default_of(RolloutConfig, "temperature")  # ignored when greedy
    top_p: float = default_of(RolloutConfig, "top_p")
    max_new_tokens: int = default_of(RolloutConfig, "max_new_tokens")
    max_total_tokens: int = default_of(RolloutConfig, "max_total_tokens")
    max_steps_per_turn: int = default_of(RolloutConfig, "max_steps_per_turn")
    compact_tools: bool = default_of(RolloutConfig, "compact_tools")  # template kwarg
    # run-time only (not in the config file)
    max_calls_per_message: int = 3  # a message is cut after this many </tool_call> tags
    greedy: bool = False  # argmax decoding (evaluation)
    tool_result_chars: int = 80  # template kwarg: tool results cut to this many characters
    seed: int | None = None  # own sampling generator; None = torch's global RNG (checkpointed)
    protocol: str = "train"  # episode rules: "train" or "bfcl" (rods.env.episode)
    env_hints: bool = False  # tool error messages carry actionable hints (rods.env.hints)

    @classmethod
    def from_config(cls, cfg: RolloutConfig, **overrides: Any) -> RolloutSettings:
        """From the trainer's `RolloutConfig` (fields of the same name), plus overrides."""
        names = {f.name for f in dataclasses.fields(cls)} & RolloutConfig.model_fields.keys()
        return cls(**{**{name: getattr(cfg, name) for name in names}, **overrides})

    def template_kwargs(self) -> dict[str, Any]:
        return {"compact_tools": self.compact_tools, "tool_result_chars": self.tool_result_chars}


class TaskSource(Protocol):
    """Where a step's tasks come from, and what the loop tells it after each step and epoch."""

    def sample(self, step: int) -> list[Task]: ...

    def after_step(self, step: int, groups_B_G: Sequence[Sequence[Trajectory]]) -> dict[str, float]: ...

    def is_epoch_end(self, step: int) -> bool: ...

    def end_epoch(self, step: int) -> dict[str, float]: ...

    def pool_metrics(self) -> dict[str, float]: ...

    def state(self) -> dict[str, Any]: ...  # loop position saved in the checkpoint

    def restore(self, state: dict[str, Any]) -> None: ...
