"""Tool lists for chat templates: bfcl-eval's function docs as OpenAI-style tool schemas.

bfcl-eval writes Python-flavoured JSON-schema types (`dict`, `float`); chat templates of Hugging
Face models and OpenAI-compatible servers expect JSON Schema (`object`, `number`). The `response`
block of a doc describes the return value and is dropped (no schema field carries it).
"""

from __future__ import annotations

from typing import Any

_TYPE_MAP = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}


def _schema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _schema(v) for k, v in node.items()}
        if isinstance(out.get("type"), str):
            out["type"] = _TYPE_MAP.get(out["type"], out["type"])
        return out
    if isinstance(node, list):
        return [_schema(v) for v in node]
    return node


def openai_tool(doc: dict[str, Any]) -> dict[str, Any]:
    """One bfcl-eval doc → `{"type": "function", "function": {name, description, parameters}}`."""
    return {
        "type": "function",
        "function": {
            "name": doc["name"],
            "description": doc.get("description", ""),
            "parameters": _schema(doc.get("parameters", {"type": "dict", "properties": {}})),
        },
    }


def openai_tools(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [openai_tool(d) for d in docs]
