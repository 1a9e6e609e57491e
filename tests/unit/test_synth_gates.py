"""Critique gates and config patches: each rejection has its reason code."""

from __future__ import annotations

import pytest
from synth_fakes import ScriptedBackend

from graphs.synthesis import gates, nodes
from graphs.synthesis.graph import synthesize
from graphs.synthesis.patches import error_message, patch_config
from graphs.synthesis.state import SynthConfig
from rods.env.reward import GroundTruthCache
from rods.env.world import World
from rods.signature import compute_signature
from rods.tasks import Task, ToolCall, get_bfcl_task, load_split, split_ids

SEED_ID = "multi_turn_base_5"


@pytest.fixture(scope="module")
def cache() -> GroundTruthCache:
    return GroundTruthCache()


@pytest.fixture(scope="module")
def seed() -> Task:
    return get_bfcl_task(SEED_ID)


def _with(task: Task, **update) -> Task:
    return Task.model_validate({**task.model_dump(), **update})


def _queries(task: Task, texts: list[str]) -> Task:
    return _with(task, question=[[{"role": "user", "content": q}] for q in texts])


def test_bfcl_training_seeds_pass_the_execution_gates(cache):
    seeds = [t for t in load_split("train") if t.id.endswith(("_5", "_12", "_40", "_77"))]
    assert len(seeds) >= 4
    for t in seeds:
        assert gates.check_reexecution(t, cache) == [], t.id
        assert gates.check_availability(t) == [], t.id
        assert gates.check_queries(t) == [], t.id


def test_reexecution_rejects_errors_and_unparseable_calls(seed, cache):
    gt = [list(turn) for turn in seed.ground_truth]
    gt[1] = ["cat(file_name='no_such_file.txt')"]
    erroring = _with(seed, id="multi_turn_base_t1", ground_truth=gt)
    assert gates.check_reexecution(erroring, cache) == ["gt_call_error"]
    gt[1] = ["cat(file_name=open('x'))"]
    unparseable = _with(seed, id="multi_turn_base_t2", ground_truth=gt)
    assert gates.check_reexecution(unparseable, cache) == ["reexec_failed"]
    assert "reexec_failed" in gates.run_gates(unparseable, cache)


def test_availability_of_functions_and_holdouts(seed):
    gt = [list(turn) for turn in seed.ground_truth]
    gt[0] = gt[0] + ["buy_stock(symbol='X', amount=1)"]  # TradingBot is not involved
    assert gates.check_availability(_with(seed, ground_truth=gt)) == ["func_unavailable"]
    bfcl = get_bfcl_task("multi_turn_miss_func_5")
    assert gates.check_availability(bfcl) == []
    # post_tweet held out until turn 3 but used in turn 2
    gt = [list(turn) for turn in bfcl.ground_truth]
    gt[2], gt[3] = gt[3], []
    q = [list(turn) for turn in bfcl.question]
    early = _with(bfcl, ground_truth=gt, question=q)
    assert gates.check_availability(early) == ["func_unavailable"]


def test_argument_limits(seed):
    gt = [list(turn) for turn in seed.ground_truth]
    gt[2] = [f"post_tweet(content={'x' * 201!r}, tags=['a', 'b', 'c', 'd', 'e', 'f'])"]
    task = _with(seed, ground_truth=gt)
    assert gates.check_argument_limits(task) == ["list_too_long", "string_too_long"]
    assert gates.check_argument_limits(task, max_chars=300, max_items=6) == []
    gt[2] = [f"post_tweet(content={'x' * 200!r}, tags=['a', 'b', 'c', 'd', 'e'])"]
    assert gates.check_argument_limits(_with(seed, ground_truth=gt)) == []


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("Please sort the archive summary and post the result on my feed.", []),
        ("Use post_tweet to share it.", ["query_names_function"]),
        ("Run cat(file) on the report.", ["query_names_function"]),
        ("Set the comment_content to 'hi'.", ["query_names_parameter"]),
        ("Step 1: move the file. Step 2: read it.", ["query_leaks_reasoning"]),
        ("<think>the user wants</think> move it", ["query_leaks_reasoning"]),
        ("Call authenticate_twitter with tweet_id 3", ["query_names_function", "query_names_parameter"]),
    ],
)
def test_query_text_gate(seed, text, reasons):
    funcs, params = gates.task_functions(seed)
    assert gates.check_query_text(text, funcs, params) == reasons


