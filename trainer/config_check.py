"""The checks of a run config that say, in one line, what to fix: before any model loads.

- `describe(error, root)`: a pydantic ValidationError of a config as one line: the field's path
  (`rollout.group_size`), the value given and the allowed range read from the field's own
  constraints ("an integer from 2 to 1024"); an unknown field or section names the close name
  (`did you mean rollout.group_size?`); a field put in the wrong section names its section.
  More than one mistake: the first, and how many more.
- `defaults_note(raw, where)`: the line that says which defaults a config that omits a section
  runs with (a config without `[rollout]` runs the paper's G = 16 × B = 32, even on a CPU).
- `check_paths(cfg)`: `policy.model` and `policy.init_from` point at a model: "tiny", a packaged
  model's short name (`rods.models.PACKAGED`), a hub id (org/name, not a local path), or a model
  directory; `init_from` may also be a run directory, resolved as `rods eval` resolves one
  (`trainer.model_paths.resolve_checkpoint`: best/, sft/best, the latest checkpoint). Anything
  else is a ConfigError naming what the path is instead (missing, a file, empty, only a config, a
  run directory and its checkpoint).

Pure but for reading the file system in `check_paths`; no torch.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from trainer.config import ConfigError, TrainConfig
from trainer.model_paths import CheckpointNotFound, model_problem, resolve_checkpoint

# the defaults a missing section runs with, shown in its note (the knobs that size a run)
NOTE_FIELDS: dict[str, tuple[str, ...]] = {
    "policy": ("model", "device"),
    "tasks": ("subset",),
    "rollout": ("engine", "group_size", "tasks_per_step", "max_new_tokens", "max_total_tokens"),
    "optim": ("lr", "kl_coef", "micro_batch"),
    "loop": ("mode", "steps", "checkpoint_every"),
}


# names other trainers use for a field (TRL, verl, the paper's symbols): the hint names ours
SYNONYMS: dict[str, str] = {
    "learning_rate": "lr", "kl": "kl_coef", "beta": "kl_coef", "kl_beta": "kl_coef",
    "num_generations": "group_size", "g": "group_size", "n": "group_size", "batch_size": "tasks_per_step",
    "b": "tasks_per_step", "epsilon": "clip_low", "epsilon_high": "clip_high", "max_grad_norm": "grad_clip",
    "num_iterations": "ppo_epochs", "epochs": "ppo_epochs", "max_completion_length": "max_new_tokens",
    "max_tokens": "max_new_tokens", "max_steps": "steps", "save_steps": "checkpoint_every",
    "save_total_limit": "keep_checkpoints", "per_device_train_batch_size": "micro_batch",
}  # fmt: skip


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`X`, `X | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, str | None]:
    """The model holding the field at `loc` and the field's name (None past a list index)."""
    model: type[BaseModel] | None = root
    name: str | None = None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            break
        name = part
        inner = _model_of(model.model_fields[part].annotation)
        if inner is None:
            return model, name
        model = inner
    return model, name


def _kind(annotation: Any) -> str:
    args = {a for a in typing.get_args(annotation) if a is not type(None)} or {annotation}
    if int in args:
        return "an integer"
    if float in args:
        return "a number"
    if bool in args:
        return "true or false"
    if str in args:
        return "a string"
    return "a value"


