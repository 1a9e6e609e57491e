"""The synthesis graph's routers: pure functions of the state that return the next node's name.

Each node sets `outcome`; a router reads only `outcome` (and, between variants, `slot`).
"""

from __future__ import annotations

from langgraph.graph import END

from graphs.synthesis.state import SynthState


def after_extract(state: SynthState) -> str:
    return "plan" if state.get("outcome") == "ok" else END


def after_plan(state: SynthState) -> str:
    return {"ok": "execute", "retry": "plan"}.get(state.get("outcome", ""), "retry")


def after_execute(state: SynthState) -> str:
    return {"ok": "rewrite", "patched": "execute"}.get(state.get("outcome", ""), "retry")


def after_rewrite(state: SynthState) -> str:
    return "critique" if state.get("outcome") == "ok" else "retry"


def after_critique(state: SynthState) -> str:
    return {"ok": "augment", "repair": "repair"}.get(state.get("outcome", ""), "retry")


def after_repair(state: SynthState) -> str:
    return "critique" if state.get("outcome") == "ok" else "retry"


def after_augment(state: SynthState) -> str:
    if state.get("outcome") != "accepted":
        return "retry"
    return END if state.get("slot", 0) >= state["n_variants"] else "plan"


def after_retry(state: SynthState) -> str:
    return END if state.get("slot", 0) >= state["n_variants"] else "plan"