def test_empty_queries_only_on_reveal_turns(seed):
    texts = [m[0].content for m in seed.question]
    assert gates.check_queries(_queries(seed, [texts[0], "", *texts[2:]])) == ["query_empty"]
    bfcl = get_bfcl_task("multi_turn_miss_func_5")  # turn 3 is an empty reveal turn
    assert gates.check_queries(bfcl) == []


def test_signature_gate(seed):
    sig = compute_signature(seed)
    assert gates.check_signature(sig, sig, 0.0) == []
    other = compute_signature(get_bfcl_task("multi_turn_base_3"))
    assert gates.check_signature(other, sig, 0.15) == ["signature_far"]
    assert gates.check_signature(other, sig, 1.0) == []


def test_dedup_index_finds_twins_not_strangers(seed):
    index = gates.DedupIndex([get_bfcl_task("multi_turn_long_context_5")])
    twin_key, sim = index.nearest(seed)
    assert twin_key == "multi_turn_long_context_5" and sim >= 0.85
    assert index.is_duplicate(seed)
    assert not index.is_duplicate(get_bfcl_task("multi_turn_base_3"))
    assert not index.is_duplicate(seed, exclude=("multi_turn_long_context_5",))
    copy = index.copy()
    copy.add(seed)
    assert len(copy) == 2 and len(index) == 1


def test_contamination_guard_flags_held_out_tasks(seed, cache):
    evals = gates.eval_index()
    assert len(evals) == 400
    held_out = get_bfcl_task(sorted(split_ids("eval"))[0])
    renamed = _with(held_out, id="multi_turn_base_xdeadbeef")
    assert evals.is_duplicate(renamed)
    assert not evals.is_duplicate(seed)  # a training seed is not a held-out task
    assert "eval_duplicate" in gates.run_gates(renamed, cache, evals=evals)


def test_run_gates_collects_every_reason(seed, cache):
    gt = [list(turn) for turn in seed.ground_truth]
    gt[2] = [f"post_tweet(content={'y' * 250!r})"]
    bad = _queries(_with(seed, id="multi_turn_base_t3", ground_truth=gt), ["Step 1: go", "b", "c", "use post_tweet"])
    pool = gates.DedupIndex([seed])
    reasons = gates.run_gates(bad, cache, pool=pool)
    assert reasons == ["query_leaks_reasoning", "query_names_function", "string_too_long"]
    assert gates.run_gates(seed, cache, pool=pool) == []  # a task is not its own duplicate
    copy = _with(seed, id="multi_turn_base_copy")
    assert gates.run_gates(copy, cache, pool=pool) == ["pool_duplicate"]
    assert set(reasons) <= set(gates.REJECTION_REASONS)


# ---------------------------------------------------------------- patches


def _world_and_config(task: Task) -> tuple[World, dict]:
    return World.load(task), task.initial_config


def test_error_message_reads_both_error_styles():
    assert error_message('{"error": "Market is closed."}') == "Market is closed."
    assert error_message('[{"error": "User not authenticated."}]') == "User not authenticated."
    assert error_message("Error during execution: boom").startswith("Error during execution")
    assert error_message('{"status": "ok", "note": "no \\"error\\" here"}') is None
    assert error_message("plain text result") is None


