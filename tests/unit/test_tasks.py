"""The task model, BFCL loading, JSONL round trips and the fixed split."""

import json
from collections import Counter

import pytest

from rods import tasks as T


def test_loads_all_800_with_ground_truth():
    tasks = T.load_bfcl_tasks()
    assert len(tasks) == 800
    assert Counter(t.category for t in tasks) == {c: 200 for c in T.CATEGORIES}
    assert sum(len(turn) for t in tasks for turn in t.ground_truth) == 4625
    assert {c for t in tasks for c in t.involved_classes} == set(T.CLASSES)


def test_miss_func_holdouts_are_names_on_empty_turns():
    tasks = T.load_bfcl_tasks(["miss_func"])
    assert all(t.missed_function for t in tasks)
    for t in tasks:
        for u, names in t.missed_function.items():
            assert t.question[int(u)] == []  # bfcl-eval asserts the same
            docs = {d["name"] for d in T.task_function_docs(t)}
            assert set(names) <= docs


def test_bfcl_entries_round_trip_losslessly(tmp_path):
    data = T._bfcl_data_dir()
    path = tmp_path / "all.jsonl"
    originals = []
    for c in T.CATEGORIES:
        name = f"BFCL_v4_multi_turn_{c}.json"
        answers = {
            json.loads(line)["id"]: json.loads(line)["ground_truth"]
            for line in (data / "possible_answer" / name).open()
        }
        for line in (data / name).open():
            entry = json.loads(line)
            originals.append({**entry, "ground_truth": answers[entry["id"]]})
    T.write_tasks(path, (T.parse_task(o) for o in originals))
    assert [json.loads(line) for line in path.open()] == originals
    assert T.read_tasks(path) == [T.parse_task(o) for o in originals]


def test_rods_block_round_trips(tmp_path):
    seed = T.get_bfcl_task("multi_turn_base_0")
    body = seed.to_bfcl()
    sig = T.Signature(classes=("GorillaFileSystem",), depth=3, topology="chain", edges=((0, 1),))
    task = T.Task.model_validate(
        {
            **body,
            "id": T.synthetic_id("base", body),
            "rods": {"origin": "synthetic", "parent_id": seed.id, "root_id": seed.id,
                     "generation": 1, "synthesizer": "procedural", "signature": sig.model_dump()},
        }
    )
    T.write_tasks(tmp_path / "x.jsonl", [task])
    (back,) = T.read_tasks(tmp_path / "x.jsonl")
    assert back == task and back.rods.signature == sig
    assert back.category == "base" and back.id.startswith("multi_turn_base_x")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", ":1: not valid JSON"),
        ("[1, 2]", ":1: expected a JSON object"),
        ('{"id": "multi_turn_base_1"}', "field 'question'"),
    ],
)
def test_malformed_task_file_names_line_and_field(tmp_path, line, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(T.TaskFileError, match=needle.replace("[", r"\[")) as info:
        T.read_tasks(path)
    assert str(path) in str(info.value)


def test_malformed_nested_field_is_named(tmp_path):
    entry = T.get_bfcl_task("multi_turn_base_3").to_bfcl()
    entry["question"][1][0]["content"] = 7
    good = T.get_bfcl_task("multi_turn_base_4").to_bfcl()
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(entry) + "\n")
    with pytest.raises(T.TaskFileError, match=r":2: field 'question.1.0.content'"):
        T.read_tasks(path)


def test_turn_count_mismatch_is_an_error():
    entry = T.get_bfcl_task("multi_turn_base_3").to_bfcl()
    entry["ground_truth"] = entry["ground_truth"][:-1]
    with pytest.raises(T.TaskFileError, match="question turns but"):
        T.parse_task(entry)


def test_write_is_atomic_on_error(tmp_path):
    path = tmp_path / "keep.jsonl"
    T.write_tasks(path, [T.get_bfcl_task("multi_turn_base_0")])
    before = path.read_text()

    def broken():
        yield T.get_bfcl_task("multi_turn_base_1")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        T.write_tasks(path, broken())
    assert path.read_text() == before


# ---------------------------------------------------------------- split


def test_split_counts_and_disjointness():
    train, held = T.split_ids("train"), T.split_ids("eval")
    assert len(train) == len(held) == 400
    assert not train & held
    assert train | held == {t.id for t in T.load_bfcl_tasks()}
    for ids in (train, held):
        assert Counter(T.category_of(i) for i in ids) == {c: 100 for c in T.CATEGORIES}


def test_split_is_by_scenario_index():
    train = T.split_ids("train")
    by_index: dict[int, set[bool]] = {}
    for t in T.load_bfcl_tasks():
        by_index.setdefault(T.scenario_index(t.id), set()).add(t.id in train)
    assert all(len(sides) == 1 for sides in by_index.values())
    assert by_index[40] == by_index[43]  # they share a first user turn


def test_no_held_out_task_shares_a_first_user_turn_with_training():
    train = T.split_ids("train")
    first = {True: set(), False: set()}
    for t in T.load_bfcl_tasks():
        first[t.id in train].add(t.question[0][0].content)
    assert not first[True] & first[False]


def test_committed_split_matches_the_generator():
    made = T.make_split()
    assert set(made["train"]) == T.split_ids("train")
    assert set(made["eval"]) == T.split_ids("eval")
    assert T.make_split(seed=1)["train"] != made["train"]  # the seed matters
