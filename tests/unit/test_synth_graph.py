"""The synthesis graph with a scripted backend: success, every retry bound, patches, counting."""

from __future__ import annotations

import threading

import pytest
from langgraph.graph import END
from synth_fakes import ScriptedBackend

from graphs.synthesis import routers
from graphs.synthesis.backend import Failure, Plan, Proposal, Usage, Verdict
from graphs.synthesis.graph import EvalSeedError, check_seed, synthesize
from graphs.synthesis.state import SynthConfig, result_metrics
from rods.env.calls import parse_python_call
from rods.tasks import RodsMeta, Task, ToolCall, category_of, get_bfcl_task, split_ids

SEED_ID = "multi_turn_base_5"  # TwitterAPI + GorillaFileSystem, 4 turns, a training seed
CFG = SynthConfig()


def _edit(tag: str):
    def edit(name, args):
        return {
            k: (f"{v} ({tag})" if k in ("content", "comment_content") else v)
            for k, v in args.items()
        }

    return edit


@pytest.fixture(scope="module")
def seed() -> Task:
    assert SEED_ID in split_ids("train")
    return get_bfcl_task(SEED_ID)


def run(seed, backend, n=1, **kw):
    return synthesize(seed, n_variants=n, backend=backend, config=kw.pop("config", CFG), **kw)


def test_success_path_writes_a_valid_lineaged_task(seed):
    backend = ScriptedBackend(seed, edit=_edit("v1"), usage=Usage(10, 5, 0.001, 1))
    res = run(seed, backend, request_id="req-1")
    assert len(res.tasks) == 1 and res.attempts == 1
    assert res.failures == {} and res.rejections == {}
    task = res.tasks[0]
    assert category_of(task.id) == "base" and task.id.startswith("multi_turn_base_x")
    meta = task.rods
    assert meta.origin == "synthetic" and meta.parent_id == SEED_ID and meta.root_id == SEED_ID
    assert meta.generation == 1 and meta.synthesizer == "scripted" and meta.signature is not None
    assert meta.request_id == "req-1"
    # ground truth strings are ToolCall.to_python() of the executed calls
    post = next(s for turn in task.ground_truth for s in turn if s.startswith("post_tweet"))
    call = parse_python_call(post)
    assert ToolCall(name=call.name, arguments=call.kwargs).to_python() == post
    assert "(v1)" in post
    # usage of every backend call is summed: plan 1 + arguments 7 + queries 1 + judge 1
    assert res.model_calls == 10 and res.prompt_tokens == 100 and res.completion_tokens == 50
    assert res.cost_usd == pytest.approx(0.01)
    m = result_metrics(res)
    assert m["synth/accepted"] == 1 and m["synth/attempts_per_task"] == 1
    assert m["synth/accept_rate"] == 1.0
    assert m["synth/tokens"] == 150 and m["synth/cost_usd"] == pytest.approx(0.01)
    assert {f"time/synth/{s}" for s in ("plan", "execute", "rewrite", "critique", "augment")} <= set(m)


def test_lineage_of_a_synthetic_seed_keeps_the_root(seed):
    first = run(seed, ScriptedBackend(seed, edit=_edit("g1"))).tasks[0]
    other = "Good morning, my assistant, I have a long list of chores for you today:"
    # Same calls with new tags: a near-duplicate at the default threshold, so loosen it here.
    loose = SynthConfig(near_duplicate=0.95)
    second = run(first, ScriptedBackend(first, edit=_edit("g2"), greeting=other), config=loose).tasks
    assert len(second) == 1
    meta = second[0].rods
    assert meta.parent_id == first.id and meta.root_id == SEED_ID and meta.generation == 2


def test_variants_of_one_run_are_not_duplicates(seed):
    backend = ScriptedBackend(seed, edit=_edit("same"))  # would write the same task every time
    res = run(seed, backend, n=2)
    assert len(res.tasks) == 1
    # the second slot's three attempts all collide with the first variant
    assert res.rejections == {"pool_duplicate": 3}
    assert res.attempts == 4


def test_eval_seed_and_bad_n_are_refused(seed):
    eval_id = next(iter(sorted(split_ids("eval"))))
    eval_seed = get_bfcl_task(eval_id)
    with pytest.raises(EvalSeedError, match="held-out evaluation"):
        run(eval_seed, ScriptedBackend(eval_seed))
    with pytest.raises(ValueError, match="n_variants"):
        run(seed, ScriptedBackend(seed), n=0)


