"""The executable tool world of one task: fresh instances of its involved BFCL classes.

A `World` owns one instance per involved class, loaded with the task's `initial_config` exactly as
bfcl-eval loads it (`_load_scenario(deepcopy(config), long_context=...)`). Calls are dispatched by
name to *public bound methods* of those instances only — the same table bfcl-eval builds
(`inspect.getmembers(instance, inspect.ismethod)`, names not starting with `_`, a later class
winning a name clash). Any other name is an `call/unknown_function` error; nothing is evaluated.

Results are turned into text exactly as bfcl-eval does (str as is, dict via `json.dumps`, anything
else via `str`; an exception becomes `"Error during execution: <message>"`), so that the response
check compares the same strings the official checker compares.

Fresh worlds are cheap: the loaded world of a task is pickled once (`WorldTemplate`) and each
episode unpickles its own copy — no shared objects between episodes, safe across threads.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import pickle
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from rods.env.calls import PythonCall
from rods.tasks import Task, ToolCall

_STATELESS_CLASSES = frozenset({"MathAPI"})  # as bfcl-eval: no scenario to load
# MathAPI.logarithm sets mpmath's process-global precision before computing; serialise MathAPI
# calls so that two threads never interleave a precision change with a computation.
_MPMATH_LOCK = threading.Lock()


_F = TypeVar("_F", bound=Callable[..., Any])


def _cache(fn: _F) -> _F:
    """`functools.cache`, typed with the wrapped function's own signature: typeshed types the
    wrapper's arguments as `Hashable`, and mypy does not count class objects as `Hashable`."""
    return cast(_F, functools.cache(fn))


def _class(name: str) -> type:
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[name]), name)


@_cache
def _method_signature(cls: type, name: str) -> inspect.Signature:
    return inspect.signature(getattr(cls, name)).replace(
        parameters=list(inspect.signature(getattr(cls, name)).parameters.values())[1:]
    )


@_cache
def _public_method_names(cls: type) -> tuple[str, ...]:
    """The names `inspect.getmembers(instance, inspect.ismethod)` yields for instances of `cls`
    whose own attributes are data (every BFCL simulator): functions and classmethods, sorted."""
    return tuple(
        name
        for name in dir(cls)
        if not name.startswith("_")
        and isinstance(inspect.getattr_static(cls, name), types.FunctionType | classmethod)
    )


_SCALARS = (str, int, float, bool, type(None))


@_cache
def _mutable_defaults(cls: type, name: str) -> tuple[tuple[str, Any], ...]:
    """Parameters of `cls.name` whose default is a mutable container (shared by every call)."""
    return tuple(
        (p.name, p.default)
        for p in _method_signature(cls, name).parameters.values()
        if isinstance(p.default, (list, dict, set))
    )


