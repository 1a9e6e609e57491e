"""Signatures: hand-checked BFCL seeds, the tracing rule on made-up calls, all 800 tasks, distance.

Needs only the installed `bfcl-eval` package data (no services, no GPU).
"""

from __future__ import annotations

import inspect
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rods.env.world import World
from rods.signature import (
    DEFAULT_WEIGHTS,
    MATCH_TOLERANCE,
    STRUCTURE_WEIGHTS,
    TOPOLOGIES,
    DistanceWeights,
    ExecutedCall,
    compute_signature,
    dag_depth,
    distance_components,
    signature_distance,
    signature_histograms,
    string_tokens,
    topology_of,
    trace_arguments,
)
from rods.signature_state import ALL_METHODS, PRECONDITIONS
from rods.tasks import (
    CLASSES,
    Message,
    Signature,
    Task,
    ToolCall,
    get_bfcl_task,
    load_bfcl_tasks,
    load_split,
)


@pytest.fixture(scope="module")
def all_signatures() -> dict[str, Signature]:
    started = time.perf_counter()
    sigs = {t.id: compute_signature(t) for t in load_bfcl_tasks()}
    elapsed = time.perf_counter() - started
    assert elapsed < 20.0, f"800 signatures took {elapsed:.1f} s"
    return sigs


# ---------------------------------------------------------------- hand-checked seeds


def test_chain_across_turns_base_131() -> None:
    # T1 get_available_stocks -> ["AAPL","GOOG","MSFT","NVDA"]; T2 asks for "the third stock in
    # the list" without naming it, so get_stock_info(symbol='MSFT') reads call 1 (1->2). T3 names
    # MSFT but not the price: place_order(price=310.23) reads get_stock_info's price (2->3).
    # T4 "the most recent order": get_order_details(order_id=12446) reads place_order's order_id
    # (3->4). One path of 4 calls, every edge crosses a turn. order_type 'Buy' and Alice's id
    # USR003 (twice: send_message, delete_message) come from MessageAPI/TradingBot state: 3.
    # State: T6 delete_message(receiver_id='USR003') deletes the message that T5's send_message
    # created in the inbox kept for USR003 (5->6, a created value), a second chain of 2.
    sig = compute_signature(get_bfcl_task("multi_turn_base_131"))
    assert sig.edges == ((1, 2), (2, 3), (3, 4))
    assert sig.state_deps == ((5, 6),)
    assert sig.depth == 4
    assert sig.topology == "chain"
    assert sig.cross_turn_edges == 4
    assert sig.state_edges == 3
    assert sig.calls_per_turn == (1, 1, 1, 1, 1, 1, 1)
    assert sig.n_calls == 7


def test_fan_out_base_102() -> None:
    # T0 place_order -> {"order_id": 12446, ...}; T1 get_order_details(order_id=12446) reads it
    # (0->1). T2 cancel_order(order_id=12446): call 1's result also shows 12446, but call 1 got
    # 12446 as an argument (an echo), so the producer is place_order again (0->2). One source,
    # two consumers, each in a later turn.
    sig = compute_signature(get_bfcl_task("multi_turn_base_102"))
    assert sig.edges == ((0, 1), (0, 2))
    assert sig.depth == 2
    assert sig.topology == "fan-out"
    assert sig.cross_turn_edges == 2


def test_cross_turn_file_name_base_4() -> None:
    # T0 ls(a=True) -> ["report.txt"]; T1 says only "There is a report", so sort(file_name=
    # 'report.txt') read the name from the listing in the previous turn (0->1). T2's tweet text
    # is a reordering of the sorted content, which no rule traces (a documented limit).
    sig = compute_signature(get_bfcl_task("multi_turn_base_4"))
    assert sig.edges == ((0, 1),)
    assert (sig.depth, sig.topology, sig.cross_turn_edges) == (2, "chain", 1)


def test_fan_in_base_57() -> None:
    # get_zipcode_based_on_city('Crescent Hollow') -> 69238 and ('Autumnville') -> 51479 feed
    # estimate_distance(cityA='69238', cityB='51479') (0->2, 1->2), whose 630.0 feeds
    # logarithm(value=630.0) in the next turn (2->3): in-degree 2, no out-degree 2.
    sig = compute_signature(get_bfcl_task("multi_turn_base_57"))
    assert sig.edges == ((0, 2), (1, 2), (2, 3))
    assert (sig.depth, sig.topology, sig.cross_turn_edges) == (3, "fan-in", 1)


