"""The safe wrapper around bfcl-eval's official multi-turn checker."""

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

from rods import tasks as T
from rods.env import GroundTruthCache, score_calls
from rods.env.official import decoded_turns, official_correct


def test_ground_truth_is_officially_correct_and_globals_are_cleaned():
    cache = GroundTruthCache()
    before = set(vars(multi_turn_utils))
    for tid in ["multi_turn_base_0", "multi_turn_miss_func_3", "multi_turn_long_context_5"]:
        task = T.get_bfcl_task(tid)
        calls = [list(t.calls) for t in cache.runtime(task).ground_truth.turns]
        assert official_correct(task, calls) and score_calls(task, calls, cache).correct
    assert set(vars(multi_turn_utils)) == before


def test_hostile_calls_never_reach_eval(tmp_path):
    sentinel = tmp_path / "pwned"
    task = T.get_bfcl_task("multi_turn_base_0")
    calls = [
        [T.ToolCall(name="open", arguments={"file": str(sentinel), "mode": "w"}),
         T.ToolCall(name="__import__", arguments={"name": "os"}),
         T.ToolCall(name="ls", arguments={"a": float("nan")}),
         T.ToolCall(name="cd", arguments={"folder": "x') or open('" + str(sentinel) + "', 'w"})],
        [], [], [],
    ]
    decoded = decoded_turns(task, calls)
    assert decoded[0][0][:3] == ["rods_refused_call()"] * 3
    assert official_correct(task, calls) is False
    assert not sentinel.exists()


def test_turn_count_mismatch_is_force_terminated():
    task = T.get_bfcl_task("multi_turn_base_0")
    assert official_correct(task, [[]]) is False
