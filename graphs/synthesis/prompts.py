"""Prompts of the LLM backend, one builder per stage; each returns chat messages.

Every prompt asks for its answer as JSON inside one XML-like tag (`<plan>`, `<arguments>`,
`<queries>`, `<verdict>`), which `llm.extract_json` reads defensively (tag, fenced block, or the
first JSON value in the text). Inputs that can be large (simulator state, call results) are cut
to a fixed number of characters so that a long-context world never overflows a prompt.

Small served models (a 270M base model on CPU) need three things, measured in BENCHMARKS.md:
the answer's JSON shape enforced by the server (`*_schema`: JSON schemas passed as
`response_format`, which llama.cpp and vLLM turn into a grammar), a short context, and one
worked example. The writer's example (`query_example`) is another task of the TRAINING split
that shares a class with the calls — never the seed itself (a copied seed text is a reference
copy), never a held-out task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rods.tasks import Signature, Task, ToolCall, function_docs, load_split

MAX_STATE_CHARS = 6000  # public simulator state shown to the argument generator
MAX_RESULT_CHARS = 600  # one call result shown in a prompt
MAX_CONFIG_CHARS = 4000  # the initial configuration shown to the judge (BFCL's: median ~1,500)
MAX_CONFIG_STRING = 160  # one string inside it (file contents, tweet texts)
MAX_CONFIG_ITEMS = 12  # items of one list or dict inside it
MAX_DOC_CHARS = 90  # one function's description in a function list (a small model's context)
MAX_TURN_CHARS = 300  # one seed user message shown in a conversation
MAX_EXAMPLE_CHARS = 240  # one user message of the writer's worked example
MAX_QUERY_CHARS = 300  # one written user message (the schema's maxLength)

SYSTEM = (
    "You write training data for tool-using assistants in a simulated environment "
    "(file system, messaging, social media, tickets, trading, travel booking, vehicle control, "
    "math). Follow the output format exactly: JSON inside the requested tag, nothing else inside it."
)


def _cut(text: str, limit: int) -> str:
    """One line of at most `limit` characters (results may hold newlines: file contents)."""
    text = " ".join(text.split("\n"))
    return text if len(text) <= limit else text[: limit - 15] + " …[truncated]"


def _doc_line(doc: dict[str, Any]) -> str:
    params = doc.get("parameters", {}).get("properties", {})
    required = set(doc.get("parameters", {}).get("required", []))
    args = ", ".join(f"{p}{'' if p in required else '?'}: {v.get('type', '?')}" for p, v in params.items())
    desc = doc.get("description", "").split("Tool description:")[-1].strip()
    return f"- {doc['name']}({args}): {_cut(desc, MAX_DOC_CHARS)}"


def _conversation(task: Task) -> str:
    lines = []
    for u, (msgs, gt) in enumerate(zip(task.question, task.ground_truth, strict=True)):
        text = _cut(" ".join(m.content for m in msgs), MAX_TURN_CHARS) or "(no user message)"
        lines.append(f"Turn {u}: user: {text}\n        calls: {gt}")
    return "\n".join(lines)


def plan_messages(
    seed: Task, signature: Signature, docs: Sequence[dict[str, Any]], attempt: int, min_turns: int, max_turns: int
) -> list[dict[str, str]]:
    # names only, one line per class: the plan picks names (the schema enumerates them); a list of
    # signatures and descriptions was ~900 of a 1,250-token prompt for a 270M model on CPU
    wanted = {d["name"] for d in docs}
    functions = "\n".join(
        f"- {cls}: {', '.join(d['name'] for d in function_docs()[cls] if d['name'] in wanted)}"
        for cls in seed.involved_classes
    )
    user = f"""A seed conversation and its ground-truth calls:
{_conversation(seed)}

Its structure: calls per turn {list(signature.calls_per_turn)}, data-flow topology {signature.topology}, dependency depth {signature.depth}, cross-turn dependencies {signature.cross_turn_edges}.

Available functions (classes: {", ".join(seed.involved_classes)}):
{functions}