def test_dag_base_41() -> None:
    # cat(notes) -> "Meeting notes and project details." and get_user_id(Bob) -> USR002 both feed
    # send_message (1->4, 2->4); T1 delete_message(receiver_id='USR002') skips send_message (it
    # echoes its own argument) and reads get_user_id (2->5). In- and out-degree 2: a dag.
    # State: cat('notes') reads the directory cd('initial_directory') entered (0->1);
    # send_message needs message_login's user (3->4); delete_message deletes what send_message
    # created (4->5; its need of the login, 3->5, is implied by 3->4->5 and dropped).
    # cd -> cat -> send -> delete: depth 4 (2 with data flow alone).
    sig = compute_signature(get_bfcl_task("multi_turn_base_41"))
    assert sig.edges == ((1, 4), (2, 4), (2, 5))
    assert sig.state_deps == ((0, 1), (3, 4), (4, 5))
    assert (sig.depth, sig.topology, sig.cross_turn_edges) == (4, "dag", 2)
    flow_only = compute_signature(get_bfcl_task("multi_turn_base_41"), state_dependencies=False)
    assert (flow_only.depth, flow_only.state_deps) == (2, ())


def test_state_dependencies_base_0() -> None:
    # Every non-trivial value ('document', 'temp', 'final_report.pdf', 'budget analysis',
    # 'previous_report.pdf') is written in the user's text; '..' has no alphanumerics: no data
    # flow. The state flows: 0 cd(document) 1 mkdir(temp) 2 mv(final_report.pdf, temp)
    # 3 cd(temp) 4 grep(final_report.pdf) 5 sort(final_report.pdf) 6 cd(..)
    # 7 mv(previous_report.pdf, temp) 8 cd(temp) 9 diff(final_report.pdf, previous_report.pdf).
    # Working directory: 0->1, 3->4, 3->5, 3->6, 6->7, 6->8, 8->9 (0->2 is implied by 0->1->2).
    # Created: 'temp' by mkdir (1->2, 1->3), final_report.pdf moved into temp (2->4, 2->5, 2->9),
    # previous_report.pdf moved there (7->9). Longest path 0 1 3 6 8 9.
    sig = compute_signature(get_bfcl_task("multi_turn_base_0"))
    assert sig.edges == ()
    assert sig.state_deps == (
        (0, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 9), (3, 4), (3, 5), (3, 6), (6, 7), (6, 8), (7, 9), (8, 9),
    )  # fmt: skip
    assert (sig.depth, sig.topology, sig.state_edges) == (6, "dag", 0)
    old = compute_signature(get_bfcl_task("multi_turn_base_0"), state_dependencies=False)
    assert (old.depth, old.topology) == (1, "independent")
    assert sig.calls_per_turn == (3, 2, 1, 4)
    assert sig.classes == ("GorillaFileSystem", "TwitterAPI")
    assert sig.functions == ("cd", "diff", "grep", "mkdir", "mv", "sort")
    assert (sig.holdout_turns, sig.clarification_turns, sig.empty_turns) == ((), (), ())


def test_category_features() -> None:
    # miss_param_0: turn 3 asks to move "one of the file" (empty ground truth), turn 4 names it.
    mp = compute_signature(get_bfcl_task("multi_turn_miss_param_0"))
    assert (mp.empty_turns, mp.clarification_turns, mp.holdout_turns) == ((3,), (4,), ())
    # miss_func_0: `sort` is held out until turn 3, so turn 2 cannot be served.
    mf = compute_signature(get_bfcl_task("multi_turn_miss_func_0"))
    assert (mf.empty_turns, mf.clarification_turns, mf.holdout_turns) == ((2,), (), (3,))
    # miss_param_77: the very first turn is the one that lacks a value.
    assert compute_signature(get_bfcl_task("multi_turn_miss_param_77")).clarification_turns == (1,)


def test_given_world_is_used_and_agrees() -> None:
    task = get_bfcl_task("multi_turn_base_131")
    world = World.load(task)
    assert compute_signature(task, world) == compute_signature(task)
    assert world.instances["TradingBot"].orders  # the given world executed the ground truth


# ---------------------------------------------------------------- state dependencies


_FS = {"root": {"alex": {"type": "directory", "contents": {
    "docs": {"type": "directory", "contents": {"a.txt": {"type": "file", "content": "alpha beta"}}},
}}}}  # fmt: skip


