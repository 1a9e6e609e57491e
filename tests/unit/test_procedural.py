"""The procedural synthesis backend against the real BFCL simulators (no model, no services).

What is measured and why the thresholds:
- per function (all 128 of the 8 classes): the sampler's arguments execute without an error
  result on worlds loaded from training seeds of its class (12 seeds × 3 draws; where the
  function's state gates are shut, their enablers run first, as the planner does). Success must
  reach 60 % of draws, and 90 % of the draws where the sampler proposed arguments (when it says
  "no valid arguments", that is a correct answer, not an error). Why 60 %: some seeds make a
  function impossible in their state: an inbox holding non-text messages breaks the simulator's
  search, tickets without an owner break listing, a stale user counter makes adding a contact
  collide, a file system with no folder below the root leaves nothing to enter. Measured: 116
  of 128 functions at 100 %, lowest 67 % (search_messages, get_user_tickets), every proposal of
  every other function executed cleanly. `get_outside_temperature_from_weather_com` returns
  {"error": 404} in every state; it is asserted to, and the planner never picks it.
- plans: 2–6 turns, 1–4 calls per turn, one class per turn, following the seed's class path; the chosen
  walk is closer to the seed's structure than a shape-blind one.
- templates: no function or parameter name, except the plain English words in `ALLOWED_WORDS`.
- end to end (plan → arguments → execute → queries) on 50 training seeds across the 8 classes:
  at least 90 % execute cleanly and pass the query gates (measured 50 of 50).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from functools import cache
from typing import Any

import pytest

from graphs.synthesis import gates
from graphs.synthesis.backend import ArgContext, Failure, Plan, PlanContext, QueryContext
from graphs.synthesis.patches import error_message
from graphs.synthesis.procedural import ProceduralBackend
from graphs.synthesis.procedural.apigraph import ALWAYS_FAILS, CONSUMES, NEEDS, PRODUCES
from graphs.synthesis.procedural.flow import Flow
from graphs.synthesis.procedural.planner import (
    _expand,
    _targets,
    _try,
    predict_signature,
    seed_turn_classes,
    story_classes,
    turn_classes,
    walk,
)
from graphs.synthesis.procedural.render import Args
from graphs.synthesis.procedural.samplers import SAMPLERS, sample_arguments
from graphs.synthesis.procedural.scope import (
    CITY_ZIPCODES,
    IMPERIAL_PAIRS,
    SI_UNITS,
    ZIPCODE_DISTANCES,
    bookable_routes,
)
from graphs.synthesis.procedural.templates import TEMPLATES
from rods.env.world import World, WorldTemplate
from rods.signature import STRUCTURE_WEIGHTS, compute_signature, signature_distance
from rods.tasks import CLASSES, Message, Task, ToolCall, function_docs, load_split

MIN_SUCCESS = 0.60  # share of draws that execute cleanly (see the module docstring)
MIN_PRECISION = 0.90  # share of proposed arguments that execute cleanly
MIN_E2E = 0.90
# Plain English words that are also parameter (or function) names; the critique gate does not
# check plain-word names either (they cannot be told from ordinary words). Each is used in its
# ordinary sense: "a" the article; the rest name the thing the user talks about.
ALLOWED_WORDS = frozenset(
    {
        "a",  # the article (also the hidden-files flag of ls)
        "base",  # "log base 10": the only natural way to say it
        "folder",  # a directory in everyday speech
        "lines",  # "the last 3 lines of the file"
        "name",  # "anything whose name includes 'test'"
        "password",  # "with the password 'x'": the user must supply it
        "temperature",  # "the temperature outside"
    }
)


@cache
def _docs() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for docs in function_docs().values() for d in docs}


@cache
def _seeds_by_class() -> dict[str, list[Task]]:
    out: dict[str, list[Task]] = defaultdict(list)
    for task in load_split("train", ["base", "long_context"]):
        for cls in task.involved_classes:
            out[cls].append(task)
    return {cls: tasks[:: max(1, len(tasks) // 12)][:12] for cls, tasks in out.items()}


@cache
def _template(task_id: str) -> WorldTemplate:
    task = next(t for ts in _seeds_by_class().values() for t in ts if t.id == task_id)
    return WorldTemplate(task)


def _draws(function: str, cls: str, n: int = 3) -> tuple[int, int, int]:
    """(clean, proposed, tried) over n draws on each seed of the class."""
    rng = random.Random(function)
    clean = proposed = tried = 0
    for task in _seeds_by_class()[cls]:
        for _ in range(n):
            world = _template(task.id).fresh()
            seq = _expand(function, world)
            if seq is None:
                continue  # a gate no function opens (market closed, full tank) in this seed
            earlier = _try(seq[:-1], world, [], rng)
            if earlier is None:
                continue
            tried += 1
            args = sample_arguments(function, world, earlier, rng)
            if isinstance(args, Failure):
                continue
            proposed += 1
            text = world.execute(ToolCall(name=function, arguments=args)).text
            clean += error_message(text) is None
    return clean, proposed, tried


def _all_functions() -> list[tuple[str, str]]:
    return [(cls, d["name"]) for cls, docs in function_docs().items() for d in docs]


# ---------------------------------------------------------------- coverage


def test_every_function_has_a_sampler_a_template_and_graph_entries_are_real():
    names = {f for _, f in _all_functions()}
    assert (
        len(names) == len(_all_functions()) == 128
    )  # bfcl-eval's 8 classes: 18+17+10+14+9+20+18+22
    assert set(TEMPLATES) == names
    assert {f for table in SAMPLERS.values() for f in table} == names
    for cls, f in _all_functions():
        assert f in SAMPLERS[cls], f"{f} sampled under the wrong class"
    for table in (PRODUCES, CONSUMES, NEEDS):
        assert set(table) <= names


@pytest.mark.parametrize(("cls", "function"), _all_functions())
def test_sampler_arguments_execute_cleanly(cls: str, function: str):
    clean, proposed, tried = _draws(function, cls)
    assert tried >= 6, f"{function}: only {tried} draws had its state gates open"
    if function in ALWAYS_FAILS:
        assert clean == 0  # the simulator answers an error in every state
        return
    assert clean / tried >= MIN_SUCCESS, f"{function}: {clean}/{tried} clean"
    assert proposed and clean / proposed >= MIN_PRECISION, (
        f"{function}: {clean}/{proposed} of proposals clean"
    )


def test_simulator_tables_agree_with_the_simulators():
    car = World.load(_seeds_by_class()["VehicleControlAPI"][0]).instances["VehicleControlAPI"]
    for city, zipcode in CITY_ZIPCODES.items():
        assert car.get_zipcode_based_on_city(city) == {"zipcode": zipcode}
    for a, b in ZIPCODE_DISTANCES:
        assert "distance" in car.estimate_distance(a, b)
    math = World.load(_seeds_by_class()["MathAPI"][0]).instances["MathAPI"]
    for unit_in, unit_out, _ in IMPERIAL_PAIRS:
        assert "result" in math.imperial_si_conversion(10.0, unit_in, unit_out)
    for unit_in in SI_UNITS:
        assert "result" in math.si_unit_conversion(10.0, unit_in, "m")
    travel = World.load(_seeds_by_class()["TravelAPI"][0]).instances["TravelAPI"]
    airports = set(travel.list_all_airports())
    assert bookable_routes() and all(a in airports and b in airports for a, b in bookable_routes())


# ---------------------------------------------------------------- plans


def _plan_seeds() -> list[Task]:
    """Training seeds of every class combination and every category (one each, in order)."""
    seen: set[tuple[tuple[str, ...], str]] = set()
    out = []
    for task in load_split("train"):
        key = (tuple(task.involved_classes), task.category)
        if key not in seen:
            seen.add(key)
            out.append(task)
    return out


def _plan(task: Task, seed: int, attempt: int = 0) -> Plan | Failure:
    ctx = PlanContext(
        task, compute_signature(task), tuple(task.involved_classes), attempt, random.Random(seed)
    )
    proposal = ProceduralBackend().plan(ctx)
    return proposal.failure if proposal.failure is not None else proposal.value


def test_plans_have_the_required_shape():
    owner = {f: cls for cls, f in _all_functions()}
    seeds = _plan_seeds()
    failures = on_path = planned = 0
    for i, task in enumerate(seeds):
        plan = _plan(task, i, attempt=i % 3)
        if isinstance(plan, Failure):
            assert plan.code == "func_sample_failed"
            failures += 1
            continue
        assert 2 <= len(plan.turns) <= 6, task.id
        classes_per_turn = []
        for turn in plan.turns:
            assert 1 <= len(turn) <= 4, (task.id, plan.turns)
            turn_classes = {owner[f] for f in turn}
            assert len(turn_classes) == 1, (task.id, turn)
            assert turn_classes <= set(task.involved_classes)
            classes_per_turn.append(turn_classes.pop())
        path = seed_turn_classes(task, tuple(task.involved_classes))
        on_path += classes_per_turn == story_classes(path, (), len(plan.turns), 0)
        planned += 1
    assert failures <= len(seeds) // 10, f"{failures} of {len(seeds)} seeds got no plan"
    # one user's story: the turns move between apps as the seed's turns do (issue 13, item 8)
    assert on_path >= 0.6 * planned, f"{on_path} of {planned} plans follow the seed's class path"


def test_plan_follows_the_seed_structure_when_it_can():
    """The chosen walk is closer to the seed's signature than a shape-blind walk, and mostly close."""
    chosen, blind = [], []
    seeds = _plan_seeds()[:20]
    for i, task in enumerate(seeds):
        plan = _plan(task, i)
        sig = compute_signature(task)
        if isinstance(plan, Plan):
            chosen.append(float(plan.notes.rsplit("distance=", 1)[1]))
        template = WorldTemplate(task)
        targets = [1] * len(_targets(sig))
        classes = turn_classes(tuple(task.involved_classes), len(targets), 0)
        turns = walk(template, classes, targets, False, random.Random(i))
        if turns is not None:
            predicted = predict_signature(tuple(task.involved_classes), turns)
            blind.append(signature_distance(predicted, sig, STRUCTURE_WEIGHTS))
    assert len(chosen) >= 18 and len(blind) >= 15
    assert sum(chosen) / len(chosen) < sum(blind) / len(blind)
    assert sum(d <= 0.25 for d in chosen) >= 0.7 * len(chosen)


