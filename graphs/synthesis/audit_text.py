"""Text measures of the synthesis audit (pure): clauses, openers, n-grams, cue phrases, and the
naive Bayes discriminator with its cross-validated AUC. `graphs.synthesis.audit` assembles them.

Clauses of a user turn (`count_clauses`): quoted spans ('…' or "…", file contents, tweets) are
first replaced by one placeholder word, so a quoted sentence is not counted; the rest is split
on sentence ends (`.`, `!`, `?` followed by white space or the end: `report.txt` is not split),
on `;`, and on the coordinating joins of `JOINS` (", then", "and then", "after that", …); the
clauses are the pieces with at least one letter or digit. "Clauses per call" of a turn is its
clause count divided by its ground-truth calls (turns without calls or without text are
skipped), and a task's value is the mean over its turns: the same function for seeds and
variants. BFCL's users state goals ("Find the report and move it", 1 clause, 2-3 calls); a
template that spells out each step has one clause per call or more.

Openers (`opener`): the first 3 words of a turn's first sentence ("Hello there." -> "hello
there"); a task carries the openers of its non-empty turns.

Cue phrases (`mine_cue_phrases`): word 3-grams found in the variants of at least
max(`min_count`, `min_share`) of the seed scenarios they come from and in none of the human-written reference turns, made only of words that the
humans do use (so a phrasing, not a new name); plus `KNOWN_CUES`, looked for in every variant.

Copies (`copied`): a variant shares a word 8-gram with a human reference turn, i.e. it carries
reference text (values aside, 8 words in a row are a sentence, not a common phrase).

Discriminator (`discriminator_auc`): multinomial naive Bayes over word 1-2-grams (add-one
smoothing, vocabulary of the training folds) separating variants from human tasks; grouped
k-fold (a seed's variants and a scenario's human twins stay in one fold, so nobody is recognised
by a sibling); AUC of the out-of-fold scores (Mann-Whitney with tied ranks averaged). 0.5: the
classifier cannot tell them apart; 1.0: it always can.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np

JOINS: tuple[str, ...] = (
    ", then",
    "and then",
    "after that",
    "afterwards",
    "after which",
    "once that's done",
    "once that is done",
    "once done",
    "next,",
    "also,",
    "additionally,",
    "finally,",
    "and last,",
    "and lastly,",
)
# Phrases that announce a withheld value (the old miss_param template) or another template cue;
# always looked for, on top of the mined ones.
KNOWN_CUES: tuple[str, ...] = ("i will specify", "i'll specify", "to be specified", "i will tell you")

_QUOTED_RE = re.compile(r"(?<![\w])'[^'\n]*'(?![\w])|\"[^\"\n]*\"")
_SPLIT_RE = re.compile(
    r"[.!?]+(?=\s|$)|;|" + "|".join(re.escape(j) for j in JOINS), re.IGNORECASE
)
_SENTENCE_END_RE = re.compile(r"[.!?;:]+(?=\s|$)")
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_ALNUM_RE = re.compile(r"[A-Za-z0-9]")


def words(text: str) -> list[str]:
    """Lowercased words (`i'd` stays one word)."""
    return _WORD_RE.findall(text.lower())


def count_clauses(text: str) -> int:
    """Clauses of one user message (module docstring)."""
    unquoted = _QUOTED_RE.sub(" Q ", text)
    return sum(1 for piece in _SPLIT_RE.split(unquoted) if _ALNUM_RE.search(piece))


def opener(text: str) -> str:
    """The first 3 words of the first sentence, lowercased ('' for an empty message)."""
    first = _SENTENCE_END_RE.split(text.strip(), maxsplit=1)[0]
    return " ".join(words(first)[:3])


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_ratio(texts: Iterable[str], n: int = 2) -> float:
    """Distinct word n-grams / all n-grams over the texts (NaN without any n-gram)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def top_share(items_per_doc: Sequence[Iterable[str]]) -> tuple[str, int, float]:
    """The item carried by most documents: (item, documents, share of documents)."""
    counts: Counter[str] = Counter()
    for items in items_per_doc:
        counts.update(set(items))
    if not counts or not items_per_doc:
        return "", 0, 0.0
    item, k = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return item, k, k / len(items_per_doc)


