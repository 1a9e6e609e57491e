"""Tasks: the BFCL multi-turn entry format, its loading from `bfcl-eval`, and the fixed split.

A task on disk and on the wire is a BFCL multi-turn entry (`id`, `question`, `initial_config`,
`path`, `involved_classes`, `missed_function`, `excluded_function`) with its `ground_truth`
inlined, plus an optional `rods` block (lineage and signature). Any BFCL tooling can read what RODS
writes; reading then writing a BFCL entry gives back the same JSON object.

Contracts:
- `missed_function` maps a turn index (as a string, as in BFCL) to the *names* of the functions
  held out until that turn; that turn's question is empty, as bfcl-eval expects.
- `excluded_function` is carried but not interpreted: bfcl-eval itself ignores it.
- The category of a task is read from its id (`multi_turn_<category>_<suffix>`), which is also
  how bfcl-eval's checker decides whether to load long-context state. Synthetic ids keep that shape.
- The split is by scenario index (see `make_split`); the committed id files under `rods/data/`
  are the source of truth, and a test checks they equal `make_split()`.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CATEGORIES: tuple[str, ...] = ("base", "miss_func", "miss_param", "long_context")
CLASSES: tuple[str, ...] = (
    "GorillaFileSystem",
    "MathAPI",
    "MessageAPI",
    "TwitterAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "VehicleControlAPI",
)
N_SCENARIOS = 200  # every category holds scenario indices 0..199
SPLIT_SEED = 20260325  # fixed; changing it changes the committed split files
SPLIT_TRAIN_INDICES = 100

Category = Literal["base", "miss_func", "miss_param", "long_context"]
Split = Literal["train", "eval"]


class Message(BaseModel):
    """One chat message of a user turn (BFCL stores only `user` messages in `question`)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str


class ToolCall(BaseModel):
    """A parsed function call: a bare method name and keyword arguments."""

    model_config = ConfigDict(frozen=True)
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_python(self) -> str:
        """The call as BFCL writes ground truth: `name(a='x', b=2)`; values are Python literals."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        return f"{self.name}({args})"


class Signature(BaseModel):
    """Structural signature of a task's ground truth (computed by `rods.signature`)."""

    model_config = ConfigDict(frozen=True)
    version: int = 2  # 2: state dependencies (`state_deps`) count in depth and topology
    classes: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # distinct function names, sorted
    calls_per_turn: tuple[int, ...] = ()
    n_calls: int = 0
    edges: tuple[tuple[int, int], ...] = ()  # data-flow edges between call indices (flattened)
    state_deps: tuple[tuple[int, int], ...] = ()  # state-dependency edges (cd, login, created ids)
    state_edges: int = 0  # arguments whose value came from the initial state
    depth: int = 0  # longest path in the dependency DAG (both edge kinds), in calls (0 = no calls)
    topology: str = "independent"  # chain | fan-out | fan-in | dag | independent
    cross_turn_edges: int = 0
    holdout_turns: tuple[int, ...] = ()  # miss_func: turns that reveal a held-out function
    clarification_turns: tuple[int, ...] = ()  # miss_param: turns that supply a missing value
    empty_turns: tuple[int, ...] = ()  # turns whose ground truth is empty


class RodsMeta(BaseModel):
    """The `rods` block: where a task came from. Seeds have origin `seed` and no parent."""

    model_config = ConfigDict(extra="allow")
    origin: Literal["seed", "synthetic"] = "seed"
    parent_id: str | None = None
    root_id: str | None = None
    generation: int = 0
    synthesizer: str | None = None
    signature: Signature | None = None


class Turn(BaseModel):
    """A user turn: its messages (empty on a miss_func reveal turn), ground truth, reveals."""

    model_config = ConfigDict(frozen=True)
    index: int
    messages: tuple[Message, ...]
    ground_truth: tuple[str, ...]
    revealed_functions: tuple[str, ...] = ()


class Task(BaseModel):
    """A BFCL multi-turn entry with inline ground truth and an optional `rods` block."""

    model_config = ConfigDict(extra="forbid")
    id: str
    question: list[list[Message]]
    initial_config: dict[str, Any]
    path: list[str] | None = None
    involved_classes: list[str]
    missed_function: dict[str, list[str]] | None = None
    excluded_function: list[str] | None = None
    ground_truth: list[list[str]]
    rods: RodsMeta | None = None

    def model_post_init(self, __context: Any) -> None:
        if len(self.question) != len(self.ground_truth):
            raise ValueError(
                f"task {self.id}: {len(self.question)} question turns but "
                f"{len(self.ground_truth)} ground-truth turns"
            )
        unknown = [c for c in self.involved_classes if c not in CLASSES]
        if unknown:
            raise ValueError(f"task {self.id}: unknown involved classes {unknown}; known: {CLASSES}")

    @property
    def category(self) -> str:
        return category_of(self.id)

    @property
    def long_context(self) -> bool:
        return "long_context" in self.category

    @property
    def n_turns(self) -> int:
        return len(self.question)

    @property
    def turns(self) -> list[Turn]:
        missed = self.missed_function or {}
        return [
            Turn(
                index=u,
                messages=tuple(msgs),
                ground_truth=tuple(self.ground_truth[u]),
                revealed_functions=tuple(missed.get(str(u), ())),
            )
            for u, msgs in enumerate(self.question)
        ]

    @property
    def holdout_functions(self) -> set[str]:
        return {f for names in (self.missed_function or {}).values() for f in names}

    def to_bfcl(self) -> dict[str, Any]:
        """The JSON object written to disk: BFCL field order, absent optional fields omitted."""
        out = self.model_dump(mode="json", exclude_none=True)
        if self.rods is not None:
            out["rods"] = self.rods.model_dump(mode="json", exclude_none=True)
        return out


