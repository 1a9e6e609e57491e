"""Argument samplers of GorillaFileSystem and MathAPI (one function per simulator function).

File-system arguments are local to the current directory, as the simulator requires: names are
read from the directory the earlier calls left the world in; new names are drawn from large pools
(`pools.py`) and checked to be free. Entries the variant itself just created are preferred, so a turn reads
like one task ("make a file, write into it, show it"). Math arguments take numbers earlier
results offer (a distance, a price, a count), or plausible literals.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system import (
    Directory,
    File,
)

from graphs.synthesis.procedural import pools
from graphs.synthesis.procedural.scope import IMPERIAL_PAIRS, SI_UNITS, NoArgs, Scope
from rods import semantics

_FS = "GorillaFileSystem"
def _cwd(s: Scope) -> Directory:
    return s.inst(_FS)._current_dir


def _files(s: Scope) -> list[str]:
    return [
        n for n, it in _cwd(s).contents.items() if isinstance(it, File) and not n.startswith(".")
    ]


def _dirs(s: Scope) -> list[str]:
    return [
        n
        for n, it in _cwd(s).contents.items()
        if isinstance(it, Directory) and not n.startswith(".")
    ]


def _recent(s: Scope, names: list[str]) -> list[str]:
    """`names` with those the variant's own calls mentioned first (most recent first)."""
    mentioned: list[str] = []
    for call in reversed(s.flow.calls):
        for v in call.arguments.values():
            if isinstance(v, str) and v in names and v not in mentioned:
                mentioned.append(v)
    return mentioned + [n for n in names if n not in mentioned]


def _pick_recent(s: Scope, names: list[str], what: str) -> str:
    if not names:
        raise NoArgs(f"no {what} in the current directory")
    ordered = _recent(s, names)
    return ordered[0] if s.chance(0.5) else s.pick(ordered, what)


def _new_name(s: Scope, draw: Callable[[random.Random], str]) -> str:
    """A name free in the current directory, drawn from a large pool (`pools.py`)."""
    taken = set(_cwd(s).contents)
    for _ in range(20):
        name = draw(s.rng)
        if name not in taken:
            return name
    raise NoArgs("no free name")


def _file_text(s: Scope, name: str) -> str:
    item = _cwd(s).contents.get(name)
    return item.content if isinstance(item, File) else ""


def _text(s: Scope) -> str:
    flowed = s.flowed("text", lambda t: isinstance(t, str) and len(t) <= 200)
    return flowed if flowed is not None else pools.sentence(s.rng)


# ---------------------------------------------------------------- GorillaFileSystem


def cd(s: Scope) -> dict[str, Any]:
    dirs = _dirs(s)
    if dirs:

        def files_in(d: str) -> int:
            return sum(isinstance(i, File) for i in _cwd(s).contents[d].contents.values())

        rich = sorted(dirs, key=lambda d: -files_in(d))
        return {"folder": rich[0] if s.chance(0.85) else s.pick(dirs)}
    if _cwd(s).parent is not None:
        return {"folder": ".."}
    raise NoArgs("no folder to enter")


def ls(s: Scope) -> dict[str, Any]:
    return {"a": True} if s.chance(0.25) else {}


def pwd(s: Scope) -> dict[str, Any]:
    return {}


def du(s: Scope) -> dict[str, Any]:
    return {"human_readable": s.chance(0.6)}


def mkdir(s: Scope) -> dict[str, Any]:
    return {"dir_name": _new_name(s, pools.dir_name)}


def touch(s: Scope) -> dict[str, Any]:
    return {"file_name": _new_name(s, pools.file_name)}


def echo(s: Scope) -> dict[str, Any]:
    files = _files(s)
    if not files or s.chance(0.1):
        return {"content": _text(s)}
    return {"content": _text(s), "file_name": _pick_recent(s, files, "file")}


def cat(s: Scope) -> dict[str, Any]:
    return {"file_name": _pick_recent(s, _files(s), "file")}


def tail(s: Scope) -> dict[str, Any]:
    args: dict[str, Any] = {"file_name": _pick_recent(s, _files(s), "file")}
    if s.chance(0.6):
        args["lines"] = s.rng.randint(1, 5)
    return args


def sort(s: Scope) -> dict[str, Any]:
    return cat(s)


def wc(s: Scope) -> dict[str, Any]:
    return {"file_name": _pick_recent(s, _files(s), "file"), "mode": s.pick(("l", "w", "c"))}