def _state_task(classes: list[str], config: dict, turns: list[list[str]]) -> Task:
    return Task(
        id="multi_turn_base_x1",
        question=[[Message(role="user", content="do it")] for _ in turns],
        initial_config=config,
        involved_classes=classes,
        ground_truth=turns,
    )


def test_cd_before_a_relative_path_is_a_dependency() -> None:
    # No value flows from cd to mv, but mv finds a.txt only in the directory cd entered.
    task = _state_task(["GorillaFileSystem"], {"GorillaFileSystem": _FS},
                       [["cd(folder='docs')"], ["mv(source='a.txt', destination='b.txt')"]])  # fmt: skip
    sig = compute_signature(task)
    assert (sig.edges, sig.state_deps, sig.depth, sig.cross_turn_edges) == ((), ((0, 1),), 2, 1)
    assert compute_signature(task, state_dependencies=False).depth == 1
    # A created directory used later, then a cd into it: mkdir -> cd -> touch.
    made = _state_task(["GorillaFileSystem"], {"GorillaFileSystem": _FS},
                       [["mkdir(dir_name='reports')", "cd(folder='reports')", "touch(file_name='new.txt')"]])  # fmt: skip
    assert compute_signature(made).state_deps == ((0, 1), (1, 2))


def test_login_before_an_authenticated_call_is_a_dependency() -> None:
    gt = [["authenticate_twitter(username='jane', password='pw123')"], ["post_tweet(content='hello all')"],
          ["get_tweet(tweet_id=0)"]]  # fmt: skip
    logged_out = _state_task(["TwitterAPI"], {"TwitterAPI": {"username": "jane", "password": "pw123"}}, gt)
    sig = compute_signature(logged_out)
    assert (0, 1) in sig.state_deps and sig.depth >= 2
    # Already logged in: the login changes nothing, so nothing depends on it.
    config = {"TwitterAPI": {"username": "jane", "password": "pw123", "authenticated": True}}
    assert not any(i == 0 for i, _ in compute_signature(_state_task(["TwitterAPI"], config, gt)).state_deps)


def _method_reads(cls: type, attribute: str) -> set[str]:
    """Public methods whose code (docstring cut) reads `self.<attribute>` without assigning it."""
    out = set()
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_"):
            continue
        body = inspect.getsource(fn).split('"""')[-1]
        if re.search(rf"self\.{attribute}\s*=(?!=)", body):
            continue  # a setter (login, logout), not a reader
        if re.search(rf"self\.{attribute}\b", body):
            out.add(name)
    return out


def test_precondition_table_matches_bfcl_code() -> None:
    for class_name, guards in PRECONDITIONS.items():
        cls = type(World.load(_state_task([class_name], {}, [])).instances[class_name])
        for attribute, methods in guards.items():
            if methods == ALL_METHODS:
                continue  # the working directory: every file-system method resolves names in it
            reads = _method_reads(cls, attribute)
            if class_name == "VehicleControlAPI":
                assert set(methods) <= reads, (class_name, attribute)
            else:  # a login guard: exactly the methods that check it
                assert set(methods) == reads, (class_name, attribute, reads)


# ---------------------------------------------------------------- the rule on made-up calls


def _task(questions: list[str], config: dict | None = None) -> Task:
    return Task(
        id="multi_turn_base_x0",
        question=[[Message(role="user", content=q)] for q in questions],
        initial_config=config or {},
        involved_classes=["MessageAPI"],
        ground_truth=[["f()"] for _ in questions],
    )


def _call(index: int, turn: int, result: str, **arguments: object) -> ExecutedCall:
    return ExecutedCall(index, turn, ToolCall(name=f"f{index}", arguments=arguments), result)


def _sources(trace) -> list[tuple[int, object, str, int | None]]:
    return [(p.call, p.value, p.source, p.producer) for p in trace]


def test_rule_precedence_rounding_and_echo() -> None:
    task = _task(["Convert 20,000 RMB and set it as my limit.", "Now cancel booking."])
    calls = [
        _call(0, 0, '{"value": 2857.142857}', value=20000.0),
        _call(1, 0, '{"limit": 2857.14, "booking": "BK-3426812"}', limit=2857.14),
        _call(2, 1, '{"cancelled": "BK-3426812"}', booking_id="bk-3426812"),
    ]
    assert _sources(trace_arguments(task, calls)) == [
        (0, 20000.0, "question", None),  # "20,000" in the user's text
        (1, 2857.14, "result", 0),  # rounded from 2857.142857
        (2, "bk-3426812", "result", 1),  # whole string, case-insensitive
    ]
    # An echo is not a source: call 1 got 2857.14 as an argument, so a later use reads call 0.
    calls.append(_call(3, 1, "{}", amount=2857.14))
    assert _sources(trace_arguments(task, calls))[-1] == (3, 2857.14, "result", 0)