def test_patch_login_then_market():
    task = get_bfcl_task("multi_turn_base_100")
    assert task.involved_classes == ["TradingBot"]
    bot = {**task.initial_config["TradingBot"], "market_status": "Closed", "authenticated": False}
    config = {**task.initial_config, "TradingBot": bot}
    call = ToolCall(name="withdraw_funds", arguments={"amount": 1.0})
    kinds = []
    for _ in range(3):
        world = World.load(_with(task, initial_config=config))
        text = world.execute(call).text
        if error_message(text) is None:
            break
        out = patch_config(config, world, call, text)
        assert out is not None, text
        config, kind = out
        kinds.append(kind)
    assert kinds == ["TradingBot.authenticated", "TradingBot.market_status"]
    assert config["TradingBot"]["market_status"] == "Open" and config["TradingBot"]["authenticated"]
    assert bot["market_status"] == "Closed"  # inputs are never mutated
    assert error_message(text) is None


def test_patch_missing_file_in_the_current_directory(seed):
    world, config = _world_and_config(seed)
    world.execute(ToolCall(name="cd", arguments={"folder": "project"}))
    call = ToolCall(name="cat", arguments={"file_name": "notes.txt"})
    out = patch_config(config, world, call, world.execute(call).text)
    assert out is not None and out[1] == "GorillaFileSystem.file"
    patched = World.load(_with(seed, initial_config=out[0]))
    patched.execute(ToolCall(name="cd", arguments={"folder": "project"}))
    assert error_message(patched.execute(call).text) is None
    # not a file reader (cd into a missing folder): no patch, the graph re-plans
    bad_cd = ToolCall(name="cd", arguments={"folder": "nowhere"})
    assert patch_config(config, world, bad_cd, world.execute(bad_cd).text) is None


def test_patch_vehicle_fuel_and_no_rule():
    task = next(t for t in load_split("train", ["base"]) if "VehicleControlAPI" in t.involved_classes)
    config = {**task.initial_config, "VehicleControlAPI": {**task.initial_config.get("VehicleControlAPI", {}), "fuelLevel": 0.0}}
    world = World.load(_with(task, initial_config=config))
    text = '{"error": "Fuel tank is empty."}'
    call = ToolCall(name="startEngine", arguments={"ignitionMode": "START"})
    out = patch_config(config, world, call, text)
    assert out is not None and out[0]["VehicleControlAPI"]["fuelLevel"] >= 25.0
    assert patch_config(config, world, call, '{"error": "Invalid ignition mode."}') is None
    assert patch_config(config, world, call, '{"engineState": "running"}') is None


# ---------------------------------------------------------------- the final task, per category


def _turn_text(task: Task, u: int, text: str) -> Task:
    question = [[m.model_dump() for m in msgs] for msgs in task.question]
    question[u] = [{"role": "user", "content": text}] if text else []
    return _with(task, question=question)


def test_final_check_passes_bfcl_shaped_tasks(cache):
    # Human-written training tasks of each shape pass (BFCL-wide rates: module docstring).
    for task_id in ("multi_turn_base_5", "multi_turn_miss_param_2", "multi_turn_miss_func_0",
                    "multi_turn_long_context_0"):  # fmt: skip
        assert gates.check_final(get_bfcl_task(task_id), cache) == [], task_id


def test_final_miss_param_rejects_a_leaked_value_a_cue_and_no_supply():
    # miss_param_2: turn 0 asks for "a document" (empty ground truth), turn 1 names 'TeamNotes.txt'.
    task = get_bfcl_task("multi_turn_miss_param_2")
    assert gates.check_final_miss_param(task) == []
    # The old augment's defect: the value is still in the incomplete turn (case and quotes aside).
    leaked = _turn_text(task, 0, "Go into document folder and draft a document called TEAMNOTES.TXT for ideas?")
    assert gates.check_final(leaked) == ["final_miss_param_leak"]
    cue = _turn_text(task, 0, "Go into document folder and draft a document with a name I will specify.")
    assert gates.check_final(cue) == ["final_miss_param_cue"]
    vague = _turn_text(task, 1, "Use the name we talked about.")
    assert gates.check_final(vague) == ["final_miss_param_unsupplied"]
    # Numbers count in any spelling: 5,000 in the question is the 5000 of the call.
    gt = [[], ["withdraw_funds(amount=5000)"]]
    money = Task.model_validate({
        "id": "multi_turn_miss_param_xm", "involved_classes": ["TradingBot"], "initial_config": {},
        "question": [[{"role": "user", "content": "Withdraw 5,000 from my account."}],
                     [{"role": "user", "content": "The amount is 5000.0 dollars."}]],
        "ground_truth": gt,
    })  # fmt: skip
    assert gates.check_final(money) == ["final_miss_param_leak"]
    shapeless = _with(task, ground_truth=[["cd(folder='documents')"], *task.ground_truth[1:]])
    assert gates.check_final(shapeless) == ["final_miss_param_shape"]