def grep(s: Scope) -> dict[str, Any]:
    files = [f for f in _files(s) if _file_text(s, f).split()]
    name = _pick_recent(s, files, "file with text")
    words = [w.strip(".,;:!?()'\"") for w in _file_text(s, name).split()]
    words = [w for w in words if len(w) >= 4 and w.isascii()][:200] or [w for w in words if w][:200]
    return {"file_name": name, "pattern": s.pick(words, "word")}


def diff(s: Scope) -> dict[str, Any]:
    files = _recent(s, _files(s))
    if len(files) < 2:
        raise NoArgs("fewer than two files here")
    first = files[0] if s.chance(0.5) else s.pick(files)
    return {"file_name1": first, "file_name2": s.pick([f for f in files if f != first])}


def find(s: Scope) -> dict[str, Any]:
    names: list[str] = []

    def walk(d: Directory, depth: int) -> None:
        for n, it in d.contents.items():
            names.append(n)
            if isinstance(it, Directory) and depth < 3:
                walk(it, depth + 1)

    walk(_cwd(s), 0)
    if not names:
        raise NoArgs("nothing to find below here")
    name = s.pick(names[:200])
    stem = name.rsplit(".", 1)[0]
    words = [w for w in stem.replace("-", "_").split("_") if len(w) >= 3]
    needle = s.pick(words) if words and s.chance(0.6) else stem or name
    args: dict[str, Any] = {"name": needle}
    if s.chance(0.5):
        args["path"] = "."
    return args


def _into_dir(s: Scope, source: str) -> list[str]:
    return [
        d
        for d in _dirs(s)
        if d != source and source not in _cwd(s).contents[d].contents
    ]


def cp(s: Scope) -> dict[str, Any]:
    source = _pick_recent(s, _files(s), "file")
    targets = _into_dir(s, source)
    if targets and s.chance(0.7):
        return {"source": source, "destination": s.pick(targets)}
    stem, dot, ext = source.rpartition(".")
    new = f"{stem}_copy.{ext}" if dot else f"{source}_copy"
    if new in _cwd(s).contents:
        raise NoArgs("copy name taken")
    return {"source": source, "destination": new}


def mv(s: Scope) -> dict[str, Any]:
    entries = _files(s) + ([] if s.chance(0.8) else _dirs(s))
    source = _pick_recent(s, entries, "entry")
    targets = _into_dir(s, source)
    if targets and s.chance(0.6):
        return {"source": source, "destination": s.pick(targets)}
    stem, dot, ext = source.rpartition(".")
    new = f"{stem}_{s.pick(('old', 'final', 'v2', 'v3', 'backup', 'copy', 'new', 'draft', 'latest', 'prev', 'archived', 'edit'))}.{ext}" if dot else f"{source}_old"
    if new in _cwd(s).contents:
        raise NoArgs("new name taken")
    return {"source": source, "destination": new}


def rm(s: Scope) -> dict[str, Any]:
    return {"file_name": _pick_recent(s, _files(s), "file")}


def rmdir(s: Scope) -> dict[str, Any]:
    """Only a folder this variant made: a folder empty in the seed's state is filled with files
    once the variant is augmented to long context (bfcl-eval populates empty leaf folders)."""
    made = [c.arguments.get("dir_name") for c in s.flow.calls if c.name == "mkdir"]
    empty = [
        d
        for d in _dirs(s)
        if d in made and not _cwd(s).contents[d].contents
    ]
    return {"dir_name": _pick_recent(s, empty, "folder made in this conversation")}


# ---------------------------------------------------------------- MathAPI


def _number(s: Scope, lo: float = 1.0, hi: float = 500.0, positive: bool = False) -> float:
    ok = (lambda v: v > 0) if positive else (lambda v: True)
    flowed = s.flowed("number", lambda v: ok(v) and abs(v) < 1e9)
    if flowed is not None:
        return flowed
    return (
        float(s.rng.randint(int(lo), int(hi))) if s.chance(0.6) else round(s.rng.uniform(lo, hi), 2)
    )


def _numbers(s: Scope) -> list[float]:
    flowed = [v for v in s.flow.values("number") if abs(v) < 1e9][:5]
    if len(flowed) >= 2:
        return flowed
    return [float(s.rng.randint(1, 200)) for _ in range(s.rng.randint(3, 5))]


def _pair(s: Scope) -> dict[str, Any]:
    """First operand from the latest result when there is one; the second one the user says."""
    b = float(s.rng.randint(2, 60)) if s.chance(0.6) else round(s.rng.uniform(1, 100), 2)
    return {"a": _number(s), "b": b}


