"""Worlds, episodes and the progress reward (no services needed)."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rods import tasks as T
from rods.env import Episode, GroundTruthCache, World, score_calls
from rods.env.episode import reveal_message


@pytest.fixture(scope="module")
def cache():
    return GroundTruthCache()


def tagged(*calls: T.ToolCall) -> str:
    return "\n".join(
        f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>" for c in calls
    )


def play_ground_truth(task, cache, **kw) -> Episode:
    ep = Episode(task, cache, **kw)
    gt = cache.runtime(task).ground_truth
    while not ep.done:
        calls = gt.turns[ep.turn].calls
        if calls:
            ep.step(tagged(*calls))
        ep.step("Done.")
    return ep


def test_ground_truth_scores_full_progress_on_all_800(cache):
    for task in T.load_bfcl_tasks():
        gt = cache.runtime(task).ground_truth
        assert not gt.problems, (task.id, gt.problems)
        score = score_calls(task, [list(t.calls) for t in gt.turns], cache)
        assert score.correct and score.progress == 1.0, (task.id, score.turn_success)


def test_episode_on_ground_truth_is_correct(cache):
    for tid in ["multi_turn_base_0", "multi_turn_miss_func_0", "multi_turn_miss_param_0",
                "multi_turn_long_context_0"]:
        ep = play_ground_truth(T.get_bfcl_task(tid), cache)
        score = ep.score()
        assert ep.stop_reason == "completed"
        assert score.correct and score.progress == 1.0, (tid, score)
        assert not score.errors


def test_text_answer_ends_turn_and_missing_calls_fail(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    ep = Episode(task, cache)
    assert ep.opening() == [m.model_dump() for m in task.question[0]]
    res = ep.step("I cannot help with that.")
    assert res.turn_done and res.turn_success is False
    assert res.next_user == [m.model_dump() for m in task.question[1]]
    assert ep.turn == 1


def test_step_limit_ends_the_turn(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    ep = Episode(task, cache, max_steps_per_turn=2)
    pwd = tagged(T.ToolCall(name="pwd"))
    assert not ep.step(pwd).turn_done
    res = ep.step(pwd)
    assert res.turn_done and ep.turn == 1 and ep.errors["turn/step_limit"] == 1


def test_miss_func_reveal(cache):
    task = T.get_bfcl_task("multi_turn_miss_func_0")  # `sort` held out until turn 3
    ep = Episode(task, cache)
    assert "sort" not in {d["name"] for d in ep.tools()}
    while ep.turn < 3:
        res = ep.step("ok")
    assert res.next_user == [{"role": "user", "content": reveal_message()}]
    assert "sort" in {d["name"] for d in ep.tools()}
    assert reveal_message() == "I have updated some more functions you can choose from. What about now?"


def test_hidden_function_still_executes_as_in_bfcl(cache):
    task = T.get_bfcl_task("multi_turn_miss_func_0")
    ep = Episode(task, cache)
    res = ep.step(tagged(T.ToolCall(name="sort", arguments={"file_name": "nope.txt"})))
    assert "not available" not in res.tool_messages[0]["content"]
    assert not ep.errors.get("call/unknown_function")


def test_truncation_fails_remaining_turns(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    ep = Episode(task, cache)
    gt = cache.runtime(task).ground_truth
    ep.step(tagged(*gt.turns[0].calls))
    ep.step("done")
    ep.truncate("max_tokens")
    score = ep.score()
    assert ep.stop_reason == "truncated:max_tokens"
    assert score.turn_success == [True, False, False, False]
    assert score.progress == 0.25 and not score.correct
    with pytest.raises(RuntimeError):
        ep.step("more")


def test_empty_ground_truth_turn_requires_no_call(cache):
    task = next(t for t in T.load_bfcl_tasks(["miss_param"]) if [] in t.ground_truth)
    u = task.ground_truth.index([])
    gt = cache.runtime(task).ground_truth
    calls = [list(t.calls) for t in gt.turns]
    assert score_calls(task, calls, cache).turn_success[u] is True
    calls[u] = [T.ToolCall(name=calls[u - 1][0].name if calls[u - 1] else "pwd", arguments={})]
    assert score_calls(task, calls, cache).turn_success[u] is False


def test_arguments_are_not_shared_between_executions(cache):
    # post_tweet keeps its `mentions` list and `mention` extends it: executions must not alias
    task = T.get_bfcl_task("multi_turn_base_90")
    gt = cache.runtime(task).ground_truth
    before = [c.model_dump() for t in gt.turns for c in t.calls]
    for _ in range(2):
        assert score_calls(task, [list(t.calls) for t in gt.turns], cache).correct
    assert [c.model_dump() for t in gt.turns for c in t.calls] == before


def test_fresh_worlds_are_independent(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    rt = cache.runtime(task)
    a, b = rt.template.fresh(), rt.template.fresh()
    a.execute(T.ToolCall(name="mkdir", arguments={"dir_name": "zzz"}))
    assert a.public_state() != b.public_state()
    assert b.public_state() == World.load(task).public_state()


def test_parallel_episodes_in_threads(cache):
    tasks = [t for t in T.load_bfcl_tasks() if T.scenario_index(t.id) < 15]
    barrier = threading.Barrier(4)

    def run(task):
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        return play_ground_truth(task, cache).score()

    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(run, tasks * 2))
    assert all(s.correct and s.progress == 1.0 for s in scores)


# ---------------------------------------------------------------- hostile input


HOSTILE_NAMES = [
    "__import__", "eval", "exec", "open", "_load_scenario", "__init__", "__class__",
    "__dict__", "__getattribute__", "__reduce__", "_current_dir", "os.system", "ls.__globals__",
    "getattr", "globals", "print", "compile", "breakpoint", "type",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_execute_nothing(cache, name):
    task = T.get_bfcl_task("multi_turn_base_0")
    ep = Episode(task, cache)
    before = ep.world.public_state()
    res = ep.step(tagged(T.ToolCall(name=name, arguments={"source": "__import__('os').system('id')"})))
    assert ep.errors == {"call/unknown_function": 1}
    assert "not available" in res.tool_messages[0]["content"]
    assert ep.world.public_state() == before


def test_code_in_arguments_is_data(cache, tmp_path):
    sentinel = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {sentinel}')"
    task = T.get_bfcl_task("multi_turn_base_0")
    calls = [[T.ToolCall(name="mkdir", arguments={"dir_name": payload}),
              T.ToolCall(name="cd", arguments={"folder": f"'); {payload}; ('"}),
              T.ToolCall(name="echo", arguments={"content": payload, "file_name": "{{7*7}}"})]]
    score = score_calls(task, calls, cache)
    assert not sentinel.exists()
    assert score.turn_success[0] is False and not score.correct


def test_wrong_argument_names_and_types_are_counted(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    calls = [[T.ToolCall(name="cd", arguments={"directory": "document"}),
              T.ToolCall(name="cd", arguments={}),
              T.ToolCall(name="mkdir", arguments={"dir_name": ["not", "a", "string"]})]]
    score = score_calls(task, calls, cache)
    assert score.errors.get("call/bad_arguments") == 2
    assert sum(score.errors.values()) >= 2


def test_hostile_ground_truth_string_is_a_problem_not_an_execution(cache, tmp_path):
    sentinel = tmp_path / "pwned"
    entry = T.get_bfcl_task("multi_turn_base_0").to_bfcl()
    entry["id"] = "multi_turn_base_hostile"
    entry["ground_truth"][0] = [f"cd(folder=__import__('os').system('touch {sentinel}'))", "_load_scenario({})"]
    gt = GroundTruthCache().runtime(T.parse_task(entry)).ground_truth
    assert len(gt.problems) == 2 and not sentinel.exists()


def test_openai_tool_schemas():
    from rods.env.tools import openai_tools

    task = T.get_bfcl_task("multi_turn_base_0")
    tools = openai_tools(T.task_function_docs(task))
    assert len(tools) == len(T.task_function_docs(task))
    mkdir = next(t["function"] for t in tools if t["function"]["name"] == "mkdir")
    assert mkdir["parameters"]["type"] == "object"
    assert mkdir["parameters"]["required"] == ["dir_name"]
    assert "response" not in mkdir
    text = json.dumps(tools)
    assert '"dict"' not in text and '"float"' not in text


def test_mutable_default_arguments_do_not_leak_between_worlds(cache):
    # TwitterAPI.post_tweet(mentions=[]): omitting `mentions` and then extending the tweet's
    # mentions must not change the default that the next world's post_tweet stores.
    task = next(t for t in T.load_bfcl_tasks() if "TwitterAPI" in t.involved_classes)
    for _ in range(2):
        world = cache.runtime(task).template.fresh()
        world.instances["TwitterAPI"].authenticated = True
        posted = json.loads(world.execute(T.ToolCall(name="post_tweet", arguments={"content": "hi"})).text)
        assert posted.get("mentions") == [], posted
        world.execute(T.ToolCall(name="mention", arguments={"tweet_id": posted["id"],
                                                            "mentioned_usernames": ["@x"]}))
    import inspect

    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code.posting_api import TwitterAPI

    assert inspect.signature(TwitterAPI.post_tweet).parameters["mentions"].default == []


# ------------------------------------------------------------ env hints (the env-hints arm)


def _contents(res) -> list[str]:
    return [m["content"] for m in res.tool_messages]


def test_hints_are_off_by_default_and_say_what_is_allowed_when_on(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    bad = tagged(T.ToolCall(name="mkdirs", arguments={"dir_name": "x"}),
                 T.ToolCall(name="cd", arguments={"directory": "document"}),
                 T.ToolCall(name="mkdir", arguments={"dir_name": 3}))
    plain = Episode(task, cache).step(bad + "<tool_call>{not json</tool_call>")
    assert not any("Hint" in c for c in _contents(plain))
    ep = Episode(task, cache, hints=True)
    res = ep.step(bad + "<tool_call>{not json</tool_call>")
    parse, unknown, args, types = _contents(res)
    assert parse.startswith("Error: parse/bad_json") and '"arguments"' in parse
    names = {d["name"] for d in ep.tools()}
    assert "'mkdirs' is not an available function" in unknown
    assert "Did you mean 'mkdir'?" in unknown and all(n in unknown for n in names)
    assert "missing required argument(s): folder" in args and "unexpected argument(s): directory" in args
    assert "Expected: cd(folder: string)" in args
    assert "argument 'dir_name' must be string, got int" in types
    # the hints are for the policy only: the recorded results (what the response check compares)
    # are bfcl-eval's own texts, as without hints
    plain_ep = Episode(task, cache)
    plain_ep.step(bad)
    hinted_ep = Episode(task, cache, hints=True)
    hinted_ep.step(bad)
    assert hinted_ep.results_so_far == plain_ep.results_so_far
    assert not any("Hint" in r for r in hinted_ep.results_so_far)


def test_hints_reach_the_episode_from_the_train_config():
    from trainer.config import TrainConfig
    from trainer.types import RolloutSettings

    cfg = TrainConfig.model_validate({"env": {"hints": True}})
    assert RolloutSettings.from_config(cfg.rollout, env_hints=cfg.env.hints).env_hints is True
    assert TrainConfig().env.hints is False


# ------------------------------------------------------------ the bfcl protocol


def test_bfcl_step_limit_is_read_from_bfcl_eval():
    from bfcl_eval.constants.default_prompts import MAXIMUM_STEP_LIMIT

    from rods.env.episode import bfcl_step_limit

    assert bfcl_step_limit() == MAXIMUM_STEP_LIMIT + 1 == 21


def test_bfcl_protocol_a_decode_failure_ends_the_turn_without_a_message(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    train = Episode(task, cache)
    res = train.step("<tool_call>{not json</tool_call>")
    assert not res.turn_done and _contents(res)[0].startswith("Error: parse/bad_json")
    bfcl = Episode(task, cache, protocol="bfcl")
    res = bfcl.step("<tool_call>{not json</tool_call>")
    assert res.turn_done and res.tool_messages == [] and bfcl.turn == 1
    assert bfcl.errors["parse/bad_json"] == 1
    # a message with one good and one bad block runs the good one, silently drops the other
    res = bfcl.step(tagged(T.ToolCall(name="pwd")) + "<tool_call>[1, </tool_call>")
    assert not res.turn_done and len(res.tool_messages) == 1 and res.tool_messages[0]["name"] == "pwd"
    with pytest.raises(ValueError):
        Episode(task, cache, protocol="bfcl", hints=True)


def test_bfcl_protocol_step_limit_force_quits_the_episode(cache):
    task = T.get_bfcl_task("multi_turn_base_0")
    assert task.n_turns > 1
    ep = Episode(task, cache, protocol="bfcl", max_steps_per_turn=2)
    pwd = tagged(T.ToolCall(name="pwd"))
    ep.step(pwd)
    res = ep.step(pwd)
    assert res.turn_done and res.done and res.next_user == []
    assert ep.stop_reason == "truncated:step_limit"
    assert ep.score().progress == 0.0 and not ep.score().correct
