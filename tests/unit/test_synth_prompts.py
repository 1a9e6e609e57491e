"""The LLM judge's prompt shows the initial configuration, shortened but with every class."""

from __future__ import annotations

import json

from graphs.synthesis import prompts
from rods.tasks import Task, get_bfcl_task


def _judge_text(task: Task) -> str:
    return "\n".join(m["content"] for m in prompts.judge_messages(task))


def test_judge_sees_the_initial_configuration():
    task = get_bfcl_task("multi_turn_base_0")
    text = _judge_text(task)
    assert "Initial configuration" in text
    for cls in task.initial_config:
        assert cls in text
    assert "final_report.pdf" in text  # a file the user mentions is there to check against
    # A changed world changes the prompt: the judge can tell a query that contradicts it.
    moved = task.model_copy(update={"initial_config": {"TwitterAPI": {"username": "zed_q"}}})
    assert "zed_q" in _judge_text(moved) and "final_report.pdf" not in _judge_text(moved).split("ground-truth")[0]


def test_long_configurations_are_shortened_not_dropped():
    config = {
        "GorillaFileSystem": {"root": {"f": {"type": "file", "content": "x" * 5000}}},
        "TicketAPI": {"tickets": [{"id": i, "title": f"t{i}"} for i in range(500)]},
        "TwitterAPI": {"username": "last_class_visible"},
    }
    text = prompts.config_text(config)
    assert len(text) <= prompts.MAX_CONFIG_CHARS
    assert "last_class_visible" in text and "488 more items" in text
    short = prompts.shorten_config(config)
    assert len(short["GorillaFileSystem"]["root"]["f"]["content"]) == prompts.MAX_CONFIG_STRING
    assert json.loads(json.dumps(short))  # still plain JSON
