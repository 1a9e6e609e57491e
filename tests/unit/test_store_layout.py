"""How a buffer record is stored: details JSON + a binary live part, and the event log's fields.

Both stores keep records in this form (`rods.store.changes`); it is what a run stores, so its
layout is a contract. Here: every record survives the round trip exactly, events decode to what
was written even when a live part holds the separator byte, damaged parts give a clear error,
and the store's Lua scripts load and ship with the package.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rods.pool import TaskRecord
from rods.store import scripts
from rods.store.changes import (
    LIVE_HEAD,
    SEP,
    Change,
    ChangeSet,
    decode_event,
    decode_parts,
    decode_record,
    encode_details,
    encode_live,
    encode_record,
)
from rods.store.events import TaskStats

means = st.floats(allow_nan=False, allow_infinity=False, width=64)
steps = st.integers(min_value=0, max_value=2**53)
records = st.builds(
    TaskRecord,
    task_id=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters=SEP),
        min_size=1,
        max_size=30,
    ),
    category=st.sampled_from(["base", "long_context"]),
    origin=st.sampled_from(["seed", "synthetic"]),
    generation=st.integers(0, 5),
    state=st.sampled_from(["staged", "active", "retired"]),
    seq=st.integers(0, 10**6),
    priority=means,
    admitted_step=steps,
    promoted_step=st.none() | steps,
    retired_step=st.none() | steps,
    retired_reason=st.none() | st.sampled_from(["trial", "hard", "manual"]),
    visits=st.integers(0, 2**32 - 1),
    last_mean=st.none() | means,
    last_var=st.none() | means,
    last_seen_step=st.none() | steps,
    history=st.lists(means, max_size=8).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_every_record_survives_the_round_trip(record: TaskRecord) -> None:
    raw = encode_record(record)
    assert decode_record(raw).model_dump_json() == record.model_dump_json()  # -0.0 included
    details, live = raw
    assert len(live) == LIVE_HEAD.size + 8 * len(record.history)
    assert json.loads(details)["task_id"] == record.task_id
    assert "visits" not in json.loads(details) and "state" not in json.loads(details)
    assert details.endswith('"retired_step":' + json.dumps(record.retired_step) + ","
                            '"retired_reason":' + json.dumps(record.retired_reason) + "}")  # fmt: skip


def test_edge_values_survive_the_round_trip() -> None:
    for kw in (
        {"last_mean": -0.0, "last_var": -0.0, "history": (-0.0,)},
        {"last_mean": 5e-324, "last_var": 1.7976931348623157e308, "last_seen_step": 2**53},
        {"visits": 2**32 - 1, "last_seen_step": 0, "history": (0.1,) * 255},
    ):
        record = _record("a", **kw)
        assert decode_record(encode_record(record)).model_dump_json() == record.model_dump_json()


def _record(task_id: str, **kw: object) -> TaskRecord:
    base = {"task_id": task_id, "category": "base", "origin": "synthetic", "state": "active"}
    return TaskRecord.model_validate(base | kw)


def test_event_fields_decode_even_with_the_separator_inside_a_live_part() -> None:
    # visits 30 is the byte 0x1e (SEP) inside the live part; the mean's bytes hold it too
    old = _record("a", visits=29, last_mean=0.5, last_seen_step=1, history=(0.5,))
    new = old.model_copy(update={"visits": 30, "last_mean": 1.1754943508222875e-38})
    promoted = _record("b", state="staged").model_copy(update={"state": "active"})
    assert SEP.encode() in encode_live(new)
    cs = ChangeSet(
        (
            Change("a", encode_record(old), old, new),
            Change("b", encode_record(_record("b", state="staged")), None, promoted),
            Change("c", None, None, _record("c", visits=30)),
        ),
        kind="report",
        step=3,
        t=1.0,
    )
    event = decode_event(cs.event_header(), *cs.event_body())
    assert event.records == (promoted, _record("c", visits=30))  # lifecycle changed: full records
    assert event.stats == (
        TaskStats(
            task_id="a", visits=30, last_mean=new.last_mean, last_seen_step=1, history=(0.5,)
        ),
    )
    assert event.task_ids == ["b", "c", "a"]
    assert cs.event() == event


def test_version_1_events_still_decode() -> None:
    rec = _record("a", visits=2, last_mean=0.25, history=(0.5, 0.25))
    header = json.dumps({"v": 1, "kind": "report", "step": 4, "t": 1.0, "request_id": None})
    event = decode_event(header, "[" + rec.model_dump_json() + "]")
    assert event.v == 1 and event.records == (rec,) and event.stats == ()


def test_damaged_parts_are_a_clear_error() -> None:
    rec = _record("a", history=(0.5, 0.25))
    details, live = encode_record(rec)
    for bad in (live[:-3], live + b"x", b"{}", b"\x00" + live[1:2] + b"?" + live[3:]):
        with pytest.raises(ValueError, match="not in the layout RODS writes"):
            decode_parts(details, bad)
    with pytest.raises(ValueError, match="more than 255"):
        encode_live(rec.model_copy(update={"history": (0.5,) * 256}))
    assert encode_details(rec) == details


def test_every_lua_script_loads_with_its_fields_filled_in_and_ships() -> None:
    """Each `rods/store/lua/*.lua` documents its KEYS and ARGV, loads with every placeholder
    replaced by a name of `rods.store.keys`, and is in the package data of a built wheel."""
    lua = Path(scripts.__file__).parent / "lua"
    names = sorted(f.stem for f in lua.glob("*.lua"))
    assert names == ["apply", "publish"]
    for name in names:
        text = scripts.load(name)
        assert "-- KEYS" in text and "-- ARGV" in text, name
        assert not re.search(r"@[A-Z_]+@", text), name
        assert scripts.load(name) is text  # read once
    assert "'*', 'event', ARGV[4]" in scripts.load("apply")
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "store/lua/*.lua" in pyproject["tool"]["setuptools"]["package-data"]["rods"]