def test_a_descendant_of_an_evaluation_task_is_refused(seed):
    """A task whose own id is not held out, but whose lineage starts at a held-out task."""
    eval_id = sorted(split_ids("eval"))[0]
    meta = RodsMeta(origin="synthetic", parent_id=eval_id, root_id=eval_id, generation=1)
    child = seed.model_copy(update={"id": "multi_turn_base_x0e1", "rods": meta})
    backend = ScriptedBackend(child)
    with pytest.raises(EvalSeedError, match=eval_id):
        run(child, backend)
    assert backend.calls == {}  # refused before any backend call
    trained = meta.model_copy(update={"parent_id": SEED_ID, "root_id": SEED_ID})
    check_seed(seed.model_copy(update={"id": "multi_turn_base_x0e2", "rods": trained}))  # passes


def _held_out_base_task() -> Task:
    """The first held-out base task whose turns all call 1–3 functions (a plannable seed)."""
    for task_id in sorted(split_ids("eval")):
        task = get_bfcl_task(task_id)
        if category_of(task_id) == "base" and all(1 <= len(t) <= 3 for t in task.ground_truth):
            return task
    raise AssertionError("no held-out base task to copy")


def test_a_copy_of_an_evaluation_task_under_another_id_is_rejected():
    """The id guard cannot see a held-out task's content under a training-looking id; the
    contamination gate must: every imitation of it is rejected as an evaluation duplicate."""
    held_out = _held_out_base_task()
    copy = held_out.model_copy(update={"id": "multi_turn_base_x0e3"})
    check_seed(copy)  # passes: neither its id nor a root is held out
    user_turns = [" ".join(m.content for m in turn if m.role == "user") for turn in copy.question]
    backend = ScriptedBackend(copy, queries=[Proposal(user_turns)])
    res = run(copy, backend)
    assert res.tasks == []
    assert res.rejections.get("eval_duplicate", 0) == res.attempts > 0
    off = run(copy, ScriptedBackend(copy, queries=[Proposal(user_turns)]), contamination_guard=False)
    assert "eval_duplicate" not in off.rejections  # the rejections above are the guard's


def test_plan_parse_retries_are_bounded_and_counted(seed):
    backend = ScriptedBackend(seed, plans=[Proposal(failure=Failure("decompose_failed", "no tag"))])
    res = run(seed, backend)
    per_attempt = 1 + CFG.max_plan_retries
    assert backend.calls["plan"] == CFG.max_attempts * per_attempt
    assert res.failures == {"decompose_failed": CFG.max_attempts * per_attempt}
    assert res.tasks == [] and res.attempts == CFG.max_attempts
    assert "arguments" not in backend.calls


def test_malformed_plans_are_counted_then_a_good_one_is_used(seed):
    good = ScriptedBackend(seed)._plan(None)
    bad = [
        Proposal("not a plan"),
        Proposal(Plan((("cd",),))),  # one turn: fewer than 2
        Proposal(Plan((("cd",), ("no_such_function",)))),
    ]
    backend = ScriptedBackend(seed, plans=[*bad, good], edit=_edit("p"))
    res = run(seed, backend)
    assert len(res.tasks) == 1 and res.attempts == 1
    assert res.failures == {"decompose_failed": 2, "func_sample_failed": 1}


def test_full_attempts_are_bounded(seed):
    backend = ScriptedBackend(seed, queries=[Proposal(["one query only"])])
    res = run(seed, backend, n=2)
    assert res.tasks == [] and res.attempts == 2 * CFG.max_attempts
    assert res.failures == {"query_gen_failed": 2 * CFG.max_attempts}
    assert backend.calls["plan"] == 2 * CFG.max_attempts


def test_malformed_queries_are_counted(seed):
    good = ScriptedBackend(seed, edit=_edit("q"))
    scripted = [Proposal([]), Proposal(failure=Failure("bogus_code"))]
    backend = ScriptedBackend(
        seed, queries=lambda ctx: scripted.pop(0) if scripted else good._queries(ctx)
    )
    res = run(seed, backend)
    assert len(res.tasks) == 1 and res.attempts == 3
    # an unknown code from a backend is counted as the stage's default code
    assert res.failures == {"no_prompts": 1, "query_gen_failed": 1}
    scripted = [Proposal([1, 2, 3, 4]), Proposal(["fine", "   ", "fine", "fine"])]
    res = run(seed, ScriptedBackend(seed, queries=lambda ctx: scripted.pop(0) if scripted else good._queries(ctx)))
    assert len(res.tasks) == 1 and res.failures == {"query_gen_failed": 2}


