"""The synthesis fidelity audit: how far variants are from the human-written seeds, per category.

`audit(variants, reference)` compares a set of variants with reference tasks (the BFCL training
split: human-written seeds; never the evaluation split) category by category, and
`rods synth audit VARIANTS.jsonl` prints it. Every measure is computed by the same function for
both sides:

- turns: user turns per task; calls per turn: ground-truth calls per turn with calls;
- depth: dependency depth of the signature (`rods.signature`, data flow and state);
- clauses per call: clauses of a user turn / its ground-truth calls, mean over the task's
  turns with calls and text. Clauses: quoted spans replaced by one word, then pieces split on
  sentence ends (`.!?` before white space or the end), `;` and the joins of `audit_text.JOINS`
  (", then", "and then", "after that", …) that hold a letter or digit (`audit_text` docstring);
- query chars: characters per non-empty user turn;
- distinct-2: distinct word bigrams / bigrams over the user turns of an equal number of tasks
  on both sides (the first min(n_variants, n_reference) tasks after a fixed shuffle), since the
  ratio falls as text grows;
- top opener / top value: the opener (first 3 words of a turn's first sentence) and the
  ground-truth argument value (strings of 3+ characters, numbers of 2+ digits) carried by most
  tasks, with that share of tasks (the issue's bar: no opener or value in more than 5 %);
- cue phrases: mined 3-grams frequent in the variants and absent from the human turns, plus
  known cues (`audit_text.mine_cue_phrases`), and the variants carrying any of them;
- reference copies: the variants with a user turn that shares a word 8-gram with a reference
  turn (`audit_text.copied`). Not a bar of its own, but context for the AUC: text taken over
  from the reference lowers it by memorisation, so a backend that reuses human text should
  be audited `--against` reference tasks disjoint from its sources;
- longest result: the longest tool result on the executed ground-truth path, median over tasks
  (BFCL's long_context tasks read long results); long gain: for long_context tasks, the share
  whose longest result beats the same task's in the normal world by more than 200 characters
  (`gates.check_final_long_context`; BFCL's training seeds: 85 %);
- AUC: the naive Bayes discriminator's cross-validated AUC, variants vs human tasks (0.5:
  indistinguishable).

Flags name the bars a category misses: `auc` (> 0.75), `clauses_per_call` (mean more than
15 % from the reference's), `opener` / `value` (top share > 5 %), `cue_phrases` (any),
`long_results` (long_context variants' median longest result under half the reference's, or
a long-gain share more than 15 points under the reference's).

Semantics (`semantic`, per category, both sides): the variants with any finding of the semantic
gate (`rods.semantics`), those with a meaning error (a rejecting code), and the count per code;
`gate_rejections`: the critique's rejections per code over the runs that made the variants (read
from each variant's `rods.rejections`, the running counts of its synthesis run: the largest per
parent seed and synthesizer, so one run per seed is counted once; two runs of one seed count as
their larger).
Ground truth is executed in fresh simulators (`World`), never `exec`ed.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from graphs.synthesis import audit_text as text
from graphs.synthesis.gates import check_final_long_context
from rods.env.calls import CallSyntaxError, parse_python_call
from rods.semantics import SOFT_CODES, semantic_codes
from rods.signature import execute_and_sign
from rods.tasks import CATEGORIES, Task, scenario_index

AUC_BAR = 0.75
CLAUSE_TOLERANCE = 0.15
SHARE_BAR = 0.05
METRICS: tuple[str, ...] = (
    "turns",
    "calls_per_turn",
    "depth",
    "clauses_per_call",
    "query_chars",
    "distinct_2",
    "longest_result",
    "long_gain",
)


@dataclass(frozen=True)
class TaskFacts:
    """What the audit reads off one task."""

    category: str
    group: str  # the seed scenario it descends from: a variant and its seed share it
    turns: tuple[str, ...]  # user messages, one per turn ("" for an empty turn)
    turns_n: int
    calls_per_turn: float
    depth: int
    clauses_per_call: float  # NaN when no turn has both text and calls
    query_chars: float
    longest_result: int
    long_gain: float  # long_context: 1.0 if the longest result beats the base world's by > 200
    openers: frozenset[str]
    values: frozenset[str]


def _group(task: Task) -> str:
    root = task.rods.root_id if task.rods and task.rods.root_id else task.id
    try:
        return str(scenario_index(root))
    except ValueError:
        return root


def ground_truth_values(task: Task) -> frozenset[str]:
    """Argument values of the ground truth: strings of 3+ characters (lowercased), numbers with
    2+ digits; list items and dict values walked."""
    out: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif isinstance(v, int | float) and math.isfinite(v) and abs(v) >= 10:
            out.add(repr(v))
        elif isinstance(v, str) and len(v.strip()) >= 3:
            out.add(v.strip().lower())

    for sources in task.ground_truth:
        for source in sources:
            try:
                call = parse_python_call(source)
            except CallSyntaxError:
                continue
            for arg in (*call.args, *call.kwargs.values()):
                walk(arg)
    return frozenset(out)


def task_facts(task: Task) -> TaskFacts:
    """Execute the ground truth once (fresh simulators) and measure the task."""
    calls, signature = execute_and_sign(task)
    turns = tuple(" ".join(m.content for m in msgs if m.role == "user").strip() for msgs in task.question)
    ratios = [
        text.count_clauses(t) / len(gt) for t, gt in zip(turns, task.ground_truth, strict=True) if t and gt
    ]
    active = [len(gt) for gt in task.ground_truth if gt]
    said = [t for t in turns if t]
    return TaskFacts(
        category=task.category,
        group=_group(task),
        turns=turns,
        turns_n=len(turns),
        calls_per_turn=sum(active) / len(active) if active else 0.0,
        depth=signature.depth,
        clauses_per_call=statistics.fmean(ratios) if ratios else math.nan,
        query_chars=statistics.fmean(len(t) for t in said) if said else 0.0,
        longest_result=max((len(c.result) for c in calls), default=0),
        long_gain=float(not check_final_long_context(task)) if task.long_context else math.nan,
        openers=frozenset(o for o in (text.opener(t) for t in said) if o),
        values=ground_truth_values(task),
    )


# ---------------------------------------------------------------- aggregation


@dataclass
class Side:
    """One side (variants or reference) of one category."""

    n: int
    metrics: dict[str, float]
    top_opener: tuple[str, int, float]
    top_value: tuple[str, int, float]


@dataclass
class CategoryAudit:
    category: str
    variants: Side
    reference: Side
    auc: float
    cue_phrases: dict[str, int]  # phrase -> variants carrying it
    cue_variants: int  # variants carrying any cue phrase
    copied_variants: int  # variants sharing a word 8-gram with a reference turn
    flags: list[str] = field(default_factory=list)


def _mean(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def _side(facts: Sequence[TaskFacts], sample: Sequence[TaskFacts]) -> Side:
    return Side(
        n=len(facts),
        metrics={
            "turns": _mean(f.turns_n for f in facts),
            "calls_per_turn": _mean(f.calls_per_turn for f in facts),
            "depth": _mean(f.depth for f in facts),
            "clauses_per_call": _mean(f.clauses_per_call for f in facts),
            "query_chars": _mean(f.query_chars for f in facts),
            "distinct_2": text.distinct_ratio(t for f in sample for t in f.turns),
            "longest_result": float(statistics.median(f.longest_result for f in facts)) if facts else math.nan,
            "long_gain": _mean(f.long_gain for f in facts),
        },
        top_opener=text.top_share([f.openers for f in facts]),
        top_value=text.top_share([f.values for f in facts]),
    )


def _flags(category: str, v: Side, r: Side, auc: float, cue_variants: int) -> list[str]:
    flags = []
    if not math.isnan(auc) and auc > AUC_BAR:
        flags.append("auc")
    cv, cr = v.metrics["clauses_per_call"], r.metrics["clauses_per_call"]
    if not (math.isnan(cv) or math.isnan(cr)) and abs(cv - cr) > CLAUSE_TOLERANCE * cr:
        flags.append("clauses_per_call")
    if v.top_opener[2] > SHARE_BAR:
        flags.append("opener")
    if v.top_value[2] > SHARE_BAR:
        flags.append("value")
    if cue_variants:
        flags.append("cue_phrases")
    lv, lr = v.metrics["longest_result"], r.metrics["longest_result"]
    gv, gr = v.metrics["long_gain"], r.metrics["long_gain"]
    short = not math.isnan(lv) and lv < 0.5 * lr
    if category == "long_context" and (short or (not math.isnan(gv) and gv < gr - 0.15)):
        flags.append("long_results")
    return flags


def compare(
    category: str,
    variants: Sequence[TaskFacts],
    reference: Sequence[TaskFacts],
    cues: dict[str, int],
    copies: int = 0,
    k: int = 5,
    seed: int = 0,
) -> CategoryAudit:
    """One category's audit from measured tasks; `cues` are the phrases mined over all variants,
    `copies` the variants among them that share a word 8-gram with a reference turn."""
    n = min(len(variants), len(reference))
    rng = random.Random(seed)
    sample_v = rng.sample(list(variants), n)
    sample_r = rng.sample(list(reference), n)
    v, r = _side(variants, sample_v), _side(reference, sample_r)
    auc = text.discriminator_auc(
        ["\n".join(f.turns) for f in variants],
        ["\n".join(f.turns) for f in reference],
        [f.group for f in variants],
        [f.group for f in reference],
        k=k,
        seed=seed,
    )
    carrying = {c: 0 for c in cues}
    cue_variants = 0
    for f in variants:
        joined = [" ".join(text.words(t)) for t in f.turns]
        hit = [c for c in cues if any(c in t for t in joined)]
        cue_variants += bool(hit)
        for c in hit:
            carrying[c] += 1
    found = {c: n for c, n in carrying.items() if n}
    flags = _flags(category, v, r, auc, cue_variants)
    return CategoryAudit(category, v, r, auc, found, cue_variants, copies, flags)


def audit(
    variants: Sequence[Task], reference: Sequence[Task], k: int = 5, seed: int = 0
) -> dict[str, Any]:
    """The audit as a JSON-ready dict: `categories` (one entry per category with variants, and
    `all`), each with both sides' metrics, top opener/value, AUC, cue phrases and flags."""
    vf = [task_facts(t) for t in variants]
    rf = [task_facts(t) for t in reference]
    cues = text.mine_cue_phrases([f.turns for f in vf], [f.turns for f in rf], [f.group for f in vf])
    copied = text.copied([f.turns for f in vf], [f.turns for f in rf])
    out: dict[str, Any] = {"variants": len(vf), "reference": len(rf), "categories": {}}
    present = [c for c in CATEGORIES if any(f.category == c for f in vf)]
    for c in [*present, "all"]:
        mine = [f for f in vf if c in ("all", f.category)]
        theirs = [f for f in rf if c in ("all", f.category)]
        copies = sum(hit for f, hit in zip(vf, copied, strict=True) if c in ("all", f.category))
        out["categories"][c] = asdict(compare(c, mine, theirs, cues, copies, k, seed))
    out["semantic"] = {
        c: {
            "variants": semantic_summary([t for t in variants if c in ("all", t.category)]),
            "reference": semantic_summary([t for t in reference if c in ("all", t.category)]),
        }
        for c in [*present, "all"]
    }
    out["gate_rejections"] = gate_rejections(variants)
    return out


def semantic_summary(tasks: Sequence[Task]) -> dict[str, Any]:
    """Tasks with any semantic finding, with a meaning error, and the tasks per code."""
    codes = [semantic_codes(t) for t in tasks]
    per: dict[str, int] = {}
    for found in codes:
        for c in found:
            per[c] = per.get(c, 0) + 1
    return {
        "n": len(tasks),
        "with_finding": sum(bool(c) for c in codes),
        "with_error": sum(any(x not in SOFT_CODES for x in c) for c in codes),
        "codes": dict(sorted(per.items())),
    }


def gate_rejections(variants: Sequence[Task]) -> dict[str, int]:
    """The critique's rejection counts per code over the runs that made `variants` (docstring)."""
    runs: dict[tuple[str, str], dict[str, int]] = {}
    for t in variants:
        meta = t.rods
        if meta is None or meta.origin != "synthetic":
            continue
        run = runs.setdefault((meta.parent_id or "", meta.synthesizer or ""), {})
        for code, n in ((meta.model_extra or {}).get("rejections") or {}).items():
            run[code] = max(run.get(code, 0), n)
    total: dict[str, int] = {}
    for run in runs.values():
        for code, n in run.items():
            total[code] = total.get(code, 0) + n
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))
