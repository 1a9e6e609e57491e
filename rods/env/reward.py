"""Progress reward R_P: per-turn state and response checks against the executed ground truth.

For each user turn u the model's world (after its calls of turns 0..u) is compared with a world
that executed the ground truth of turns 0..u:
- state check: every public attribute of every involved instance is equal (`!=` as bfcl-eval);
- response check: the ground truth's results of turn u all appear, as a multiset, among the
  model's results of turns 0..u.
A turn with empty ground truth succeeds iff the model made no call in it. R_P is successful turns
divided by the task's number of turns. A trajectory is officially correct iff it reached every
turn and every turn with non-empty ground truth succeeded — the verdict of bfcl-eval's
`multi_turn_checker`, which tests/unit/test_official_agreement.py holds us to.

Ground-truth executions are deterministic, so `GroundTruthCache` computes them once per task
(results and a snapshot of the public state after each turn) together with the pickled initial
world that every episode copies. A cache is an explicit object, shared across threads by choice.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rods.env.calls import CallSyntaxError, parse_python_call
from rods.env.world import World, WorldTemplate
from rods.tasks import Task, ToolCall


@dataclass(frozen=True)
class GroundTruthTurn:
    calls: tuple[ToolCall, ...]
    results: tuple[str, ...]
    state: dict[str, dict[str, Any]]  # public attributes per class after this turn
    empty: bool  # the task's ground truth for this turn is empty (the model must not call)


@dataclass(frozen=True)
class GroundTruth:
    """A task's executed ground truth. `problems` lists calls that did not parse or bind."""

    task_id: str
    turns: tuple[GroundTruthTurn, ...]
    problems: tuple[str, ...] = ()
    error_results: int = 0  # ground-truth calls whose result is an error message


def execute_ground_truth(task: Task, world: World) -> GroundTruth:
    """Run the task's ground truth on `world` (mutated), snapshotting state after every turn."""
    turns: list[GroundTruthTurn] = []
    problems: list[str] = []
    error_results = 0
    for u, sources in enumerate(task.ground_truth):
        calls: list[ToolCall] = []
        results: list[str] = []
        for source in sources:
            try:
                call = world.bind_python_call(parse_python_call(source))
            except (CallSyntaxError, KeyError, TypeError) as e:
                problems.append(f"turn {u}: {source!r}: {e}")
                results.append(f"Error during execution: {e}")
                continue
            outcome = world.execute(call)
            calls.append(call)
            results.append(outcome.text)
            error_results += outcome.text.startswith("Error during execution")
        # Snapshot by pickling: an independent deep copy that later calls cannot touch.
        state = pickle.loads(pickle.dumps(world.public_state(), protocol=pickle.HIGHEST_PROTOCOL))
        turns.append(GroundTruthTurn(tuple(calls), tuple(results), state, empty=not sources))
    return GroundTruth(task.id, tuple(turns), tuple(problems), error_results)


@dataclass
class TaskRuntime:
    """Per-task cached pieces: the initial world template and the executed ground truth."""

    template: WorldTemplate
    ground_truth: GroundTruth
    fingerprint: tuple[Any, ...]
    initial_config: dict[str, Any]


def _fingerprint(task: Task) -> tuple[Any, ...]:
    # Ids of synthetic tasks are content hashes, but a task file may reuse a seed id with other
    # content; the ground truth and involved classes decide the executed states.
    return (
        task.id,
        tuple(tuple(t) for t in task.ground_truth),
        tuple(task.involved_classes),
    )


class GroundTruthCache:
    """Thread-safe cache of `TaskRuntime` by task id (bounded, least recently built evicted)."""

    def __init__(self, max_tasks: int = 4096):
        self._max = max_tasks
        self._items: dict[str, TaskRuntime] = {}
        self._lock = threading.Lock()

    def runtime(self, task: Task) -> TaskRuntime:
        fp = _fingerprint(task)
        with self._lock:
            rt = self._items.get(task.id)
        if rt is not None and rt.fingerprint == fp and rt.initial_config == task.initial_config:
            return rt
        template = WorldTemplate(task)
        rt = TaskRuntime(
            template,
            execute_ground_truth(task, template.fresh()),
            fp,
            copy.deepcopy(task.initial_config),
        )
        with self._lock:
            if len(self._items) >= self._max:
                self._items.pop(next(iter(self._items)))
            self._items[task.id] = rt
        return rt


# ---------------------------------------------------------------- turn checks


def state_matches(model: World, expected: dict[str, dict[str, Any]]) -> bool:
    for class_name, attrs in expected.items():
        instance = model.instances[class_name]
        for name, value in attrs.items():
            if getattr(instance, name) != value:
                return False
    return True


def responses_contained(expected: Sequence[str], model_results: Sequence[str]) -> bool:
    """Every expected result appears among the model's results (as a multiset)."""
    if not expected:
        return True
    have = Counter(model_results)
    need = Counter(expected)
    return all(have[k] >= n for k, n in need.items())


def turn_succeeds(
    gt_turn: GroundTruthTurn,
    n_turn_calls: int,
    model: World,
    model_results_so_far: Sequence[str],
) -> bool:
    """The per-turn verdict (see the module docstring)."""
    if gt_turn.empty:
        return n_turn_calls == 0
    if n_turn_calls == 0:
        return False
    return state_matches(model, gt_turn.state) and responses_contained(
        gt_turn.results, model_results_so_far
    )


@dataclass
class Score:
    """The score of one trajectory, as `rods env score` writes it."""

    task_id: str
    turn_success: list[bool]
    progress: float
    correct: bool
    errors: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "turn_success": self.turn_success,
            "progress": self.progress,
            "correct": self.correct,
            "errors": self.errors,
        }


def summarize(task: Task, gt: GroundTruth, turn_success: list[bool], errors: Counter) -> Score:
    """R_P over the task's turns; turns never reached count as failed."""
    n = task.n_turns
    padded = turn_success + [False] * (n - len(turn_success))
    nonempty = [not t.empty for t in gt.turns]
    correct = len(turn_success) == n and all(ok for ok, ne in zip(padded, nonempty, strict=True) if ne)
    return Score(
        task_id=task.id,
        turn_success=padded,
        progress=sum(padded) / n if n else float("nan"),
        correct=correct,
        errors=dict(sorted(errors.items())),
    )


def score_calls(
    task: Task, calls_per_turn: Sequence[Sequence[ToolCall]], cache: GroundTruthCache
) -> Score:
    """Replay a trajectory given as calls per user turn in a fresh world and score it.

    Fewer turns than the task has means the trajectory was cut off: the rest count as failed.
    More turns than the task has is an input error.
    """
    if len(calls_per_turn) > task.n_turns:
        raise ValueError(
            f"task {task.id}: trajectory has {len(calls_per_turn)} turns, the task has {task.n_turns}"
        )
    rt = cache.runtime(task)
    world = rt.template.fresh()
    errors: Counter[str] = Counter()
    results_so_far: list[str] = []
    success: list[bool] = []
    for gt_turn, turn_calls in zip(rt.ground_truth.turns, calls_per_turn, strict=False):
        for call in turn_calls:
            outcome = world.execute(call)
            results_so_far.append(outcome.text)
            if outcome.error:
                errors[outcome.error] += 1
        success.append(turn_succeeds(gt_turn, len(turn_calls), world, results_so_far))
    return summarize(task, rt.ground_truth, success, errors)