def add(s: Scope) -> dict[str, Any]:
    return _pair(s)


def subtract(s: Scope) -> dict[str, Any]:
    return _pair(s)


def multiply(s: Scope) -> dict[str, Any]:
    return _pair(s)


def divide(s: Scope) -> dict[str, Any]:
    args = _pair(s)
    if args["b"] == 0:
        args["b"] = 2.0
    return args


def power(s: Scope) -> dict[str, Any]:
    return {"base": float(s.rng.randint(2, 12)), "exponent": float(s.rng.randint(2, 4))}


def percentage(s: Scope) -> dict[str, Any]:
    whole = _number(s, 50, 1000, positive=True)
    return {"part": round(whole * s.rng.uniform(0.05, 0.9), 2), "whole": whole}


def absolute_value(s: Scope) -> dict[str, Any]:
    v = _number(s)
    flowed = s.flowed("number", lambda x: abs(x) < 1e9) == v
    # a flowed value is taken as it came (negating it would make the user state a number
    # only the ground truth computes); a number the user names may be negative
    return {"number": -v if s.chance(0.5) and not flowed else v}


def round_number(s: Scope) -> dict[str, Any]:
    v = _number(s)
    if float(v).is_integer():
        v = round(v + s.rng.uniform(0.01, 0.99), 3)
    return {"number": v, "decimal_places": s.rng.randint(0, 2)}


def square_root(s: Scope) -> dict[str, Any]:
    return {"number": abs(_number(s, positive=True)), "precision": s.rng.randint(2, 5)}


def logarithm(s: Scope) -> dict[str, Any]:
    return {
        "value": abs(_number(s, 2, 1000, positive=True)),
        "base": float(s.pick((2, 10, 10, 3))),
        "precision": s.rng.randint(2, 6),
    }


def mean(s: Scope) -> dict[str, Any]:
    return {"numbers": _numbers(s)}


def standard_deviation(s: Scope) -> dict[str, Any]:
    return {"numbers": _numbers(s)}


def min_value(s: Scope) -> dict[str, Any]:
    return {"numbers": _numbers(s)}


def max_value(s: Scope) -> dict[str, Any]:
    return {"numbers": _numbers(s)}


def sum_values(s: Scope) -> dict[str, Any]:
    return {"numbers": _numbers(s)}


def _converted(s: Scope, pairs: list[tuple[str, str]], lo: float, hi: float, positive: bool) -> dict[str, Any]:
    """A unit conversion of the latest flowed number when its meaning is a quantity one of the
    `pairs` converts from (a distance in km → km to miles; a plain number → any pair), else of
    a number the user names (a count or a fare is not converted to feet)."""
    unit_in, unit_out = s.pick(pairs)
    value = s.flowed("number", lambda v: (v > 0 or not positive) and abs(v) < 1e9)
    offer = s.flow.source(value, ("number",)) if value is not None else None
    if offer is not None and offer.meaning != "number":
        fitting = [p for p in pairs if semantics.unit_kind(p[0]) == offer.meaning]
        if fitting:
            unit_in, unit_out = s.pick(fitting)
        else:
            value = None
    if value is None:
        value = (float(s.rng.randint(int(lo), int(hi))) if s.chance(0.6)
                 else round(s.rng.uniform(lo, hi), 2))  # fmt: skip
    return {"value": value, "unit_in": unit_in, "unit_out": unit_out}


def si_unit_conversion(s: Scope) -> dict[str, Any]:
    pairs = [(a, b) for a in sorted(SI_UNITS) for b in sorted(SI_UNITS) if a != b]
    return _converted(s, pairs, 1, 5000, positive=True)


def imperial_si_conversion(s: Scope) -> dict[str, Any]:
    return _converted(s, [(a, b) for a, b, _ in IMPERIAL_PAIRS], 1, 300, positive=False)


FS_SAMPLERS = {
    f.__name__: f
    for f in (
        cd,
        ls,
        pwd,
        du,
        mkdir,
        touch,
        echo,
        cat,
        tail,
        sort,
        wc,
        grep,
        diff,
        find,
        cp,
        mv,
        rm,
        rmdir,
    )
}
MATH_SAMPLERS = {
    f.__name__: f
    for f in (
        add,
        subtract,
        multiply,
        divide,
        power,
        percentage,
        absolute_value,
        round_number,
        square_root,
        logarithm,
        mean,
        standard_deviation,
        min_value,
        max_value,
        sum_values,
        si_unit_conversion,
        imperial_si_conversion,
    )
}
