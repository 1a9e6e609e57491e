"""The synthesis audit on fixtures whose answer is known (BFCL's training split; no services).

Human vs human (two halves of the training scenarios) must look alike: AUC near 0.5, no cue
phrase, clauses per call within tolerance. A templated rewrite of the same tasks must be caught:
AUC near 1, the opener share and the cue phrases flagged.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from cli.synth import synth_app
from graphs.synthesis import audit_text as text
from graphs.synthesis.audit import audit, ground_truth_values, task_facts
from rods.tasks import Task, get_bfcl_task, load_split, scenario_index, write_tasks


@pytest.fixture(scope="module")
def train() -> list[Task]:
    return load_split("train")


def _templated(task: Task, u: int) -> Task:
    """Every turn opens with the same greeting and request form; miss_param says 'I will specify'."""
    body = task.model_dump()
    for k, msgs in enumerate(body["question"]):
        for m in msgs:
            if m["content"]:
                cue = " The name I will specify later." if task.category == "miss_param" and k == 0 else ""
                m["content"] = f"Hello there. I'd like you to handle this; after that, report back. {m['content']}{cue}"
    body["id"] = f"multi_turn_{task.category}_x{u:04d}"
    body["rods"] = {"origin": "synthetic", "root_id": task.id, "parent_id": task.id}
    return Task.model_validate(body)


def test_clauses_openers_and_values() -> None:
    assert text.count_clauses("Find 'final_report.pdf' in the documents folder and move it to 'temp'.") == 1
    assert text.count_clauses("Go to 'docs'; after that, list the files. Then, sort them!") == 3
    assert text.count_clauses("Write 'Hello. World. Again.' into log.txt, and then show it") == 2
    assert text.count_clauses("") == 0
    assert text.opener("Hello there. I need a hand.") == "hello there"
    assert text.opener("Could you kindly move the file?") == "could you kindly"
    task = get_bfcl_task("multi_turn_base_0")
    values = ground_truth_values(task)
    assert "final_report.pdf" in values and all(len(v) >= 2 for v in values)
    facts = task_facts(task)
    assert facts.turns_n == task.n_turns and facts.depth >= 1 and facts.longest_result > 0
    assert facts.clauses_per_call > 0


def test_auc_and_folds() -> None:
    assert text.auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert text.auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert text.auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    assert math.isnan(text.auc([0.5], [1]))
    folds = text.grouped_folds(["a", "a", "b", "c", "c", "d"], k=2)
    assert folds[0] == folds[1] and folds[3] == folds[4] and set(folds) == {0, 1}


def test_human_halves_are_indistinguishable(train: list[Task]) -> None:
    even = [t for t in train if scenario_index(t.id) % 2 == 0]
    odd = [t for t in train if scenario_index(t.id) % 2 == 1]
    report = audit(even, odd)
    overall = report["categories"]["all"]
    assert overall["auc"] < 0.65
    assert overall["cue_variants"] == 0 and overall["cue_phrases"] == {}
    assert overall["copied_variants"] <= 0.05 * len(even)  # a few stock sentences recur across scenarios
    for category in ("base", "miss_func", "miss_param", "long_context"):
        flags = report["categories"][category]["flags"]
        assert not {"auc", "cue_phrases", "clauses_per_call", "long_results"} & set(flags)


def test_templated_variants_are_caught(train: list[Task]) -> None:
    even = [t for t in train if scenario_index(t.id) % 2 == 0]
    odd = [t for t in train if scenario_index(t.id) % 2 == 1]
    variants = [_templated(t, u) for u, t in enumerate(even)]
    report = audit(variants, odd)
    overall = report["categories"]["all"]
    assert overall["auc"] > 0.95
    assert {"auc", "opener", "cue_phrases", "clauses_per_call"} <= set(overall["flags"])
    assert overall["variants"]["top_opener"][0] == "hello there"
    assert overall["variants"]["top_opener"][2] == 1.0
    assert "i'd like you" in overall["cue_phrases"]
    n_miss_param = sum(t.category == "miss_param" for t in variants)
    assert report["categories"]["miss_param"]["cue_phrases"].get("i will specify") == n_miss_param
    assert report["categories"]["base"]["cue_phrases"].get("i will specify") is None


def test_cli_audit_json_and_no_eval(tmp_path, train: list[Task]) -> None:
    runner = CliRunner()
    path = tmp_path / "v.jsonl"
    write_tasks(path, [_templated(t, u) for u, t in enumerate(train[:12])])
    ref = tmp_path / "ref.jsonl"
    write_tasks(ref, train[100:112])
    result = runner.invoke(synth_app, ["audit", str(path), "--against", str(ref), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["variants"] == 12 and "base" in payload["categories"]
    table = runner.invoke(synth_app, ["audit", str(path), "--against", str(ref)])
    assert table.exit_code == 0 and "discriminator AUC" in table.stdout and "reference copies" in table.stdout
    refused = runner.invoke(synth_app, ["audit", str(path), "--against", "eval"])
    assert refused.exit_code == 2


def _borrowing(task: Task, donor: Task, u: int) -> Task:
    """The task with its first user turn replaced by the donor's first user turn (text reuse)."""
    body = task.model_dump()
    body["question"][0][0]["content"] = donor.question[0][0].content
    body["id"] = f"multi_turn_{task.category}_y{u:04d}"
    body["rods"] = {"origin": "synthetic", "root_id": task.id, "parent_id": task.id}
    return Task.model_validate(body)


def test_variants_that_reuse_reference_text_are_counted(train: list[Task]) -> None:
    even = [t for t in train if scenario_index(t.id) % 2 == 0 and t.category == "base"]
    odd = [t for t in train if scenario_index(t.id) % 2 == 1 and t.category == "base"]
    variants = [_borrowing(t, d, u) for u, (t, d) in enumerate(zip(even, odd, strict=False))]
    borrowed = audit(variants, odd)["categories"]["base"]
    assert borrowed["copied_variants"] == len(variants)  # every first turn is a reference turn
    own = audit(even, odd)["categories"]["base"]
    assert own["copied_variants"] < 0.1 * len(even)
