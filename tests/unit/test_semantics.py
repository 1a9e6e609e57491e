"""The value-meaning declaration and the semantic gate (`rods.semantics`), on BFCL's own tasks.

Needs nothing but bfcl-eval; the 400-seed test executes every training seed once (~1 s)."""

from __future__ import annotations

from collections import Counter

import pytest

from rods.semantics import (
    CODE_HELP,
    SEMANTIC_CODES,
    accepts,
    flow_problem,
    param_kind,
    result_kinds,
    semantic_codes,
    semantic_findings,
    semantic_rejections,
)
from rods.tasks import Message, ToolCall, get_bfcl_task, load_split


def test_no_human_training_seed_is_rejected_or_flagged() -> None:
    findings = Counter(f.code for t in load_split("train") for f in semantic_findings(t))
    assert findings == Counter()


def test_every_code_is_explained() -> None:
    assert set(CODE_HELP) == set(SEMANTIC_CODES)


def test_kinds_agree_or_convert() -> None:
    assert flow_problem("fuel:gallon", "distance:km") == "semantic_kind_mismatch"
    assert flow_problem("money:USD", "price:AAPL") == "semantic_kind_mismatch"
    assert flow_problem("money:USD", "money:USD") is None
    assert flow_problem("distance:*", "distance:km") is None  # BFCL's km → miles convention
    assert flow_problem("number", "temperature:celsius") is None  # MathAPI takes any quantity
    assert flow_problem("money:USD", "number") == "semantic_untyped_flow"
    assert accepts("symbol", "anything") is True  # ids are not typed here
    call = ToolCall(name="compute_exchange_rate", arguments={"base_currency": "CAD", "target_currency": "usd", "value": 5.0})
    assert param_kind(call.name, "value", call.arguments) == "money:CAD"
    assert result_kinds(call, {"exchanged_value": 3.7}) == [("money:USD", 3.7, None, 1)]


def test_math_keeps_the_kind_only_where_the_operation_keeps_it() -> None:
    mean = ToolCall(name="mean", arguments={"numbers": [1.0, 2.0]})
    kept = {"numbers": "temperature:celsius"}
    assert result_kinds(mean, {"result": 1.5}, kept)[0][0] == "temperature:celsius"
    mul = ToolCall(name="multiply", arguments={"a": 1.0, "b": 2.0})
    assert result_kinds(mul, {"result": 2.0}, {"a": "distance:km"})[0][0] == "number"


def _with_turn(task_id: str, calls: list[str], text: str) -> object:
    seed = get_bfcl_task(task_id)
    question = [*seed.question, [Message(role="user", content=text)]]
    return seed.model_copy(update={"question": question, "ground_truth": [*seed.ground_truth, calls]})


def test_a_distance_fed_to_a_gallon_converter_is_rejected() -> None:
    task = _with_turn("multi_turn_base_57", ["gallon_to_liter(gallon=630.0)"], "Express that distance in liters.")
    assert semantic_rejections(task) == ["semantic_kind_mismatch"]  # type: ignore[arg-type]


def test_a_usd_amount_converted_as_cad_is_rejected_and_usd_passes() -> None:
    seed = get_bfcl_task("multi_turn_base_151")
    wrong = seed.model_copy(update={"ground_truth": [
        [*seed.ground_truth[0][:2], "compute_exchange_rate(base_currency='CAD', target_currency='USD', value=400.0)"],
        *seed.ground_truth[1:]]})  # fmt: skip
    assert "semantic_kind_mismatch" in semantic_codes(wrong)
    assert semantic_codes(seed) == []


def test_a_result_stated_by_the_user_before_it_exists_is_rejected() -> None:
    task = _with_turn(
        "multi_turn_base_57",
        ["estimate_distance(cityA='69238', cityB='51479')", "absolute_value(number=-630.0)"],
        "Find the distance again and give me the absolute value of -630.0.",
    )
    # 630 is a result of turn 0 already: stated after it exists, so it passes
    assert "semantic_value_before_source" not in semantic_codes(task)  # type: ignore[arg-type]
    early = _with_turn("multi_turn_base_57", ["add(a=630.0, b=1.25)"], "Add 1.25 to that distance: 631.25.")
    assert "semantic_value_before_source" in semantic_codes(early)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["Give me the standard deviation of those 2 figures from before."])
def test_vague_list_references_are_unidentifiable(text: str) -> None:
    task = _with_turn("multi_turn_base_57", ["standard_deviation(numbers=[630.0, 2.79934])"], text)
    assert "semantic_unidentifiable_reference" in semantic_codes(task)  # type: ignore[arg-type]