def test_rule_tokens_boundaries_state_and_trivia() -> None:
    task = _task(["Post a summary to my folder."], config={"MessageAPI": {"x": "USR777"}})
    calls = [
        _call(0, 0, '{"files": ["temporary.txt"], "id": 12446, "n": 3}'),
        _call(
            1,
            0,
            "{}",
            text="order 12446 placed in temporary.txt",  # tokens 12446 and temporary.txt
            folder="temp",  # `temp` does not occur in `temporary`; a plain word has no tokens
            receiver="USR777",  # only in the state
            count=3,  # one digit: not an atom
            flag=True,  # never an atom
        ),
    ]
    assert _sources(trace_arguments(task, calls)) == [
        (1, 12446.0, "result", 0),
        (1, "temporary.txt", "result", 0),
        (1, "temp", "literal", None),
        (1, "usr777", "state", None),
    ]


def test_string_tokens() -> None:
    assert string_tokens("Send USR002 the file final_report.pdf, 2,500 units, 7 boxes.") == [
        "usr002",
        "final_report.pdf",
        2500.0,
    ]
    assert string_tokens("plain words only, #tag and 5") == []


# ---------------------------------------------------------------- DAG summary (pure)


def test_dag_depth() -> None:
    assert dag_depth(0, []) == 0
    assert dag_depth(3, []) == 1
    assert dag_depth(4, [(0, 1), (1, 3), (0, 2)]) == 3
    with pytest.raises(ValueError):
        dag_depth(3, [(2, 1)])


@pytest.mark.parametrize(
    ("edges", "label"),
    [
        ([], "independent"),
        ([(0, 1), (1, 2)], "chain"),
        ([(0, 1), (2, 3)], "chain"),  # two disjoint chains
        ([(0, 1), (0, 2), (0, 1)], "fan-out"),  # a repeated edge counts once
        ([(0, 2), (1, 2)], "fan-in"),
        ([(0, 1), (0, 2), (1, 3), (2, 3)], "dag"),
        ([(0, 2), (0, 3), (1, 4), (2, 4)], "dag"),  # fan-out and fan-in at different nodes
    ],
)
def test_topology_of(edges: list[tuple[int, int]], label: str) -> None:
    assert topology_of(edges) == label


# ---------------------------------------------------------------- all 800 tasks


def test_every_bfcl_task_has_a_consistent_signature(all_signatures: dict[str, Signature]) -> None:
    assert len(all_signatures) == 800
    for task in load_bfcl_tasks():
        sig = all_signatures[task.id]
        assert sig.n_calls == sum(len(g) for g in task.ground_truth) == sum(sig.calls_per_turn)
        dag = set(sig.edges) | set(sig.state_deps)
        assert all(0 <= i < j < sig.n_calls for i, j in dag), task.id
        assert sig.edges == tuple(sorted(set(sig.edges)))
        assert sig.state_deps == tuple(sorted(set(sig.state_deps)))
        assert not set(sig.edges) & set(sig.state_deps)  # a state edge never repeats a data edge
        assert sig.topology == topology_of(dag) and sig.topology in TOPOLOGIES
        assert 1 <= sig.depth <= sig.n_calls
        assert sig.depth == dag_depth(sig.n_calls, dag)
        assert (sig.depth == 1) == (not dag)
        assert sig.cross_turn_edges <= len(dag)
        assert set(sig.classes) == set(task.involved_classes)
        assert bool(sig.holdout_turns) == (task.category == "miss_func")
        assert bool(sig.clarification_turns) == (task.category == "miss_param")
    # Every topology occurs in BFCL, and so do multi-turn data flows.
    assert {s.topology for s in all_signatures.values()} == set(TOPOLOGIES)
    assert sum(s.cross_turn_edges > 0 for s in all_signatures.values()) > 200


def test_category_twins_are_close(all_signatures: dict[str, Signature]) -> None:
    # miss_func_N = base_N plus one empty turn and a reveal turn; with the same calls per turn
    # (ignoring empty turns) the structure is identical and only the category part differs.
    for n in range(200):
        base = all_signatures[f"multi_turn_base_{n}"]
        twin = all_signatures[f"multi_turn_miss_func_{n}"]
        same_dag = base.edges == twin.edges and base.state_deps == twin.state_deps
        if same_dag and base.functions == twin.functions:
            assert signature_distance(base, twin, STRUCTURE_WEIGHTS) == 0.0
            assert signature_distance(base, twin) <= MATCH_TOLERANCE


