"""Actionable hints on tool errors: the environment-augmentation baseline (the `env-hints` arm).

EnvTuning-style augmentation: when a call fails, the tool message says what was wrong, which
argument, and what is allowed — the available function names (and the closest one), the
function's parameters with their types and which are required, the arguments that are missing,
unexpected or of the wrong type, the call format after a parse error. Everything is read from
the task's own function docs (bfcl-eval's format); nothing here runs or evaluates anything.

Hints go into the tool message only: the recorded execution results (what the response check
compares) and the official verdict are unchanged. Off by default (`[env] hints`), and never on in
evaluation: bfcl-eval's messages carry no hints.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from rods.tasks import ToolCall

CALL_FORMAT = '<tool_call>{"name": "<function>", "arguments": {"<parameter>": <value>}}</tool_call>'
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "tuple": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}
MAX_LISTED = 40  # function names listed at most (BFCL tasks have fewer than 40 per class)


def _params(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    params = doc.get("parameters") or {}
    return dict(params.get("properties") or {}), list(params.get("required") or [])


def signature_text(doc: Mapping[str, Any]) -> str:
    """`name(a: string, b: integer = optional)` from a bfcl-eval doc."""
    props, required = _params(doc)
    parts = [
        f"{p}: {spec.get('type', 'any')}" + ("" if p in required else " (optional)")
        for p, spec in props.items()
    ]
    return f"{doc['name']}({', '.join(parts)})"


def _type_ok(value: Any, type_name: str) -> bool:
    allowed = _PY_TYPES.get(type_name)
    if allowed is None:  # 'any' or a type bfcl-eval did not name: nothing to say
        return True
    if isinstance(value, bool) and bool not in allowed:
        return False  # bool is an int in Python, not an integer argument
    return isinstance(value, allowed)


def argument_problems(call: ToolCall, doc: Mapping[str, Any]) -> list[str]:
    """What is wrong with the call's arguments according to the doc (empty: nothing we see)."""
    props, required = _params(doc)
    out = []
    missing = [p for p in required if p not in call.arguments]
    if missing:
        out.append("missing required argument(s): " + ", ".join(missing))
    unexpected = [a for a in call.arguments if a not in props]
    if unexpected:
        out.append("unexpected argument(s): " + ", ".join(unexpected))
    for name, value in call.arguments.items():
        spec = props.get(name)
        if spec is not None and not _type_ok(value, str(spec.get("type", "any"))):
            out.append(f"argument {name!r} must be {spec.get('type')}, got {type(value).__name__}")
    return out


def hint(
    code: str,
    call: ToolCall | None,
    visible: Sequence[Mapping[str, Any]],
    docs: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """One line of hints for an error `code` (rods.env.calls.ERROR_CODES); "" when none applies.

    `visible`: the function docs the policy is shown now (the names listed after an unknown
    function); `docs`: every doc of the task (argument hints; default `visible`)."""
    if code.startswith("parse/"):
        return f"Hint: write each call as {CALL_FORMAT}, in valid JSON (double-quoted keys and strings)."
    if call is None:
        return ""
    if code == "call/unknown_function":
        names = sorted(d["name"] for d in visible)
        close = difflib.get_close_matches(call.name, names, n=1)
        listed = ", ".join(names[:MAX_LISTED]) + (", …" if len(names) > MAX_LISTED else "")
        guess = f" Did you mean {close[0]!r}?" if close else ""
        return f"Hint: {call.name!r} is not an available function.{guess} Available: {listed}."
    doc = {d["name"]: d for d in (docs if docs is not None else visible)}.get(call.name)
    if doc is None:
        return ""
    problems = argument_problems(call, doc)
    what = "; ".join(problems) if problems else "check the argument values"
    return f"Hint: {what}. Expected: {signature_text(doc)}."