class TaskFileError(ValueError):
    """A task file that cannot be read; the message names the file, the line and the field."""


def category_of(task_id: str) -> str:
    """`multi_turn_long_context_12` -> `long_context` (the same rule bfcl-eval's checker uses)."""
    prefix = task_id.rsplit("_", 1)[0]
    if not prefix.startswith("multi_turn_"):
        raise ValueError(f"task id {task_id!r} is not of the form multi_turn_<category>_<n>")
    return prefix.removeprefix("multi_turn_")


def scenario_index(task_id: str) -> int:
    """The BFCL scenario index of a seed id (`multi_turn_base_40` -> 40)."""
    return int(task_id.rsplit("_", 1)[1])


def synthetic_id(category: str, task_body: dict[str, Any]) -> str:
    """A content-hash id that keeps BFCL's `multi_turn_<category>_<suffix>` shape."""
    blob = json.dumps(task_body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"multi_turn_{category}_x{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


# ---------------------------------------------------------------- BFCL package data


def _bfcl_data_dir() -> Path:
    try:
        root = resources.files("bfcl_eval") / "data"
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "bfcl-eval is not installed; run `pip install --no-deps bfcl-eval==2026.3.23 mpmath` "
            "(or `make setup`)"
        ) from e
    return Path(str(root))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@cache
def _bfcl_tasks() -> tuple[Task, ...]:
    data = _bfcl_data_dir()
    tasks: list[Task] = []
    for category in CATEGORIES:
        name = f"BFCL_v4_multi_turn_{category}.json"
        answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(data / "possible_answer" / name)}
        for entry in _read_jsonl(data / name):
            tasks.append(Task.model_validate({**entry, "ground_truth": answers[entry["id"]]}))
    return tuple(tasks)


def load_bfcl_tasks(categories: Iterable[str] = CATEGORIES) -> list[Task]:
    """All 800 BFCL multi-turn tasks (or those of some categories), in BFCL order.

    Returns deep copies: callers may mutate them without touching the cache.
    """
    wanted = set(categories)
    unknown = wanted - set(CATEGORIES)
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {CATEGORIES}")
    return [t.model_copy(deep=True) for t in _bfcl_tasks() if t.category in wanted]


@cache
def _tasks_by_id() -> dict[str, Task]:
    return {t.id: t for t in _bfcl_tasks()}


def get_bfcl_task(task_id: str) -> Task:
    """One BFCL task by id (a deep copy)."""
    try:
        return _tasks_by_id()[task_id].model_copy(deep=True)
    except KeyError:
        raise KeyError(f"no BFCL multi-turn task with id {task_id!r}") from None