def test_final_miss_func_rejects_a_visible_or_unused_function():
    task = get_bfcl_task("multi_turn_miss_func_0")  # `sort` held out until turn 3
    assert gates.check_final_miss_func(task) == []
    named = _with(get_bfcl_task("multi_turn_miss_func_0"), missed_function={"3": ["sort", "post_tweet"]})
    assert gates.check_final(named) == []  # post_tweet is hidden but never named: fine
    told = _turn_text(named, 0, task.question[0][0].content + " Then use post_tweet to announce it.")
    assert gates.check_final(told) == ["final_miss_func_visible"]
    early = _with(task, ground_truth=[[*task.ground_truth[0], "sort(file_name='final_report.pdf')"],
                                      *task.ground_truth[1:]])  # fmt: skip
    assert gates.check_final(early) == ["final_miss_func_visible"]
    unused = _with(task, missed_function={"3": ["wc"]})
    assert gates.check_final(unused) == ["final_miss_func_unused"]
    spoken = _turn_text(task, 3, "Now sort it.")
    assert gates.check_final(spoken) == ["final_miss_func_shape"]
    assert gates.check_final(_with(task, missed_function={})) == ["final_miss_func_shape"]


def test_final_long_context_needs_long_results(cache):
    long = get_bfcl_task("multi_turn_long_context_0")
    assert gates.longest_result(long) > gates.longest_result(get_bfcl_task("multi_turn_base_0")) + 200
    assert gates.check_final(long, cache) == []
    # The old augment's defect: only the id changes, and the path reads no long result.
    # long_context_3's ground truth reads nothing the long-context world makes longer.
    assert gates.check_final(get_bfcl_task("multi_turn_long_context_3")) == ["final_long_context_short"]
    assert set(gates.FINAL_REASONS) <= set(gates.REJECTION_REASONS)


def test_graph_rejects_a_final_task_that_fails_its_category_check(monkeypatch):
    # The augment step is replaced by one that withholds nothing: turn 0 keeps every value and
    # the inserted turn 1 repeats one. The graph must count `final_miss_param_leak` and stage
    # nothing; the same task with the value cut from turn 0 is accepted.
    seed = get_bfcl_task("multi_turn_miss_param_2")

    def augment(first: str):
        def body_of(draft: Task, category: str, rng, seed_task) -> dict:
            body = draft.model_dump(mode="json", exclude={"rods", "id"})
            calls = body["ground_truth"][0]
            body["question"][0] = [{"role": "user", "content": first or draft.question[0][0].content}]
            body["ground_truth"][0] = []
            body["question"].insert(1, [{"role": "user", "content": "It is 'TeamNotes.txt'."}])
            body["ground_truth"].insert(1, calls)
            return body

        return body_of

    monkeypatch.setattr(nodes, "augment_body", augment(""))
    res = synthesize(seed, n_variants=1, backend=ScriptedBackend(seed), config=SynthConfig(max_attempts=1))
    assert res.tasks == [] and res.rejections.get("final_miss_param_leak") == 1, res.rejections
    monkeypatch.setattr(nodes, "augment_body", augment("Go into 'documents' and make me a new file."))
    res = synthesize(seed, n_variants=1, backend=ScriptedBackend(seed), config=SynthConfig(max_attempts=1))
    assert len(res.tasks) == 1 and res.rejections == {}, res.rejections