def mine_cue_phrases(
    variant_turns: Sequence[Sequence[str]],
    human_turns: Sequence[Sequence[str]],
    variant_groups: Sequence[Hashable] | None = None,
    min_share: float = 0.05,
    min_count: int = 5,
) -> dict[str, int]:
    """Cue phrases (module docstring) -> number of variants carrying each; most frequent first.

    Each document is a list of user messages; n-grams do not cross messages. The frequency
    floor counts distinct groups (seed scenarios), not documents: BFCL repeats a scenario's
    text in its four categories, and a seed's variants may share its wording.
    """

    def grams(doc: Sequence[str]) -> set[str]:
        return {g for msg in doc for g in ngrams(words(msg), 3)}

    human_grams: set[str] = set()
    human_vocab: set[str] = set()
    for doc in human_turns:
        human_grams |= grams(doc)
        human_vocab.update(w for msg in doc for w in words(msg))
    groups = list(variant_groups) if variant_groups is not None else list(range(len(variant_turns)))
    counts: Counter[str] = Counter()
    spread: dict[str, set[Hashable]] = {}
    for doc, group in zip(variant_turns, groups, strict=True):
        for g in grams(doc):
            counts[g] += 1
            spread.setdefault(g, set()).add(group)
    floor = max(min_count, math.ceil(min_share * len(set(groups))))
    out = {
        g: k
        for g, k in counts.items()
        if len(spread[g]) >= floor and g not in human_grams and all(w in human_vocab for w in g.split())
    }
    for cue in KNOWN_CUES:
        k = sum(1 for doc in variant_turns if any(cue in " ".join(words(m)) for m in doc))
        if k:
            out[cue] = max(out.get(cue, 0), k)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def copied(
    variant_turns: Sequence[Sequence[str]], reference_turns: Sequence[Sequence[str]], n: int = 8
) -> list[bool]:
    """Per variant: whether one of its user messages shares a word n-gram with a reference message
    (text taken over from the reference: the discriminator then partly recognises its own
    training documents, so such a variant looks more human than its writer is)."""
    ref = {g for doc in reference_turns for msg in doc for g in ngrams(words(msg), n)}
    return [any(g in ref for msg in doc for g in ngrams(words(msg), n)) for doc in variant_turns]


# ---------------------------------------------------------------- the discriminator


def features(text: str) -> Counter[str]:
    """Word 1-grams and 2-grams of a document."""
    tokens = words(text)
    return Counter(tokens) + Counter(ngrams(tokens, 2))


def naive_bayes_scores(
    train: Sequence[Counter[str]], labels: Sequence[int], test: Sequence[Counter[str]]
) -> np.ndarray:
    """log P(doc | label 1) - log P(doc | label 0) under multinomial NB with add-one smoothing
    (the class prior is a constant shift and does not change an AUC)."""
    totals = (Counter(), Counter())
    for doc, y in zip(train, labels, strict=True):
        totals[y].update(doc)
    vocab = set(totals[0]) | set(totals[1])
    denom = [sum(t.values()) + len(vocab) for t in totals]
    scores = np.zeros(len(test))
    for i, doc in enumerate(test):
        s = 0.0
        for g, k in doc.items():
            if g in vocab:
                s += k * (math.log((totals[1][g] + 1) / denom[1]) - math.log((totals[0][g] + 1) / denom[0]))
        scores[i] = s
    return scores


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: P(score of a random 1 > score of a random 0), ties count half."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks (1-based) over runs of equal scores
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def grouped_folds(groups: Sequence[Hashable], k: int, seed: int = 0) -> list[int]:
    """A fold in 0..k-1 per document; documents of one group share a fold (groups shuffled)."""
    distinct = sorted(set(groups), key=str)
    random.Random(seed).shuffle(distinct)
    fold_of = {g: i % k for i, g in enumerate(distinct)}
    return [fold_of[g] for g in groups]


def discriminator_auc(
    variant_docs: Sequence[str],
    human_docs: Sequence[str],
    variant_groups: Sequence[Hashable] | None = None,
    human_groups: Sequence[Hashable] | None = None,
    k: int = 5,
    seed: int = 0,
) -> float:
    """Cross-validated AUC of naive Bayes telling variants (1) from human tasks (0); NaN when
    either side has fewer than 2 documents."""
    if len(variant_docs) < 2 or len(human_docs) < 2:
        return math.nan
    docs = [features(t) for t in (*variant_docs, *human_docs)]
    labels = [1] * len(variant_docs) + [0] * len(human_docs)
    vg = list(variant_groups) if variant_groups is not None else [("v", i) for i in range(len(variant_docs))]
    hg = list(human_groups) if human_groups is not None else [("h", i) for i in range(len(human_docs))]
    folds = grouped_folds([*vg, *hg], min(k, len(set(vg) | set(hg))), seed)
    scores = np.full(len(docs), np.nan)
    for f in sorted(set(folds)):
        train = [i for i, g in enumerate(folds) if g != f]
        test = [i for i, g in enumerate(folds) if g == f]
        if len({labels[i] for i in train}) < 2:
            continue  # a fold whose training part holds one class cannot be scored
        scores[test] = naive_bayes_scores(
            [docs[i] for i in train], [labels[i] for i in train], [docs[i] for i in test]
        )
    kept = ~np.isnan(scores)
    return auc(scores[kept], np.asarray(labels)[kept])
