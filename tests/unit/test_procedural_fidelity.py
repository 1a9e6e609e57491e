"""Issue 13: the procedural backend's variants are faithful to their seeds (each test failed on the
output of the backend before the issue's fixes; the figures it had are in the comments).

One sample of variants is made once (a fixed spread of training seeds of all four categories,
one variant each, fixed rng seeds) and read by the tests; the audit's own text measures
(`graphs.synthesis.audit_text`) count clauses and openers, so "clauses per call" means here what
`rods synth audit` reports.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import cache

from graphs.synthesis.audit_text import KNOWN_CUES, count_clauses, opener
from graphs.synthesis.augment import withhold
from graphs.synthesis.gates import check_final_long_context, check_final_miss_param
from graphs.synthesis.graph import synthesize
from graphs.synthesis.procedural import ProceduralBackend
from graphs.synthesis.procedural.scope import CITY_ZIPCODES, city_airports, company_symbols
from graphs.synthesis.procedural.writer import write_queries
from rods.tasks import CATEGORIES, Task, ToolCall, get_bfcl_task, load_split

PER_CATEGORY = 7  # seeds per category in the sample (spread over the training split)
MAX_SHARE = 0.05  # issue 13: no opener or value in more than 5 % of variants


@cache
def _sample() -> tuple[tuple[Task, Task], ...]:
    """(seed, variant) pairs: one variant of each sampled seed."""
    backend = ProceduralBackend()
    out = []
    for c, category in enumerate(CATEGORIES):
        seeds = load_split("train", [category])  # index k of each category: the same scenario
        for i, seed in enumerate(seeds[3 + 2 * c :: len(seeds) // PER_CATEGORY][:PER_CATEGORY]):
            res = synthesize(seed, n_variants=1, backend=backend, rng_seed=100 * c + i)
            out += [(seed, task) for task in res.tasks]
    return tuple(out)


def _turns(task: Task) -> list[tuple[str, list[str]]]:
    return [
        (" ".join(m.content for m in q), g)
        for q, g in zip(task.question, task.ground_truth, strict=True)
        if q
    ]


def _clauses_per_call(tasks: list[Task]) -> float:
    """The audit's measure: per task, the mean over turns with calls and text of clauses/calls."""
    per_task = []
    for task in tasks:
        ratios = [count_clauses(text) / len(gt) for text, gt in _turns(task) if gt and text]
        if ratios:
            per_task.append(sum(ratios) / len(ratios))
    return sum(per_task) / len(per_task)


def test_the_sample_is_large_enough():
    assert len(_sample()) >= 0.75 * PER_CATEGORY * len(CATEGORIES)


def test_no_opener_in_more_than_five_percent_of_turns():
    # before: "one more thing" opened 40 % of turns, "hello there" / "i need a" most first turns
    openers = Counter(opener(text) for _, task in _sample() for text, _ in _turns(task) if text)
    (top, k), = openers.most_common(1)
    assert k <= max(2, MAX_SHARE * sum(openers.values())), (top, k, sum(openers.values()))


def test_no_cue_phrases():
    # before: "I will specify" in every miss_param variant, "I'd like you to" in 69 % of turns
    for _, task in _sample():
        for text, _ in _turns(task):
            low = text.lower()
            assert not any(cue in low for cue in KNOWN_CUES), text
    texts = [text.lower() for _, task in _sample() for text, _ in _turns(task)]
    assert sum("i'd like you to" in t for t in texts) <= MAX_SHARE * len(texts)


def test_clauses_per_call_are_within_15_percent_of_the_seeds():
    # before: 1.09 clauses per call against the seeds' 1.54 (one clause per call, no context)
    seeds = [t for c in CATEGORIES for t in load_split("train", [c])]
    target = _clauses_per_call(seeds)
    got = _clauses_per_call([task for _, task in _sample()])
    assert abs(got - target) <= 0.15 * target, (got, target)


def test_every_variant_has_a_world_of_its_own():
    # before: every variant carried its seed's initial_config unchanged
    for seed, task in _sample():
        if seed.initial_config and set(seed.initial_config) - {"MathAPI"}:
            assert task.initial_config != seed.initial_config, seed.id


