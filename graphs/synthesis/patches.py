"""Minimal patches of a variant's initial config after a ground-truth call fails in the simulator.

The paper's execute stage fixes the four patchable failures by changing the *initial state* just
enough for the planned call to succeed (market closed → open, not logged in → logged in, empty
tank → fuel, missing file → the file exists), instead of throwing the plan away. Each rule here
recognises one simulator error message of one class and returns a new config (the input is never
mutated) and a short patch name for metrics. No rule matches → `None`, and the graph re-plans.

Rules are read off bfcl-eval's simulators (`func_source_code/*.py`): the error strings and the
`_load_scenario` keys they depend on. Patches touch only keys `_load_scenario` reads.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from rods.env.world import World
from rods.tasks import ToolCall

PatchFn = Callable[[dict[str, Any], World, ToolCall], str | None]

# Fuel given to a car whose tank is empty: half of the simulator's 50-gallon tank.
_PATCH_FUEL_GALLONS = 25.0
_FILE_READERS = frozenset({"cat", "tail", "head", "wc", "sort", "grep", "diff", "mv", "cp", "rm", "echo"})


def error_message(text: str) -> str | None:
    """The error carried by a call's result text, or None if the call succeeded.

    Simulators report errors two ways: an exception (`Error during execution: …`, as bfcl-eval's
    executor writes it) or a returned `{"error": …}` (sometimes inside a list).
    """
    if text.startswith("Error during execution"):
        return text
    if '"error"' not in text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        obj = obj[0]
    if isinstance(obj, dict) and "error" in obj:
        return str(obj["error"])
    return None


def _section(config: dict[str, Any], cls: str) -> dict[str, Any]:
    return config.setdefault(cls, {})


def _login(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    cls = world.owner(call.name)
    if cls in ("TwitterAPI", "TradingBot"):
        _section(config, cls)["authenticated"] = True
        return f"{cls}.authenticated"
    if cls == "TicketAPI":
        _section(config, cls)["current_user"] = config.get(cls, {}).get("current_user") or "user"
        return "TicketAPI.current_user"
    if cls == "MessageAPI":
        users = config.get(cls, {}).get("user_map") or getattr(world.instances[cls], "user_map", {})
        if not users:
            return None
        _section(config, cls)["current_user"] = next(iter(users.values()))
        return "MessageAPI.current_user"
    return None


def _open_market(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    _section(config, "TradingBot")["market_status"] = "Open"
    return "TradingBot.market_status"


def _fuel(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    section = _section(config, "VehicleControlAPI")
    section["fuelLevel"] = max(float(section.get("fuelLevel", 0.0)), _PATCH_FUEL_GALLONS)
    return "VehicleControlAPI.fuelLevel"


def _brake(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    section = _section(config, "VehicleControlAPI")
    section["brakePedalStatus"] = "pressed"
    section["brakePedalForce"] = 1000.0
    return "VehicleControlAPI.brakePedal"


def _lock_doors(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    doors = dict(getattr(world.instances["VehicleControlAPI"], "doorStatus", {}))
    if not doors:
        return None
    _section(config, "VehicleControlAPI")["doorStatus"] = {d: "locked" for d in doors}
    return "VehicleControlAPI.doorStatus"


def _cwd_names(world: World) -> list[str] | None:
    """Names of the directories from the root's children down to the current directory."""
    fs = world.instances.get("GorillaFileSystem")
    if fs is None:
        return None
    names: list[str] = []
    node = fs._current_dir
    while node is not None and node is not fs.root:
        names.append(node.name)
        node = node.parent
    return list(reversed(names))


def _missing_file(config: dict[str, Any], world: World, call: ToolCall) -> str | None:
    if call.name not in _FILE_READERS:
        return None
    name = call.arguments.get("file_name") or call.arguments.get("source")
    if not isinstance(name, str) or "/" in name or not name.strip():
        return None
    path = _cwd_names(world)
    root = config.get("GorillaFileSystem", {}).get("root")
    if path is None or not isinstance(root, dict) or not root:
        return None
    node = next(iter(root.values()))  # bfcl-eval loads only the first entry under "root"
    for part in path:
        node = node.get("contents", {}).get(part)
        if not isinstance(node, dict) or node.get("type") != "directory":
            return None
    contents = node.setdefault("contents", {})
    if name in contents:
        return None
    contents[name] = {"type": "file", "content": f"Contents of {name}."}
    return "GorillaFileSystem.file"


# (substring of the error message, patch) — first match wins.
_RULES: tuple[tuple[str, PatchFn], ...] = (
    ("not authenticated", _login),
    ("No user is currently logged in", _login),
    ("Market is closed", _open_market),
    ("Fuel tank is empty", _fuel),
    ("Brake pedal needs to be pressed", _brake),
    ("Must press the brake fully", _brake),
    ("All doors must be locked", _lock_doors),
    ("No such file", _missing_file),
)


def patch_config(
    config: dict[str, Any], world: World, call: ToolCall, result_text: str
) -> tuple[dict[str, Any], str] | None:
    """A minimally patched copy of `config` that should let `call` succeed, and the patch name.

    `world` is the simulator as it was when `call` failed (read only: e.g. the current directory).
    """
    message = error_message(result_text)
    if message is None:
        return None
    for needle, rule in _RULES:
        if needle in message:
            patched = copy.deepcopy(config)
            name = rule(patched, world, call)
            if name is not None and patched != config:
                return patched, name
            return None
    return None