def test_nothing_fits_is_a_failure_code_not_an_exception():
    task = _plan_seeds()[0]
    ctx = PlanContext(task, compute_signature(task), (), 0, random.Random(0))
    assert ProceduralBackend().plan(ctx).failure.code == "func_sample_failed"
    world = _template(_seeds_by_class()["GorillaFileSystem"][0].id).fresh()
    ctx_args = ArgContext("rmdir", _docs()["rmdir"], world, [], 0, random.Random(0))  # none made
    proposal = ProceduralBackend().arguments(ctx_args)
    assert proposal.value is None and proposal.failure.code == "param_gen_failed"


# ---------------------------------------------------------------- templates


def _names() -> frozenset[str]:
    out = set()
    for docs in function_docs().values():
        for d in docs:
            out.add(d["name"].lower())
            out.update(p.lower() for p in d.get("parameters", {}).get("properties", {}))
    return frozenset(out)


_QUOTED = re.compile(r"'[^']*'")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _named(text: str, unquoted_values: list[str]) -> set[str]:
    text = _QUOTED.sub(" ", text)
    for value in unquoted_values:  # people, places, companies from the state, said unquoted
        text = text.replace(value, " ")
    return {
        w for w in _WORD.findall(text) if w.lower() in _names() and w.lower() not in ALLOWED_WORDS
    }