def test_no_world_value_recurs_across_variants():
    # before: the user 'dana', a few file names and reply texts recurred in 5-15 % of variants
    # the simulators' fixed tables (tickers, airports, currencies, cities) are not the world's
    tables = {c.lower() for c in (*CITY_ZIPCODES, *city_airports(), *company_symbols())}
    values: Counter[str] = Counter()
    for _, task in _sample():
        seen = {
            v.lower()
            for q in task.question
            for m in q
            for v in re.findall(r"(?<![\w])'([^'\n]{4,})'(?![\w])", m.content)
            if not v.isupper() and v.lower() not in tables
        }
        values.update(seen)
    n = len(_sample())
    (top, k), = values.most_common(1)
    assert k <= max(2, MAX_SHARE * n), (top, k, n)


def test_miss_param_withholds_the_value_and_the_next_turn_supplies_it():
    # before: "a file name I will specify", and in 9 of 77 the value was still in the turn
    checked = 0
    for seed, task in _sample():
        if seed.category != "miss_param":
            continue
        for u, (q, gt) in enumerate(zip(task.question, task.ground_truth, strict=True)):
            if gt or not q or u + 1 >= task.n_turns:
                continue
            withheld = " ".join(m.content for m in q)
            supplied = " ".join(m.content for m in task.question[u + 1])
            values = re.findall(r"(?<![\w])'([^'\n]+)'(?![\w])", supplied)
            numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", supplied)
            assert values or numbers, supplied
            assert all(v.lower() not in withheld.lower() for v in values), (withheld, supplied)
            assert not any(re.search(rf"(?<![\w.]){re.escape(x)}(?![\w])", withheld) for x in numbers)
            assert "specify" not in withheld.lower()
            assert check_final_miss_param(task) == [], task.id
            checked += 1
    assert checked == sum(seed.category == "miss_param" for seed, _ in _sample()) >= PER_CATEGORY - 3


def test_withhold_leaves_no_trace_of_the_value():
    rng = random.Random(0)
    cases = [
        ("Sign me into Twitter as 'ann' with the password 'pw123'.", "password", "pw123"),
        ("Go into the 'docs' directory and list it.", "folder", "docs"),
        ("Open a support ticket titled 'Printer jam'.", "title", "Printer jam"),
        ("Close ticket 4821, please.", "ticket_id", 4821),
    ]
    for text, param, value in cases:
        shown = f"'{value}'" if isinstance(value, str) else str(value)
        a = text.index(shown)
        out = withhold(text, param, value, (a, a + len(shown)), rng)
        if param == "ticket_id":
            assert out is None  # no phrase says a ticket id well: never withheld
            continue
        assert out is not None and str(value).lower() not in out.lower(), out
        assert "specify" not in out and "  " not in out, out


def test_long_context_variants_read_long_results():
    # before: in 2 of 4 long_context variants no result on the ground-truth path grew
    checked = 0
    for seed, task in _sample():
        if seed.category == "long_context":
            assert check_final_long_context(task) == [], task.id
            checked += 1
    assert checked >= PER_CATEGORY - 2


def test_long_and_deep_seeds_get_variants():
    # before: a 7-turn miss_param seed got 0 of 3, a deep base seed 1 of 3
    backend = ProceduralBackend()
    for seed_id in ("multi_turn_miss_param_110", "multi_turn_base_2"):
        seed = get_bfcl_task(seed_id)
        res = synthesize(seed, n_variants=2, backend=backend, rng_seed=5)
        assert len(res.tasks) >= 1, (seed_id, res.failures, res.rejections)
        assert max(t.n_turns for t in res.tasks) >= seed.n_turns - 1


def test_setup_steps_are_left_implicit():
    """A `cd` reads as a place, a ticker look-up as the company, a login as an aside."""
    cd = ToolCall(name="cd", arguments={"folder": "reports"})
    rm = ToolCall(name="rm", arguments={"file_name": "old.txt"})
    lookup = ToolCall(name="get_symbol_by_name", arguments={"name": "Zeta Corp"})
    info = ToolCall(name="get_stock_info", arguments={"symbol": "ZETA"})
    for s in range(20):
        fs, trade = write_queries(
            ((cd, rm), (lookup, info)),
            (('{"current_working_directory": "reports"}', "None"), ('{"symbol": "ZETA"}', '{"price": 1.0}')),
            random.Random(s),
        )
        request = next(t for t in re.split(r"(?<=[.?!]) ", fs) if "'old.txt'" in t)
        assert "'reports'" in request and count_clauses(request) == 1, fs
        assert "Zeta Corp" in trade and "ticker" not in trade.lower()
