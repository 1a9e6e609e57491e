"""What a model path in a config or on the command line points at, checked before any model loads.

Standard library only (no torch), so `rods train` can say in well under a second that
`policy.model` names an empty directory instead of failing inside transformers after the
imports. Two questions, two functions:

- `model_problem(path)`: None for a saved model directory (weights next to a `config.json`),
  else one sentence saying what the path is instead: missing, a file, an empty directory, a
  `config.json` without weights, a run directory (with the checkpoint to point at), or a
  directory holding something else.
- `resolve_checkpoint(path)`: the model directory to load for a model directory or a run
  directory — the directory itself, else its `best/` (a `rods sft --run-dir X/sft` output), else
  `sft/best` (an SFT run directory, `rods sft --run-dir X`, and the demo's), else the latest
  complete checkpoint (`checkpoints/latest`, else the newest `checkpoints/step_*` with a trainer
  state). `rods eval --checkpoint` and `--init-from` / `policy.init_from` resolve alike.
"""

from __future__ import annotations

from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


class CheckpointNotFound(ValueError):
    """A path that holds no usable model; the message says what was looked for."""


def is_model_dir(path: Path) -> bool:
    """A saved model: weights next to its config (a run directory's config.json is not one)."""
    return path.is_dir() and any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint `checkpoints/latest` names, when it is complete (has its trainer state)."""
    marker = run_dir / "checkpoints" / "latest"
    if not marker.exists():
        return None
    path = run_dir / "checkpoints" / marker.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


def _run_checkpoint(path: Path) -> Path | None:
    """The model a run directory holds (see the module docstring), or None."""
    for candidate in (path / "best", path / "sft" / "best"):
        if is_model_dir(candidate):
            return candidate
    latest = latest_checkpoint(path)
    if latest is not None and is_model_dir(latest):
        return latest
    steps = sorted(
        p for p in (path / "checkpoints").glob("step_*") if (p / "trainer_state.pt").exists()
    )
    if steps and is_model_dir(steps[-1]):
        return steps[-1]
    return None


def resolve_checkpoint(path: Path) -> Path:
    """The model directory to load for `path` (a model or a run directory); raises
    CheckpointNotFound saying what was looked for."""
    if not path.exists():
        raise CheckpointNotFound(f"{path}: no such directory")
    if is_model_dir(path):
        return path
    found = _run_checkpoint(path) if path.is_dir() else None
    if found is not None:
        return found
    raise CheckpointNotFound(
        f"{path}: no checkpoint here (looked for model weights, best/, sft/best, checkpoints/latest "
        f"and checkpoints/step_*; {model_problem(path)}); pass a model directory or a run "
        "directory that has saved one"
    )


def is_run_dir(path: Path) -> bool:
    """A directory RODS trains or warm-starts in (`rods train`, `rods sft`, `rods demo`)."""
    return any((path / name).exists() for name in ("checkpoints", "sft", "metrics.jsonl", "best"))


def model_problem(path: Path) -> str | None:
    """None when `path` is a model directory; else what it is instead, as one sentence."""
    if is_model_dir(path):
        if not (path / "config.json").is_file():
            return f"{path} has weights but no config.json (an incomplete save)"
        return None
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        hint = " (a GGUF file: name the packaged model instead, e.g. gemma-3-270m)" if path.suffix == ".gguf" else ""
        return f"{path} is a file, not a model directory{hint}"
    if is_run_dir(path):
        found = _run_checkpoint(path)
        if found is None:
            return f"{path} is a run directory with no saved checkpoint yet"
        return f"{path} is a run directory, not a model; its model is {found}: point at that"
    entries = [p.name for p in path.iterdir() if not p.name.startswith(".")]  # .keep, .DS_Store
    if not entries:
        return f"{path} is an empty directory"
    if "config.json" in entries:
        return (
            f"{path} has a config.json but no weights (*.safetensors or pytorch_model*.bin): "
            "an unfinished save or a config-only download"
        )
    shown = ", ".join(sorted(entries)[:3]) + (", …" if len(entries) > 3 else "")
    return f"{path} holds no model (no config.json, no weights; it has {shown})"