def _sampled_calls(
    cls: str, function: str, n: int = 4
) -> list[tuple[ToolCall, list[tuple[ToolCall, str]]]]:
    """A few executed calls of `function` with the calls before them (for rendering)."""
    rng = random.Random(f"render-{function}")
    out = []
    for task in _seeds_by_class()[cls][:n]:
        world = _template(task.id).fresh()
        seq = _expand(function, world)
        earlier = _try(seq, world, [], rng) if seq else None
        if earlier:
            out.append((earlier[-1][0], earlier[:-1]))
    return out


@pytest.mark.parametrize("cls", CLASSES)
def test_templates_never_name_a_function_or_parameter(cls: str):
    funcs, params = gates.task_functions(_seeds_by_class()[cls][0])
    for _, function in [x for x in _all_functions() if x[0] == cls]:
        calls = _sampled_calls(cls, function)
        if function in ALWAYS_FAILS:
            calls = [(ToolCall(name=function), [])]
        assert calls, function
        for call, earlier in calls:
            unquoted = [v for v in call.arguments.values() if isinstance(v, str)]
            for flow in (Flow([]), Flow(earlier)):
                for variant in TEMPLATES[function]:
                    text = variant(Args(call, flow, random.Random(0)))
                    assert text and len(text) < 400
                    assert not _named(text, unquoted), (function, text, _named(text, unquoted))
                    assert not gates.check_query_text(text, funcs, params), (function, text)