def _unauthenticated_seed(seed: Task) -> Task:
    config = {**seed.initial_config, "TwitterAPI": {**seed.initial_config["TwitterAPI"], "authenticated": False}}
    gt = [[s for s in turn if not s.startswith("authenticate_twitter")] for turn in seed.ground_truth]
    return seed.model_copy(update={"initial_config": config, "ground_truth": gt})


def test_patchable_failure_patches_the_initial_config(seed):
    patched_seed = _unauthenticated_seed(seed)
    backend = ScriptedBackend(patched_seed, edit=_edit("patch"))
    res = run(patched_seed, backend)
    assert len(res.tasks) == 1 and res.attempts == 1
    assert res.patches == {"TwitterAPI.authenticated": 1}
    assert res.failures == {"vm_exec_failed": 1}
    task = res.tasks[0]
    assert task.initial_config["TwitterAPI"]["authenticated"] is True
    assert patched_seed.initial_config["TwitterAPI"]["authenticated"] is False  # seed untouched
    assert task.rods.patches == 1 and task.rods.failures == {"vm_exec_failed": 1}
    assert result_metrics(res)["synth/patch/TwitterAPI.authenticated"] == 1


def test_unpatchable_execution_failure_retries_arguments_then_replans(seed):
    def args(ctx):
        return Proposal({"folder": "no_such_folder"}) if ctx.function == "cd" else Proposal({})

    backend = ScriptedBackend(seed, arguments=args)
    res = run(seed, backend)
    per_attempt = 1 + CFG.max_arg_retries
    assert res.tasks == [] and res.attempts == CFG.max_attempts
    assert res.failures == {"vm_exec_failed": CFG.max_attempts * per_attempt}
    assert res.patches == {}


def test_pointless_repeated_calls_are_duplicates(seed):
    plan = Proposal(Plan((("cd",), ("ls", "ls"))))

    def args(ctx):
        return Proposal({"folder": "project"} if ctx.function == "cd" else {})

    res = run(seed, ScriptedBackend(seed, plans=[plan], arguments=args))
    assert res.tasks == []
    assert res.failures == {"duplicate_func": CFG.max_attempts * (1 + CFG.max_arg_retries)}
    # the same call with a different result (a second tweet, with its own id) is no duplicate
    plan = Proposal(Plan((("cd",), ("post_tweet", "post_tweet"))))
    tweet = {"content": "Archive done, twice over!", "tags": ["#twice"]}
    twice = ScriptedBackend(
        seed, plans=[plan], arguments=lambda ctx: Proposal({"folder": "project"} if ctx.function == "cd" else tweet)
    )
    res = run(seed, twice, config=SynthConfig(signature_tolerance=1.0))
    assert len(res.tasks) == 1 and res.failures == {}
    assert res.tasks[0].ground_truth[1][0] == res.tasks[0].ground_truth[1][1]


def test_judge_rejection_gets_one_repair(seed):
    verdicts = [Proposal(Verdict(False, ("turn 2 is vague",))), Proposal(Verdict(True))]
    backend = ScriptedBackend(seed, judge=verdicts, edit=_edit("j"))
    res = run(seed, backend)
    assert len(res.tasks) == 1 and res.attempts == 1
    assert backend.calls["repair"] == 1 and backend.calls["judge"] == 2
    assert res.failures == {"query_verify_failed": 1}
    assert all(m[0].content.endswith("Thanks a lot.") for m in res.tasks[0].question)


def test_judge_repairs_are_bounded(seed):
    backend = ScriptedBackend(seed, judge=[Proposal(Verdict(False, ("no",)))], edit=_edit("j2"))
    res = run(seed, backend)
    assert res.tasks == [] and res.attempts == CFG.max_attempts
    assert backend.calls["repair"] == CFG.max_attempts * CFG.max_repairs
    assert res.rejections == {"judge_rejected": CFG.max_attempts}
    assert res.failures == {"query_verify_failed": CFG.max_attempts * (1 + CFG.max_repairs)}


def test_judge_without_verdict_is_a_counted_rejection(seed):
    backend = ScriptedBackend(seed, judge=[Proposal(failure=Failure("query_verify_no_tag")), Proposal(None)], edit=_edit("nv"))
    res = run(seed, backend)
    assert len(res.tasks) == 1 and res.attempts == 2
    assert res.failures == {"query_verify_no_tag": 1}
    assert res.rejections == {"judge_no_verdict": 1}