def test_histograms(all_signatures: dict[str, Signature]) -> None:
    train = [all_signatures[t.id] for t in load_split("train")]
    hist = signature_histograms(train)
    assert set(hist) == {"depth", "topology", "turns", "calls"}
    assert all(sum(h.values()) == 400 for h in hist.values())
    assert list(hist["topology"]) == [t for t in TOPOLOGIES if t in hist["topology"]]
    small = [
        Signature(depth=2, topology="chain", calls_per_turn=(1, 1), n_calls=2),
        Signature(depth=2, topology="chain", calls_per_turn=(2,), n_calls=2),
        Signature(depth=1, topology="independent", calls_per_turn=(1, 0, 3), n_calls=4),
    ]
    assert signature_histograms(small) == {
        "depth": {"1": 1, "2": 2},
        "topology": {"independent": 1, "chain": 2},
        "turns": {"1": 1, "2": 1, "3": 1},
        "calls": {"2": 2, "4": 1},
    }


# ---------------------------------------------------------------- distance


_FUNCTIONS = ("cd", "ls", "mv", "post_tweet", "send_message", "place_order", "book_flight")


@st.composite
def signatures(draw: st.DrawFn) -> Signature:
    calls_per_turn = tuple(draw(st.lists(st.integers(0, 5), max_size=8)))
    n_calls = sum(calls_per_turn)
    turns = st.integers(0, max(len(calls_per_turn) - 1, 0))
    return Signature(
        classes=tuple(sorted(draw(st.sets(st.sampled_from(CLASSES), max_size=3)))),
        functions=tuple(sorted(draw(st.sets(st.sampled_from(_FUNCTIONS), max_size=5)))),
        calls_per_turn=calls_per_turn,
        n_calls=n_calls,
        depth=draw(st.integers(0, max(n_calls, 0))),
        topology=draw(st.sampled_from(TOPOLOGIES)),
        cross_turn_edges=draw(st.integers(0, 6)),
        state_edges=draw(st.integers(0, 6)),
        holdout_turns=tuple(sorted(draw(st.sets(turns, max_size=2)))),
        clarification_turns=tuple(sorted(draw(st.sets(turns, max_size=2)))),
        empty_turns=tuple(sorted(draw(st.sets(turns, max_size=3)))),
    )


@settings(max_examples=300, deadline=None)
@given(signatures(), signatures())
def test_distance_properties(a: Signature, b: Signature) -> None:
    d = signature_distance(a, b)
    assert 0.0 <= d <= 1.0
    assert d == signature_distance(b, a)
    assert signature_distance(a, a) == 0.0
    assert signature_distance(a, a.model_copy()) == 0.0
    assert all(0.0 <= v <= 1.0 for v in distance_components(a, b).values())
    assert 0.0 <= signature_distance(a, b, STRUCTURE_WEIGHTS) <= 1.0


def test_distance_weights_each_component() -> None:
    base = Signature(
        classes=("TradingBot",),
        functions=("get_order_details", "place_order"),
        calls_per_turn=(1, 1),
        n_calls=2,
        edges=((0, 1),),
        depth=2,
        topology="chain",
        cross_turn_edges=1,
    )
    total = sum(DEFAULT_WEIGHTS.model_dump().values())
    other_topology = base.model_copy(update={"topology": "fan-out"})
    assert signature_distance(base, other_topology) == pytest.approx(0.20 / total)
    swapped = base.model_copy(update={"functions": ("cancel_order", "get_stock_info")})
    assert signature_distance(base, swapped) == pytest.approx(0.05 / total)
    assert (
        signature_distance(base, swapped)
        <= MATCH_TOLERANCE
        < signature_distance(base, other_topology.model_copy(update={"depth": 1}))
    )
    unrelated = Signature(
        classes=("GorillaFileSystem",),
        functions=("ls",),
        calls_per_turn=(1,),
        n_calls=1,
        depth=1,
        holdout_turns=(0,),
        clarification_turns=(0,),
        empty_turns=(0,),
    )
    assert signature_distance(base, unrelated) > 0.6
    with pytest.raises(ValueError):
        signature_distance(
            base, unrelated, DistanceWeights(**dict.fromkeys(DistanceWeights.model_fields, 0.0))
        )
