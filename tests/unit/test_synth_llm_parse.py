"""Defensive parsing of model replies (pure; the transport is tested against a stub server)."""

from __future__ import annotations

import pytest

from graphs.synthesis.llm import extract_json


@pytest.mark.parametrize(
    ("text", "tag", "value"),
    [
        ('<plan>{"turns": [["cd"]]}</plan>', "plan", {"turns": [["cd"]]}),
        ('Sure!\n<PLAN>\n{"turns": []}\n</PLAN> done', "plan", {"turns": []}),
        ('```json\n["a", "b"]\n```', "queries", ["a", "b"]),
        ('<think>{"ok": false}</think><verdict>{"ok": true}</verdict>', "verdict", {"ok": True}),
        ('<think>unfinished reasoning {"ok": false}', "verdict", None),
        ('Here you go: {"folder": "x"} and more text', "arguments", {"folder": "x"}),
        ('<arguments>{bad json}</arguments> {"folder": "y"}', "arguments", {"folder": "y"}),
        ("no json here at all", "plan", None),
        ("", "plan", None),
    ],
)
def test_extract_json(text, tag, value):
    if value is None:
        with pytest.raises(ValueError):
            extract_json(text, tag)
    else:
        assert extract_json(text, tag) == value
