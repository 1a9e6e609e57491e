"""Word shingles of a task, for the near-duplicate gates (`pool_duplicate`, `eval_duplicate`).

A task's shingles are the hashed word 3-grams of its user turns and of its ground-truth calls
(separately), less the 3-grams of bfcl-eval's long-context filler. The filler is the text that
BFCL's long_context category loads into every simulator it pads (`func_source_code/
long_context.py`: the same 3,251-character financial report appended to files, the same
vehicle metadata and booking records, …); a ground truth that sends or posts a file's content
copies it into its call arguments. Counted as content, that shared padding made five
long_context training seeds look 70–77 % similar to held-out long_context_30 (whose base
scenarios are 0.7 % similar: different classes, different requests), so `rods synth validate`
flagged unchanged training seeds as held-out near-copies. Without the filler the nearest held-out
task of any training seed is at most 0.22 similar, while a copy of a held-out task is still 1.0.

Pure; the filler's shingles are computed once per process (a few milliseconds).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache

from rods.tasks import Task

WORD_RE = re.compile(r"[a-z0-9]+")
SHINGLE_WORDS = 3  # words per shingle: long enough that shared vocabulary alone does not match


def text_shingles(text: str) -> set[int]:
    """Hashed word 3-grams of `text` (lower-cased; a text shorter than 3 words is one shingle)."""
    words = WORD_RE.findall(text.lower())
    out: set[int] = set()
    for i in range(max(1, len(words) - SHINGLE_WORDS + 1)):
        gram = " ".join(words[i : i + SHINGLE_WORDS])
        if gram:
            out.add(int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest()))
    return out


@cache
def filler_shingles() -> frozenset[int]:
    """The shingles of every constant of bfcl-eval's long-context filler module."""
    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context

    out: set[int] = set()
    for name, value in vars(long_context).items():
        if name.isupper():
            out |= text_shingles(str(value))
    return frozenset(out)


def task_shingles(task: Task) -> frozenset[int]:
    """The user turns' and the ground truth's shingles, without the long-context filler's."""
    out: set[int] = set()
    for msgs in task.question:
        out |= text_shingles(" ".join(m.content for m in msgs))
    for gt in task.ground_truth:
        out |= text_shingles(" ".join(gt))
    return frozenset(out - filler_shingles())
