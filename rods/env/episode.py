"""One single-use multi-turn episode over a fresh world: the loop a rollout engine drives.

    ep = Episode(task, cache)
    messages = ep.opening()                 # the first user turn
    while not ep.done:
        text = policy(messages, ep.tools())
        res = ep.step(text)                 # tool messages, and the next user turn when one starts
        messages += [assistant(text), *res.tool_messages, *res.next_user]
    score = ep.score()

Turn rules (as bfcl-eval's inference loop, with EnvTuning's step limit):
- an assistant message with no tool-call syntax ends the user turn;
- a message with calls executes them in order and returns one tool message per call; malformed
  calls come back as tool error messages (counted), and the turn goes on;
- after `max_steps_per_turn` calling messages the turn ends anyway;
- a miss_func turn opens with bfcl-eval's own message and reveals its held-out functions in the
  tool list from then on (any public method runs at any time, as in bfcl-eval; visibility only
  decides what the tool list shows).
`truncate()` ends an episode early (token budget): the turns not reached count as failed.

Two protocols (`protocol`):
- `train` (the rules above): malformed calls come back as tool error messages and the turn goes
  on; the step limit ends the turn.
- `bfcl` (bfcl-eval's multi-turn inference loop, `base_handler.inference_multi_turn_FC` with the
  Qwen-style `<tool_call>` decoder): a block that does not decode is dropped without a message; a
  message with no decodable call ends the turn (a decode failure and a plain answer alike); the
  step limit (`bfcl_step_limit()`: bfcl-eval quits once its step count passes
  MAXIMUM_STEP_LIMIT) force-quits the whole episode, so the turns not reached count as failed.
With `hints` (the env-hints arm, `train` only) error messages carry `rods.env.hints.hint`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from rods.env.calls import parse_tool_calls
from rods.env.hints import hint
from rods.env.reward import GroundTruthCache, Score, summarize, turn_succeeds
from rods.tasks import Task, ToolCall, task_function_docs

DEFAULT_MAX_STEPS_PER_TURN = 5  # EnvTuning's rollout protocol; bfcl-eval itself allows 20
Protocol = Literal["train", "bfcl"]


def bfcl_step_limit() -> int:
    """Calling steps bfcl-eval allows in one user turn: it counts a step after executing it and
    quits when the count exceeds MAXIMUM_STEP_LIMIT (20), i.e. after the 21st."""
    from bfcl_eval.constants.default_prompts import MAXIMUM_STEP_LIMIT

    return MAXIMUM_STEP_LIMIT + 1


def reveal_message() -> str:
    """The user message bfcl-eval sends on a turn that reveals held-out functions (FC mode)."""
    from bfcl_eval.constants.default_prompts import DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC

    return DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC


@dataclass
class StepResult:
    tool_messages: list[dict[str, Any]] = field(default_factory=list)
    turn_done: bool = False  # this step ended the user turn
    turn_success: bool | None = None  # its verdict, when it ended
    done: bool = False  # no user turn left
    next_user: list[dict[str, Any]] = field(default_factory=list)  # opens the next turn


class Episode:
    """A single-use rollout of one task. Not thread-safe itself; make one per rollout."""

    def __init__(
        self,
        task: Task,
        cache: GroundTruthCache,
        *,
        max_steps_per_turn: int = DEFAULT_MAX_STEPS_PER_TURN,
        protocol: Protocol = "train",
        hints: bool = False,
    ):
        if max_steps_per_turn < 1:
            raise ValueError("max_steps_per_turn must be at least 1")
        if hints and protocol == "bfcl":
            raise ValueError("hints are a training augmentation; the bfcl protocol has none")
        self.task = task
        self.max_steps_per_turn = max_steps_per_turn
        self.protocol = protocol
        self.hints = hints
        runtime = cache.runtime(task)
        self._gt = runtime.ground_truth
        self.world = runtime.template.fresh()
        self._docs = task_function_docs(task)
        self._hidden_until = {
            name: int(u) for u, names in (task.missed_function or {}).items() for name in names
        }
        self.turn = 0
        self.steps_in_turn = 0
        self.calls_per_turn: list[list[ToolCall]] = [[]]
        self.results_so_far: list[str] = []
        self.turn_success: list[bool] = []
        self.errors: Counter[str] = Counter()
        self.stop_reason: str | None = None

    # ------------------------------------------------------------ what the policy sees

    def opening(self) -> list[dict[str, Any]]:
        """The messages of the first user turn."""
        return self._user_messages(0)

    def _user_messages(self, u: int) -> list[dict[str, Any]]:
        if str(u) in (self.task.missed_function or {}):
            return [{"role": "user", "content": reveal_message()}]
        return [m.model_dump() for m in self.task.question[u]]

    def tools(self) -> list[dict[str, Any]]:
        """Function docs visible in the current turn (bfcl-eval's doc format)."""
        return [d for d in self._docs if self._hidden_until.get(d["name"], 0) <= self.turn]

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    # ------------------------------------------------------------ transitions

    def step(self, assistant_text: str) -> StepResult:
        if self.done:
            raise RuntimeError(f"episode of {self.task.id} is over ({self.stop_reason})")
        parsed = parse_tool_calls(assistant_text)
        bfcl = self.protocol == "bfcl"
        if not parsed.attempted or (bfcl and not parsed.calls):
            for code, _ in parsed.errors:
                self.errors[code] += 1
            return self._end_turn(StepResult())
        result = StepResult()
        for code, detail in parsed.errors:
            self.errors[code] += 1
            if not bfcl:  # bfcl-eval drops a block it cannot decode, without a message
                text = f"Error: {code}: {detail}"
                result.tool_messages.append(
                    {"role": "tool", "name": "error", "content": self._with_hint(text, code, None)}
                )
        for call in parsed.calls:
            outcome = self.world.execute(call)
            self.calls_per_turn[self.turn].append(call)
            self.results_so_far.append(outcome.text)
            text = outcome.text
            if outcome.error:
                self.errors[outcome.error] += 1
                text = self._with_hint(text, outcome.error, call)
            result.tool_messages.append({"role": "tool", "name": call.name, "content": text})
        self.steps_in_turn += 1
        if self.steps_in_turn >= self.max_steps_per_turn:
            self.errors["turn/step_limit"] += 1
            result = self._end_turn(result)
            if bfcl and not self.done:  # bfcl-eval's force quit: no further turn is played
                self.truncate("step_limit")
                result.done, result.next_user = True, []
            return result
        return result

    def _with_hint(self, text: str, code: str, call: ToolCall | None) -> str:
        """The error text, plus an actionable hint when hints are on."""
        extra = hint(code, call, self.tools(), self._docs) if self.hints else ""
        return f"{text}\n{extra}" if extra else text

    def _end_turn(self, result: StepResult) -> StepResult:
        ok = turn_succeeds(
            self._gt.turns[self.turn],
            len(self.calls_per_turn[self.turn]),
            self.world,
            self.results_so_far,
        )
        self.turn_success.append(ok)
        result.turn_done, result.turn_success = True, ok
        if self.turn + 1 >= self.task.n_turns:
            self.stop_reason = "completed"
            result.done = True
            return result
        self.turn += 1
        self.steps_in_turn = 0
        self.calls_per_turn.append([])
        result.next_user = self._user_messages(self.turn)
        return result

    def truncate(self, reason: str = "max_tokens") -> None:
        """End the episode now; unfinished turns count as failed."""
        if not self.done:
            self.stop_reason = f"truncated:{reason}"

    def score(self) -> Score:
        return summarize(self.task, self._gt, list(self.turn_success), self.errors)
