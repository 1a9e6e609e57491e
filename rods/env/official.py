"""bfcl-eval's own `multi_turn_checker`, called safely: the official verdict of a trajectory.

The official checker `eval`s call strings. We therefore never hand it text a policy chose: each
call is re-rendered from its parsed form (`name(key=<repr of a literal>)`), and any call whose
name is not a public method of the task's classes, or whose arguments do not survive a literal
round trip, is replaced by a call of a name that does not exist (`_REFUSED`) — which the checker
records as an error result, exactly as it would for any other unknown function, without running
anything. The verdict is unchanged by this: an unknown call never produces a ground-truth result.

The checker keeps simulator instances in its module's globals, keyed by model name and task id;
each call here uses a fresh model name and deletes those entries afterwards.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from rods.env.world import World
from rods.tasks import Task, ToolCall

_REFUSED = "rods_refused_call"  # no simulator defines it; evaluates to a NameError result
_counter = itertools.count()  # fresh model names; itertools.count is atomic under the GIL
# The checker mutates its module's globals; serialise calls so cleanup never races a lookup.
_CHECKER_LOCK = threading.Lock()


def _literal_ok(value: Any) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, RecursionError):
        return False


def safe_call_string(call: ToolCall, world: World) -> str:
    """The call as a string the official checker may evaluate without running anything else."""
    if not call.name.isidentifier() or not world.has_function(call.name):
        return f"{_REFUSED}()"
    if not all(k.isidentifier() and _literal_ok(v) for k, v in call.arguments.items()):
        return f"{_REFUSED}()"
    return call.to_python()


def decoded_turns(task: Task, calls_per_turn: Sequence[Sequence[ToolCall]]) -> list[list[list[str]]]:
    """Our calls in the checker's input shape: turn → steps → call strings (empty steps omitted)."""
    world = World.load(task)
    return [
        [[safe_call_string(c, world) for c in turn]] if turn else [] for turn in calls_per_turn
    ]


def official_correct(task: Task, calls_per_turn: Sequence[Sequence[ToolCall]]) -> bool:
    """bfcl-eval's verdict on a trajectory (a different number of turns is force-terminated)."""
    if len(calls_per_turn) != task.n_turns:
        return False
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    model_name = f"rods_official_{os.getpid()}_{next(_counter)}"
    decoded = decoded_turns(task, calls_per_turn)
    entry = task.to_bfcl()
    with _CHECKER_LOCK:
        try:
            result = multi_turn_checker(
                decoded, task.ground_truth, entry, f"multi_turn_{task.category}", model_name
            )
        finally:
            g = vars(multi_turn_utils)
            for key in [k for k in g if k.startswith(model_name)]:
                del g[key]
    return bool(result["valid"])
