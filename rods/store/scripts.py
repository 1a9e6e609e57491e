"""The store's Lua scripts: `rods/store/lua/<name>.lua`, read once per process.

- `apply.lua`: every buffer write, compare-and-set on whole records (`rods.store.buffer`).
- `publish.lua`: boundary requests with dedup and cooldown (`rods.store.stream`).

Each file's header documents its KEYS and ARGV. A script spells the stream fields it writes as
placeholders (`@EVENT@`, `@RECORDS@`, `@LIVE@`, `@REQUEST@`) that `load` fills in with the names
of `rods.store.keys`, so that module stays the only place a cross-process name is spelt.
Register the text with `r.register_script(load(name))`: redis-py's `Script` sends EVALSHA and
reloads a script that a server restart flushed (NOSCRIPT → SCRIPT LOAD).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from rods.store.keys import EVENT_FIELD, LIVE_FIELD, RECORDS_FIELD, REQUEST_FIELD

FIELDS = {
    "@EVENT@": EVENT_FIELD,
    "@RECORDS@": RECORDS_FIELD,
    "@LIVE@": LIVE_FIELD,
    "@REQUEST@": REQUEST_FIELD,
}
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")


@cache
def load(name: str) -> str:
    """The text of `lua/<name>.lua`, placeholders filled in (cached: read once per process)."""
    text = resources.files("rods.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    text = _PLACEHOLDER.sub(lambda m: _field(m.group(), name), text)
    return text


def _field(placeholder: str, name: str) -> str:
    if placeholder not in FIELDS:
        raise ValueError(f"lua/{name}.lua: unknown placeholder {placeholder} (known: {FIELDS})")
    return FIELDS[placeholder]