# ---------------------------------------------------------------- end to end and determinism


def run_variant(
    task: Task, seed: int
) -> tuple[list[list[ToolCall]], list[str], str | None, dict[str, Any]]:
    """plan → arguments → execute → queries, as the graph does it (without retries or patches),
    in the plan's own world; the last item is that world's initial config."""
    backend = ProceduralBackend()
    rng = random.Random(seed)
    ctx = PlanContext(task, compute_signature(task), tuple(task.involved_classes), 0, rng)
    plan = backend.plan(ctx)
    if plan.failure is not None:
        return [], [], f"plan: {plan.failure.code}", task.initial_config
    config = plan.value.initial_config or task.initial_config
    world = World.load(task.model_copy(update={"initial_config": config}))
    earlier: list[tuple[ToolCall, str]] = []
    calls_per_turn, results_per_turn = [], []
    for u, turn in enumerate(plan.value.turns):
        calls, results = [], []
        for function in turn:
            proposal = backend.arguments(
                ArgContext(function, _docs()[function], world, list(earlier), u, rng)
            )
            if proposal.failure is not None:
                return calls_per_turn, [], f"arguments of {function}: {proposal.failure.detail}", config
            call = ToolCall(name=function, arguments=proposal.value)
            text = world.execute(call).text
            if error_message(text) is not None:
                return calls_per_turn, [], f"{call.to_python()} -> {text[:120]}", config
            earlier.append((call, text))
            calls.append(call)
            results.append(text)
        calls_per_turn.append(calls)
        results_per_turn.append(tuple(results))
    qctx = QueryContext(
        task,
        tuple(tuple(c) for c in calls_per_turn),
        tuple(results_per_turn),
        config,
        rng,
    )
    queries = backend.queries(qctx)
    if queries.failure is not None:
        return calls_per_turn, [], f"queries: {queries.failure.code}", config
    return calls_per_turn, queries.value, None, config


def _e2e_seeds() -> list[Task]:
    """50 training seeds spread over all class combinations (hence all 8 classes) and categories."""
    tasks = load_split("train")
    by_combo: dict[tuple[str, ...], list[Task]] = defaultdict(list)
    for t in tasks:
        by_combo[tuple(t.involved_classes)].append(t)
    out: list[Task] = []
    i = 0
    while len(out) < 50:
        for combo in sorted(by_combo):
            if i < len(by_combo[combo]) and len(out) < 50:
                out.append(by_combo[combo][i * 7 % len(by_combo[combo])])
        i += 1
    return out