def test_gate_rejections_are_counted_per_reason(seed):
    bad = Proposal(["Call post_tweet now", "Step 1: sort it", "set tweet_id", "ok then"])
    backend = ScriptedBackend(seed, queries=[bad], edit=_edit("g"))
    res = run(seed, backend)
    assert res.tasks == []
    assert res.rejections == {
        "query_names_function": 3,
        "query_leaks_reasoning": 3,
        "query_names_parameter": 3,
    }
    m = result_metrics(res)
    assert m["synth/reject/query_names_function"] == 3


def test_backend_exception_is_a_counted_pipeline_failure(seed):
    def boom(ctx):
        raise RuntimeError("backend bug")

    backend = ScriptedBackend(seed, arguments=boom)
    res = run(seed, backend)
    assert res.tasks == [] and res.failures == {"pipeline_exception": CFG.max_attempts}
    assert res.exceptions[0] == "execute: RuntimeError('backend bug')"


def test_seed_without_calls_has_no_pattern(seed):
    empty = seed.model_copy(update={"ground_truth": [[] for _ in seed.ground_truth]})
    res = run(empty, ScriptedBackend(seed))
    assert res.tasks == [] and res.failures == {"no_pattern": 1} and res.attempts == 0


def test_signature_tolerance_is_settable(seed):
    # Plan only the first two turns: a smaller structure than the seed's (distance ≈ 0.12).
    small = Proposal(Plan((("cd", "mv"), ("cat", "sort"))))
    strict_cfg = SynthConfig(signature_tolerance=0.05)
    strict = run(seed, ScriptedBackend(seed, plans=[small], edit=_edit("s")), config=strict_cfg)
    assert strict.tasks == [] and strict.rejections == {"signature_far": CFG.max_attempts}
    default = run(seed, ScriptedBackend(seed, plans=[small], edit=_edit("s")))
    assert len(default.tasks) == 1


def test_runs_in_threads_are_independent_and_deterministic(seed):
    results = {}

    def work(tag):
        results[tag] = run(seed, ScriptedBackend(seed, edit=_edit(tag)), rng_seed=7)

    threads = [threading.Thread(target=work, args=(t,)) for t in ("a", "b", "c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = run(seed, ScriptedBackend(seed, edit=_edit("a")), rng_seed=7)
    assert all(len(r.tasks) == 1 for r in results.values())
    assert results["a"].tasks[0].id == again.tasks[0].id
    assert len({r.tasks[0].id for r in results.values()}) == 4


def test_mutable_defaults_are_written_out_so_the_ground_truth_is_deterministic(seed):
    """post_tweet's `mentions=[]` default is one list per process, and `mention` extends it."""
    plan = Proposal(Plan((("cd",), ("post_tweet", "mention"))))
    args = {
        "cd": {"folder": "project"},
        "post_tweet": {"content": "Archive finished for the week"},
        "mention": {"tweet_id": 0, "mentioned_usernames": ["alice"]},
    }
    seen = []

    def queries(ctx):
        seen.append(ctx.calls_per_turn)
        return ScriptedBackend(seed)._queries(ctx)

    backend = ScriptedBackend(
        seed, plans=[plan], arguments=lambda ctx: Proposal(dict(args[ctx.function])), queries=queries
    )
    res = run(seed, backend, config=SynthConfig(signature_tolerance=1.0))
    assert len(res.tasks) == 1, (res.failures, res.rejections)
    post = res.tasks[0].ground_truth[1][0]
    assert post == "post_tweet(content='Archive finished for the week', tags=[], mentions=[])"
    # the query writer sees the call as proposed, without the written-out empty defaults
    assert seen[0][1][0].arguments == {"content": "Archive finished for the week"}


@pytest.mark.parametrize(
    ("router", "state", "expected"),
    [
        (routers.after_extract, {"outcome": "failed"}, END),
        (routers.after_plan, {"outcome": "retry"}, "plan"),
        (routers.after_plan, {"outcome": "failed"}, "retry"),
        (routers.after_execute, {"outcome": "patched"}, "execute"),
        (routers.after_critique, {"outcome": "repair"}, "repair"),
        (routers.after_critique, {"outcome": "ok"}, "augment"),
        (routers.after_augment, {"outcome": "accepted", "slot": 1, "n_variants": 2}, "plan"),
        (routers.after_augment, {"outcome": "accepted", "slot": 2, "n_variants": 2}, END),
        (routers.after_augment, {"outcome": "failed", "slot": 0, "n_variants": 2}, "retry"),
        (routers.after_retry, {"outcome": "failed", "slot": 2, "n_variants": 2}, END),
    ],
)
def test_routers_are_pure_functions_of_the_outcome(router, state, expected):
    assert router(state) == expected
