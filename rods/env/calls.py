"""Safe call parsing: policy output (JSON in tags) and ground-truth strings (Python call syntax).

Nothing here evaluates text. Policy messages are read with `json`; ground-truth strings are read
with `ast` and accepted only as `name(<literal>, ..., key=<literal>, ...)` where `name` is a plain
identifier and every argument is a Python literal (`ast.literal_eval` on the argument node).
Whether `name` is a real function is decided later, by the world (`rods.env.world`), which
dispatches only to public methods of the task's involved classes.

Error codes (counted by episodes and scorers; see `ERROR_CODES`):
- `parse/bad_json`      a `<tool_call>` block (or bare JSON list) that is not valid JSON
- `parse/bad_shape`     valid JSON that is not `{"name": str, "arguments": {...}}`
- `parse/unclosed_tag`  a `<tool_call>` without its closing tag
- `parse/non_literal`   a Python call string with a non-literal argument or a non-plain name
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from rods.tasks import ToolCall

ERROR_CODES: tuple[str, ...] = (
    "parse/bad_json",
    "parse/bad_shape",
    "parse/unclosed_tag",
    "parse/non_literal",
    "call/unknown_function",
    "call/bad_arguments",
    "call/exception",
)

_TAG_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_OPEN_TAG = "<tool_call>"


@dataclass
class ParsedMessage:
    """What one assistant message asked for: calls in order, and parse errors (code, detail)."""

    calls: list[ToolCall] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def attempted(self) -> bool:
        """True if the message tried to call a tool at all (well-formed or not)."""
        return bool(self.calls or self.errors)


def _call_from_json(obj: Any) -> ToolCall | tuple[str, str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ("parse/bad_shape", 'expected {"name": <string>, "arguments": {...}}')
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # OpenAI-style: arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            return ("parse/bad_json", f"arguments of {obj['name']!r}: {e.msg}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ("parse/bad_shape", f"arguments of {obj['name']!r} must be an object")
    return ToolCall(name=obj["name"], arguments=args)


def _add_json_calls(blob: str, out: ParsedMessage) -> None:
    try:
        obj = json.loads(blob)
    except json.JSONDecodeError as e:
        out.errors.append(("parse/bad_json", f"{e.msg} at column {e.colno}"))
        return
    for item in obj if isinstance(obj, list) else [obj]:
        parsed = _call_from_json(item)
        if isinstance(parsed, ToolCall):
            out.calls.append(parsed)
        else:
            out.errors.append(parsed)


def parse_tool_calls(text: str) -> ParsedMessage:
    """Parse an assistant message into tool calls.

    Accepted: one or more `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (a
    block may also hold a JSON list of such objects), or a message that is exactly a JSON list of
    call objects. Any other message is plain text: no calls, no errors.
    """
    out = ParsedMessage()
    blocks = _TAG_RE.findall(text)
    for blob in blocks:
        _add_json_calls(blob.strip(), out)
    if text.count(_OPEN_TAG) > len(blocks):
        out.errors.append(("parse/unclosed_tag", "a <tool_call> block has no closing tag"))
    if not blocks and _OPEN_TAG not in text:
        stripped = text.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            _add_json_calls(stripped, out)
            if out.errors and not out.calls:  # a bracketed sentence is prose, not a broken call
                out.errors.clear()
    return out


@dataclass(frozen=True)
class PythonCall:
    """A ground-truth call as written: name, positional literals, keyword literals."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class CallSyntaxError(ValueError):
    """A call string that is not `name(literal, ..., key=literal)`; `.code` is the error code."""

    code = "parse/non_literal"


def parse_python_call(source: str) -> PythonCall:
    """Parse `cd(folder='document')` or `sort('final_report.pdf')` without evaluating it."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise CallSyntaxError(f"not a call: {source!r} ({e.msg})") from None
    node = tree.body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise CallSyntaxError(f"not a call of a plain function name: {source!r}")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise CallSyntaxError(f"**kwargs are not allowed: {source!r}")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise CallSyntaxError(f"non-literal argument in {source!r}") from None
    return PythonCall(name=node.func.id, args=args, kwargs=kwargs)
