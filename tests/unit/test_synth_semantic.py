"""The semantic gate where synthesis uses it: critique's gates, the audit's figures, the
miss_param transform of a folded `cd`. Unit tests: bfcl-eval only, no services."""

from __future__ import annotations

import random

import pytest

from graphs.synthesis import gates
from graphs.synthesis.audit import gate_rejections, semantic_summary
from graphs.synthesis.augment import withhold
from rods.env.reward import GroundTruthCache
from rods.tasks import Message, RodsMeta, Task, get_bfcl_task


def _distance_to_gallons() -> Task:
    seed = get_bfcl_task("multi_turn_base_57")
    return seed.model_copy(update={
        "question": [*seed.question, [Message(role="user", content="Express that distance in liters.")]],
        "ground_truth": [*seed.ground_truth, ["gallon_to_liter(gallon=630.0)"]],
    })  # fmt: skip


def test_critique_gates_reject_a_kind_mismatch_and_pass_the_seed() -> None:
    cache = GroundTruthCache(max_tasks=8)
    assert "semantic_kind_mismatch" in gates.run_gates(_distance_to_gallons(), cache)
    assert "semantic_kind_mismatch" in gates.REJECTION_REASONS
    assert gates.run_gates(get_bfcl_task("multi_turn_base_57"), cache) == []


def test_audit_counts_semantic_findings_and_gate_rejections() -> None:
    summary = semantic_summary([_distance_to_gallons(), get_bfcl_task("multi_turn_base_57")])
    assert summary == {"n": 2, "with_finding": 1, "with_error": 1, "codes": {"semantic_kind_mismatch": 1}}
    seed = get_bfcl_task("multi_turn_base_57")
    meta = [RodsMeta(origin="synthetic", parent_id="p", synthesizer="procedural", rejections=r)  # type: ignore[call-arg]
            for r in ({"semantic_kind_mismatch": 1}, {"semantic_kind_mismatch": 2, "signature_far": 1})]  # fmt: skip
    variants = [seed.model_copy(update={"rods": m}) for m in meta]  # one run: running counts
    other = seed.model_copy(update={"rods": RodsMeta(origin="synthetic", parent_id="q", synthesizer="procedural")})
    assert gate_rejections([*variants, other]) == {"semantic_kind_mismatch": 2, "signature_far": 1}


@pytest.mark.parametrize(
    "text",
    ["Where am I in the file system (it's in 'contracts')?", "In 'contracts', where am I in the file system?",
     "Sort 'a.txt' inside 'contracts'."],
)
def test_a_withheld_folded_cd_still_asks_to_move(text: str) -> None:
    start = text.index("'contracts'")
    out = withhold(text, "folder", "contracts", (start, start + len("'contracts'")), random.Random(0))
    assert out is not None and "contracts" not in out
    assert any(w in out.lower() for w in ("moving into", "gone into", "switching to")), out


def test_typed_samplers_take_only_values_of_their_kind() -> None:
    from graphs.synthesis.procedural.samplers import sample_arguments
    from rods.env.world import World
    from rods.tasks import ToolCall

    car = World.load(get_bfcl_task("multi_turn_base_57"))
    distance = [(ToolCall(name="estimate_distance", arguments={"cityA": "69238", "cityB": "51479"}), '{"distance": 630.0}')]
    args = sample_arguments("gallon_to_liter", car, distance, random.Random(0))
    assert isinstance(args, dict) and args["gallon"] != 630.0  # a distance is no amount of fuel
    gallons = [(ToolCall(name="liter_to_gallon", arguments={"liter": 20.0}), '{"gallon": 5.283}')]
    assert sample_arguments("gallon_to_liter", car, gallons, random.Random(0)) == {"gallon": 5.283}

    travel = World.load(get_bfcl_task("multi_turn_base_151"))
    pounds = [(ToolCall(name="compute_exchange_rate", arguments={"base_currency": "USD", "target_currency": "GBP", "value": 100.0}),
               '{"exchanged_value": 70.0}')]  # fmt: skip
    for seed in range(5):
        args = sample_arguments("compute_exchange_rate", travel, pounds, random.Random(seed))
        assert isinstance(args, dict) and args["value"] == 70.0 and args["base_currency"] == "GBP"
        budget = sample_arguments("set_budget_limit", travel, pounds, random.Random(seed))
        assert isinstance(budget, dict) and budget["budget_limit"] != 70.0  # GBP is no USD budget


def test_a_list_of_flowed_values_is_named_by_what_each_is() -> None:
    from graphs.synthesis.procedural.flow import Flow
    from graphs.synthesis.procedural.render import Args
    from rods.tasks import ToolCall

    flow = Flow([
        (ToolCall(name="estimate_distance", arguments={"cityA": "1", "cityB": "2"}), '{"distance": 630.0}'),
        (ToolCall(name="get_outside_temperature_from_google", arguments={}), '{"outsideTemperature": 21.5}'),
    ])  # fmt: skip
    text = Args(ToolCall(name="mean", arguments={"numbers": [630.0, 21.5]}), flow, random.Random(0)).v("numbers")
    assert "from before" not in text and "distance" in text and "temperature" in text