def _fresh_arguments(arguments: dict[str, Any], mutable_defaults: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """Arguments the method may keep or mutate without touching anything another call sees.

    bfcl-eval builds new literals from a string for every call; simulators store argument lists
    in their state (`post_tweet(mentions=...)`, later extended by `mention`), so sharing them
    would let one execution rewrite another's inputs. Worse, `post_tweet(mentions=[])` has a
    mutable default: a call that omits `mentions` stores the process-wide default list, and a
    later `mention` extends it for every world in the process. Omitted mutable defaults are
    therefore passed explicitly, as fresh copies of the declared default.
    """
    if all(type(v) in _SCALARS for v in arguments.values()):
        args = dict(arguments)
    else:
        args = copy.deepcopy(arguments)
    for name, default in mutable_defaults:
        if name not in args:
            args[name] = copy.deepcopy(default)
    return args


def result_text(result: Any) -> str:
    """A call's result as bfcl-eval's executor writes it."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


@dataclass(frozen=True)
class CallOutcome:
    """One executed (or refused) call: its text for the policy and an error code, if any."""

    call: ToolCall
    text: str
    error: str | None = None


class World:
    """Instances of a task's involved classes plus the name → bound method table."""

    def __init__(self, instances: dict[str, Any]):
        self.instances = instances
        self._methods: dict[str, tuple[str, types.MethodType]] = {}
        for class_name, instance in instances.items():
            for name in _public_method_names(type(instance)):  # getmembers per world: ~45 µs
                self._methods[name] = (class_name, getattr(instance, name))

    @classmethod
    def load(cls, task: Task) -> World:
        """Build a world from scratch, as bfcl-eval does for each model."""
        instances: dict[str, Any] = {}
        for class_name in task.involved_classes:
            instance = _class(class_name)()
            if class_name not in _STATELESS_CLASSES:
                config = copy.deepcopy(task.initial_config.get(class_name, {}))
                instance._load_scenario(config, long_context=task.long_context)
            instances[class_name] = instance
        return cls(instances)

    def has_function(self, name: str) -> bool:
        return name in self._methods

    def owner(self, name: str) -> str | None:
        entry = self._methods.get(name)
        return entry[0] if entry else None

    def signature(self, name: str) -> inspect.Signature:
        return self._signature(name)

    def _signature(self, name: str) -> inspect.Signature:
        return _method_signature(type(self._methods[name][1].__self__), name)

    def explicit_defaults(self, function: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """`arguments` plus every omitted parameter with a mutable default, written out fresh.

        `execute` already does this for each call; a synthesizer writes them into the ground
        truth it emits too, so that tools which `eval` the strings (bfcl-eval's checker) do not
        share the process-wide default either. Unknown functions come back unchanged.
        """
        entry = self._methods.get(function)
        if entry is None:
            return dict(arguments)
        return _fresh_arguments(arguments, _mutable_defaults(type(entry[1].__self__), function))

    def bind_python_call(self, call: PythonCall) -> ToolCall:
        """Turn positional ground-truth arguments into keywords using the method's signature.

        Raises KeyError for an unknown function and TypeError for arguments that do not bind.
        """
        if call.name not in self._methods:
            raise KeyError(call.name)
        if not call.args:
            return ToolCall(name=call.name, arguments=call.kwargs)
        bound = self.signature(call.name).bind(*call.args, **call.kwargs)
        return ToolCall(name=call.name, arguments=dict(bound.arguments))

    def execute(self, call: ToolCall) -> CallOutcome:
        """Run one call on the world; never raises for anything the call contains."""
        entry = self._methods.get(call.name)
        if entry is None:
            return CallOutcome(
                call,
                f"Error during execution: function {call.name!r} is not available",
                "call/unknown_function",
            )
        class_name, method = entry
        args = _fresh_arguments(call.arguments, _mutable_defaults(type(method.__self__), call.name))
        try:
            if class_name == "MathAPI":
                with _MPMATH_LOCK:
                    result = method(**args)
            else:
                result = method(**args)
        except TypeError as e:
            # Arguments that do not bind raise at the call, before the body runs (nothing
            # executed, bfcl-eval's exact message); bind only on this rare path to tell them
            # apart from a TypeError inside the body.
            try:
                self._signature(call.name).bind(**call.arguments)
            except TypeError:
                return CallOutcome(call, f"Error during execution: {e}", "call/bad_arguments")
            return CallOutcome(call, f"Error during execution: {e}", "call/exception")
        except Exception as e:  # a simulator bug or a bad value is the policy's error, not ours
            return CallOutcome(call, f"Error during execution: {e}", "call/exception")
        return CallOutcome(call, result_text(result))

    def public_state(self) -> dict[str, dict[str, Any]]:
        """Public attributes per class: what the state check compares."""
        return {
            name: {k: v for k, v in vars(inst).items() if not k.startswith("_")}
            for name, inst in self.instances.items()
        }


class WorldTemplate:
    """A task's loaded world, pickled once; `fresh()` returns an independent copy.

    Unpickling is cheaper than re-running `_load_scenario` on a deep copy of the config (about
    2× on base tasks, 1.25× on long-context ones; benchmarks/bench_env.py), and it copies
    exactly the loaded state, random generators included.
    """

    def __init__(self, task: Task):
        self._blob = pickle.dumps(World.load(task).instances, protocol=pickle.HIGHEST_PROTOCOL)

    def fresh(self) -> World:
        return World(pickle.loads(self._blob))  # noqa: S301 - our own bytes, made in this process