Plan a NEW conversation that exercises the same skills with the same structure: {min_turns}-{max_turns} user turns, 1-4 calls per turn, same topology and depth, possibly different functions of the same classes. Keep a coherent order (log in before acting, fuel before driving, go to a directory before reading its files). Do not plan turns without calls. This is attempt {attempt}; vary the scenario.

Answer as <plan>{{"turns": [["function", ...], ...], "notes": "one-sentence scenario"}}</plan>."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _state_json(state: dict[str, Any]) -> str:
    return _cut(json.dumps(state, default=str, sort_keys=True), MAX_STATE_CHARS)


def argument_messages(
    doc: dict[str, Any],
    state: dict[str, Any],
    earlier: Sequence[tuple[ToolCall, str]],
    turn: int,
    feedback: str = "",
) -> list[dict[str, str]]:
    history = "\n".join(
        f"- {c.to_python()} -> {_cut(r, MAX_RESULT_CHARS)}" for c, r in earlier
    ) or "(none yet)"
    user = f"""Write the arguments of the next call (turn {turn}) of a synthetic conversation.

Function: {json.dumps(doc, sort_keys=True)}

Current simulator state: {_state_json(state)}

Earlier calls and their results:
{history}

Ground every value in the state or an earlier result where it exists (real file names, ids, users, prices); otherwise invent a realistic value. Strings at most 200 characters, lists at most 5 items. Do not repeat an earlier call exactly.{(" Previous try failed: " + feedback) if feedback else ""}

Answer as <arguments>{{"parameter": value, ...}}</arguments>."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def query_example(classes: Sequence[str], avoid_id: str, pick: int) -> Task | None:
    """A training-split task using one of `classes`, not `avoid_id` (nor its scenario's other
    categories); `pick` chooses among them deterministically. None when there is none."""
    scenario = avoid_id.rsplit("_", 1)[-1]
    pool = [
        t for t in load_split("train", ["base"])
        if set(t.involved_classes) & set(classes) and t.id.rsplit("_", 1)[-1] != scenario
    ]  # fmt: skip
    return pool[pick % len(pool)] if pool else None


def _example_text(task: Task, max_turns: int = 2) -> str:
    lines = []
    for u, (msgs, gt) in enumerate(zip(task.question[:max_turns], task.ground_truth, strict=False)):
        text = _cut(" ".join(m.content for m in msgs), MAX_EXAMPLE_CHARS)
        lines.append(f"Turn {u} calls: {gt}\nTurn {u} user: {text}")
    return "\n".join(lines)


def query_messages(
    calls_per_turn: Sequence[Sequence[ToolCall]],
    results_per_turn: Sequence[Sequence[str]],
    example: Task | None = None,
) -> list[dict[str, str]]:
    turns = []
    for u, (calls, results) in enumerate(zip(calls_per_turn, results_per_turn, strict=True)):
        body = "\n".join(
            f"    {c.to_python()} -> {_cut(r, MAX_RESULT_CHARS)}" for c, r in zip(calls, results, strict=True)
        )
        turns.append(f"Turn {u}:\n{body}")
    shown = (
        f"An example of the style (another conversation; do not copy its words):\n{_example_text(example)}\n\n"
        if example is not None
        else ""
    )
    user = f"""{shown}These calls were executed, turn by turn:
{chr(10).join(turns)}

Write the user's message for every turn, all together, as one coherent scenario of one person. Each message must imply every call of its turn and state every value the assistant cannot find out itself (names, contents, amounts), may refer to earlier turns' results, and must read naturally: never name a function or a parameter, no code, no numbered steps.

Answer as <queries>["message of turn 0", ...]</queries> with exactly {len(calls_per_turn)} strings."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def shorten_config(value: Any) -> Any:
    """The initial configuration with long strings cut and long lists/dicts elided, so that every
    class stays visible within `MAX_CONFIG_CHARS` (a cut of the whole JSON would drop classes)."""
    if isinstance(value, str):
        return value if len(value) <= MAX_CONFIG_STRING else value[: MAX_CONFIG_STRING - 1] + "…"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): shorten_config(v) for k, v in items[:MAX_CONFIG_ITEMS]}
        if len(items) > MAX_CONFIG_ITEMS:
            out["…"] = f"{len(items) - MAX_CONFIG_ITEMS} more entries"
        return out
    if isinstance(value, list | tuple):
        out_list = [shorten_config(v) for v in value[:MAX_CONFIG_ITEMS]]
        if len(value) > MAX_CONFIG_ITEMS:
            out_list.append(f"… {len(value) - MAX_CONFIG_ITEMS} more items")
        return out_list
    return value