@cache
def function_docs() -> dict[str, tuple[dict[str, Any], ...]]:
    """Function docs (JSON schema-ish dicts, as bfcl-eval ships them) per class name."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    doc_dir = _bfcl_data_dir() / "multi_turn_func_doc"
    return {
        cls: tuple(_read_jsonl(doc_dir / MULTI_TURN_FUNC_DOC_FILE_MAPPING[cls])) for cls in CLASSES
    }


def task_function_docs(task: Task) -> list[dict[str, Any]]:
    """All docs of the task's involved classes, in bfcl-eval's order (holdouts included)."""
    docs = function_docs()
    return [doc for cls in task.involved_classes for doc in docs[cls]]


# ---------------------------------------------------------------- JSONL files


def read_tasks(path: str | Path, on_warning: Callable[[str], None] | None = None) -> list[Task]:
    """Read a BFCL-format JSONL task file. Errors name the file, line and field; a truncated
    last line is a warning (see `iter_tasks`)."""
    return list(iter_tasks(path, on_warning))


def warn_stderr(message: str) -> None:
    """The default warning sink of the readers: one `warning: …` line on stderr."""
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def truncated_line_warning(path: Path, lineno: int, line: str) -> str:
    return (
        f"{path}:{lineno}: the last line is incomplete ({len(line.encode())} bytes, no newline: a "
        f"write was cut off, e.g. a full disk); skipped it and kept the {lineno - 1} lines before it"
    )


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a UTF-8 text file. A missing path, a
    directory, a binary file (a NUL byte) or bytes that are not UTF-8 raise `TaskFileError`
    naming the file and the line: a JSONL reader never sees a `UnicodeDecodeError`."""
    path = Path(path)
    if not path.exists():
        raise TaskFileError(f"{path}: no such file")
    if path.is_dir():
        raise TaskFileError(f"{path} is a directory, not a JSONL file (one JSON object a line)")
    try:
        f = path.open("rb")
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read it ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            if b"\0" in raw:
                raise TaskFileError(f"{path}:{lineno}: a binary file, not JSONL text (one JSON object a line)")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TaskFileError(
                    f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if line.strip():
                yield lineno, line


def iter_tasks(path: str | Path, on_warning: Callable[[str], None] | None = None) -> Iterator[Task]:
    """The tasks of a JSONL file, in order. A malformed line raises `TaskFileError` naming
    file:line, except an unparseable LAST line without a newline: that is a write cut off (a full
    disk, a killed process), so it is reported once through `on_warning` (default: stderr) and
    every complete line before it is kept."""
    path = Path(path)
    if not path.exists():
        raise TaskFileError(f"{path}: no such task file")
    for lineno, line in iter_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if not line.endswith("\n"):  # only the last line can lack its newline
                (on_warning or warn_stderr)(truncated_line_warning(path, lineno, line))
                return
            raise TaskFileError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise TaskFileError(f"{path}:{lineno}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise TaskFileError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield parse_task(obj, where=f"{path}:{lineno}")


def parse_task(obj: dict[str, Any], where: str = "task") -> Task:
    """Validate one BFCL entry dict; a failure names the offending field."""
    try:
        return Task.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(entry)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise TaskFileError(f"{where}: field {field!r}: {first['msg']}{more}") from None


def write_tasks(path: str | Path, tasks: Iterable[Task]) -> int:
    """Write tasks as BFCL-format JSONL, atomically (a crash leaves the old file intact)."""
    from rods.fileio import AtomicWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with AtomicWriter(path) as f:  # an error removes the temp file and keeps the old `path`
        for task in tasks:
            f.write(json.dumps(task.to_bfcl(), ensure_ascii=False) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------- the split


def _split_groups(tasks: list[Task]) -> list[list[int]]:
    """Scenario indices that must land on the same side: those sharing a first user turn."""
    parent = list(range(N_SCENARIOS))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_turn_owner: dict[str, int] = {}
    for task in tasks:
        idx = scenario_index(task.id)
        first = task.question[0][0].content if task.question and task.question[0] else ""
        other = first_turn_owner.setdefault(first, idx)
        parent[find(idx)] = find(other)
    groups: dict[int, list[int]] = {}
    for i in range(N_SCENARIOS):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def make_split(seed: int = SPLIT_SEED) -> dict[Split, list[str]]:
    """Shuffle scenario indices 0..199 with a fixed seed; 100 train, 100 held out.

    All four categories of an index land on the same side, and so do indices whose tasks share a
    first user turn (40 and 43 in BFCL), so no held-out task repeats a training task's opening.
    """
    tasks = list(_bfcl_tasks())
    groups = {i: g for g in _split_groups(tasks) for i in g}
    order = list(range(N_SCENARIOS))
    random.Random(seed).shuffle(order)
    train: set[int] = set()
    placed: set[int] = set()
    for i in order:
        if i in placed:
            continue
        group = groups[i]
        placed.update(group)
        if len(train) + len(group) <= SPLIT_TRAIN_INDICES:
            train.update(group)
    if len(train) != SPLIT_TRAIN_INDICES:  # pragma: no cover - only if the data changes
        raise RuntimeError(f"split produced {len(train)} training indices, expected 100")
    out: dict[Split, list[str]] = {"train": [], "eval": []}
    for task in tasks:
        out["train" if scenario_index(task.id) in train else "eval"].append(task.id)
    return out


def _split_file(split: Split) -> Path:
    return Path(str(resources.files("rods") / "data" / f"split_{split}.txt"))


@cache
def split_ids(split: Split) -> frozenset[str]:
    """The committed ids of a split (`train`: the 400 seeds; `eval`: the 400 held out)."""
    if split not in ("train", "eval"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'eval'")
    text = _split_file(split).read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def load_split(split: Split, categories: Iterable[str] = CATEGORIES) -> list[Task]:
    ids = split_ids(split)
    return [t for t in load_bfcl_tasks(categories) if t.id in ids]


def is_eval_task(task_id: str) -> bool:
    return task_id in split_ids("eval")


def write_split_files(seed: int = SPLIT_SEED) -> None:
    """Regenerate the committed split files (maintainers only; tests pin their content)."""
    for split, ids in make_split(seed).items():
        _split_file(split).write_text("\n".join(ids) + "\n", encoding="utf-8")