def test_end_to_end_variants_execute_and_pass_the_query_gates():
    seeds = _e2e_seeds()
    assert {c for t in seeds for c in t.involved_classes} == set(CLASSES)
    problems = []
    for i, task in enumerate(seeds):
        calls, queries, problem, _ = run_variant(task, i)
        if problem is None:
            funcs, params = gates.task_functions(task)
            bad = [r for q in queries for r in gates.check_query_text(q, funcs, params)]
            problem = f"query gate: {bad}" if bad else None
        if problem is not None:
            problems.append((task.id, problem))
    clean = len(seeds) - len(problems)
    print(f"end to end: {clean}/{len(seeds)} variants executed cleanly and passed the query gates")
    assert clean / len(seeds) >= MIN_E2E, problems


def test_predicted_edges_match_the_written_task():
    """The planner's predicted data flow is what the final task's signature finds."""
    agree = total = 0
    for i, task in enumerate(_e2e_seeds()[:20]):
        calls, queries, problem, config = run_variant(task, 100 + i)
        if problem is not None:
            continue
        shell = Task(
            id="multi_turn_base_check",
            question=[[Message(role="user", content=q)] for q in queries],
            initial_config=config,
            involved_classes=task.involved_classes,
            ground_truth=[[c.to_python() for c in turn] for turn in calls],
        )
        world = World.load(shell)
        executed = [[(c, world.execute(c).text) for c in turn] for turn in calls]
        predicted = predict_signature(tuple(task.involved_classes), executed, WorldTemplate(shell))
        actual = compute_signature(shell)
        total += 1
        agree += (predicted.topology, predicted.depth) == (actual.topology, actual.depth)
    assert total >= 15 and agree / total >= 0.8, f"{agree}/{total}"


def test_same_rng_seed_gives_the_same_variant():
    for task in _e2e_seeds()[::10]:
        first = run_variant(task, 7)
        second = run_variant(task, 7)
        assert first == second
    plans = {str(_plan(_e2e_seeds()[0], s)) for s in range(4)}
    assert len(plans) > 1  # and a different seed varies it


def test_user_supplied_values_appear_in_the_turn_and_flowed_ids_do_not():
    for i, task in enumerate(_e2e_seeds()[::5]):
        calls, queries, problem, config = run_variant(task, 200 + i)
        if problem is not None:
            continue
        earlier: list[tuple[ToolCall, str]] = []
        world = World.load(task.model_copy(update={"initial_config": config}))
        for turn, query in zip(calls, queries, strict=True):
            for call in turn:
                flow = Flow(earlier)
                for name, value in call.arguments.items():
                    if not isinstance(value, str) or name in _ENUM_LIKE or value == "..":
                        continue
                    if flow.source(value) is not None:
                        if value not in ("",) and len(value) >= 4 and not value.isalpha():
                            assert value not in query, (call, query)  # referred to, not named
                    elif name == "travel_date":  # said as people write dates (voice.date)
                        year, month, day = (int(x) for x in value.split("-"))
                        said = (value, _MONTH_NAMES[month - 1])
                        assert str(year) in query and any(s in query for s in said), (value, query)
                    else:
                        assert value.lower() in query.lower(), (name, value, query)
                earlier.append((call, world.execute(call).text))


_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_ENUM_LIKE = frozenset(
    {"mode", "option", "unit", "unit_in", "unit_out", "order_type", "travel_class", "ignitionMode"}
)


def test_judge_and_repair():
    backend = ProceduralBackend()
    task = _e2e_seeds()[0]
    assert backend.judge(task).value is None and backend.judge(task).failure is None
    assert backend.repair(task, None).failure.code == "query_gen_failed"  # type: ignore[arg-type]