def allowed(model: type[BaseModel], name: str) -> str:
    """What `model.name` accepts, from its annotation and constraints: "an integer from 2 to 1024"."""
    field = model.model_fields[name]
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal or any(
        typing.get_origin(a) is typing.Literal for a in typing.get_args(ann)
    ):
        lits = [v for a in (ann, *typing.get_args(ann)) if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        return "one of " + ", ".join(repr(v) for v in lits)
    low = high = ""
    for m in field.metadata:
        if isinstance(m, Ge):
            low = f"≥ {m.ge}"
        elif isinstance(m, Gt):
            low = f"> {m.gt}"
        elif isinstance(m, Le):
            high = f"≤ {m.le}"
        elif isinstance(m, Lt):
            high = f"< {m.lt}"
    kind = _kind(ann)
    if low.startswith("≥") and high.startswith("≤"):
        rng = f" from {low[2:]} to {high[2:]}"
    else:
        rng = " " + " and ".join(x for x in (low, high) if x) if low or high else ""
    optional = " (or leave it out)" if isinstance(ann, types.UnionType) and type(None) in typing.get_args(ann) else ""
    return f"{kind}{rng}{optional}"


def _close(name: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def _unknown(root: type[BaseModel], loc: tuple[Any, ...], sections: list[str]) -> str:
    """An unknown key: the close name in its section, or the section a misplaced field belongs to."""
    model, _ = _walk(root, loc[:-1])
    key, parent = str(loc[-1]), ".".join(str(p) for p in loc[:-1])
    if not parent:  # a top-level key: a section name, or a field outside its section
        homes = [s for s in sections if (m := _walk(root, (s,))[0]) is not None and key in m.model_fields]
        if homes:
            return f"{key!r} is not a section: it is a field of [{homes[0]}]; put it under [{homes[0]}]"
        close = _close(key, sections)
        hint = f"; did you mean [{close}]?" if close else ""
        return f"[{key}]: unknown section{hint} (sections: {', '.join(sections)})"
    fields = list(model.model_fields) if model is not None else []
    close = SYNONYMS.get(key.lower()) if SYNONYMS.get(key.lower()) in fields else _close(key, fields)
    hint = f"; did you mean {parent}.{close}?" if close else ""
    homes = [s for s in sections if (m := _walk(root, (s,))[0]) is not None and key in m.model_fields]
    if homes and not close:
        hint = f"; it is a field of [{homes[0]}]: move it there"
    return f"{parent}.{key}: unknown field{hint} (fields of [{parent}]: {', '.join(fields)})"


def _one(err: Any, root: type[BaseModel], sections: list[str]) -> str:
    loc = tuple(err["loc"])
    path = ".".join(str(p) for p in loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return _unknown(root, loc, sections)
    model, name = _walk(root, loc)
    given = err.get("input")
    if kind == "model_type" or (kind == "dict_type" and len(loc) == 1):
        return f"[{path}] must be a section (a table: [{path}] and key = value lines), not {given!r}"
    if kind == "value_error" or model is None or name is None:
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        return f"{path}: {msg}" if path else msg
    return f"{path} = {given!r}: must be {allowed(model, name)}"


def describe(error: ValidationError, root: type[BaseModel], sections: list[str] | None = None) -> str:
    """The first mistake of `error` as one line, plus how many more there are."""
    sections = sections if sections is not None else list(root.model_fields)
    errors = error.errors()
    first = _one(errors[0], root, sections)
    return first + _more(len(errors) - 1)


def _more(n: int) -> str:
    return "" if n < 1 else f" (and {n} more mistake{'s' if n > 1 else ''})"


def defaults_note(raw: dict[str, Any], where: str | None, cfg: TrainConfig | None = None) -> str | None:
    """One line naming the sections `raw` omits and the values they run with (`cfg`'s: the
    defaults, with any command-line override); None if none (`where` None: no config file)."""
    missing = [s for s in NOTE_FIELDS if s not in raw]
    if not missing:
        return None
    defaults = cfg or TrainConfig()
    parts = []
    for section in missing:
        values = getattr(defaults, section)
        shown = " ".join(f"{k}={getattr(values, k)!r}" for k in NOTE_FIELDS[section])
        parts.append(f"[{section}] {shown}")
    sized = " (paper-sized, for a GPU; configs/demo.toml is CPU-sized)" if "rollout" in missing else ""
    head = "no --config given" if where is None else f"{where} has no {', '.join('[' + s + ']' for s in missing)}"
    return f"{head}: using the defaults {'; '.join(parts)}{sized}"


def _hub_id(value: str) -> bool:
    """org/name, with neither part a local directory: what `from_pretrained` looks up on a hub."""
    parts = value.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not value.startswith((".", "~"))
        and not Path(parts[0]).exists()
    )


def _source_problem(label: str, value: str) -> str | None:
    from rods.models import PACKAGED

    if value == "tiny" or value in PACKAGED:
        return None
    path = Path(value).expanduser()
    if not path.exists() and _hub_id(value):
        return None
    if path.exists() or "/" in value or value.startswith((".", "~")):
        problem = model_problem(path)
        return None if problem is None else f"{label} = {value!r}: {problem}"
    names = ["tiny", *PACKAGED]
    close = _close(value, names)
    hint = f"did you mean {close!r}? " if close else ""
    return (
        f"{label} = {value!r}: not 'tiny', not a packaged model ({', '.join(PACKAGED)}), no such "
        f"directory, and not a hub id (org/name); {hint}"
    ).rstrip("; ")


def check_paths(cfg: TrainConfig, where: str = "config", init_flag: str | None = None) -> TrainConfig:
    """`cfg` with `policy.init_from` resolved to the model directory it means; a ConfigError
    (one line, starting `where: `) when `policy.model` or `policy.init_from` is not a model.
    `init_flag` (e.g. "--init-from"): init_from came from that option, name it instead."""
    if cfg.policy.init_from is None:  # init_from replaces the model: only then is model loaded
        problem = _source_problem("policy.model", cfg.policy.model)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        return cfg
    label = init_flag or f"{where}: policy.init_from ="
    value = cfg.policy.init_from
    from rods.models import PACKAGED

    if value in PACKAGED or (not Path(value).expanduser().exists() and _hub_id(value)):
        return cfg
    try:
        resolved = resolve_checkpoint(Path(value).expanduser())
    except CheckpointNotFound:
        problem = model_problem(Path(value).expanduser())
        raise ConfigError(f"{label} {value!r}: {problem}") from None
    problem = model_problem(resolved)
    if problem:
        raise ConfigError(f"{label} {value!r}: {problem}")
    return cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"init_from": str(resolved)})})