def config_text(config: dict[str, Any]) -> str:
    return _cut(json.dumps(shorten_config(config), default=str, ensure_ascii=False), MAX_CONFIG_CHARS)


def judge_messages(task: Task) -> list[dict[str, str]]:
    user = f"""Judge this synthetic conversation strictly.

Initial configuration of the simulated world (before the first turn; long values shortened):
{config_text(task.initial_config)}

The conversation and its ground-truth calls:
{_conversation(task)}

Reject it if a message does not imply exactly its turn's calls, contradicts the initial configuration (a file, user, account, id, balance or booking the user mentions must exist there or be created by an earlier call) or earlier turns, is incoherent across turns, is unnatural, names a function or parameter, or leaks reasoning steps.

Answer as <verdict>{{"ok": true or false, "reasons": ["short reason", ...]}}</verdict>."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def repair_messages(task: Task, reasons: Sequence[str]) -> list[dict[str, str]]:
    user = f"""This synthetic conversation was rejected:
{_conversation(task)}

Reasons: {"; ".join(reasons) or "unspecified"}

Rewrite all user messages (same calls, same number of turns) to fix the problems, following the same rules: imply every call of the turn, state every needed value, name no function or parameter, no numbered steps.

Answer as <queries>["message of turn 0", ...]</queries> with exactly {task.n_turns} strings."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# ---------------------------------------------------------------- JSON schemas of the replies

_TYPES = {"string": "string", "integer": "integer", "float": "number", "number": "number",
          "boolean": "boolean", "array": "array", "dict": "object", "object": "object"}  # fmt: skip


def _param_schema(spec: dict[str, Any]) -> dict[str, Any]:
    kind = _TYPES.get(str(spec.get("type", "")))
    if kind is None:  # bfcl's "any" and unknown types: no constraint
        return {}
    out: dict[str, Any] = {"type": kind}
    if kind == "array":
        out["maxItems"] = 5
        if isinstance(spec.get("items"), dict):
            out["items"] = _param_schema(spec["items"])
    if kind == "string":
        out["maxLength"] = 200
    if "enum" in spec:
        out["enum"] = list(spec["enum"])
    return out


def arguments_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of one call: the function's own parameters, nothing else."""
    params = doc.get("parameters", {})
    props = {p: _param_schema(v) for p, v in params.get("properties", {}).items()}
    return {"type": "object", "properties": props, "required": list(params.get("required", [])),
            "additionalProperties": False}  # fmt: skip


def plan_schema(functions: Sequence[str], min_turns: int, max_turns: int) -> dict[str, Any]:
    """Turns of 1-4 function names, each one of `functions` (an unknown name cannot be written)."""
    turn = {"type": "array", "minItems": 1, "maxItems": 4, "items": {"type": "string", "enum": list(functions)}}
    return {
        "type": "object",
        "properties": {
            "turns": {"type": "array", "minItems": min_turns, "maxItems": max_turns, "items": turn},
            "notes": {"type": "string", "maxLength": 100},
        },
        "required": ["turns", "notes"],
        "additionalProperties": False,
    }


def queries_schema(n_turns: int) -> dict[str, Any]:
    item = {"type": "string", "minLength": 8, "maxLength": MAX_QUERY_CHARS}
    return {
        "type": "object",
        "properties": {"queries": {"type": "array", "minItems": n_turns, "maxItems": n_turns, "items": item}},
        "required": ["queries"],
        "additionalProperties": False,
    }


VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "reasons": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 80}},
    },
    "required": ["ok", "reasons"],
    "additionalProperties": False,
}
