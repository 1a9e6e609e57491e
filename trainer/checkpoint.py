"""Checkpoints: policy + optimizer + step + RNG states, written atomically, resumable.

Layout under the run directory:

    checkpoints/step_000010/   model (save_pretrained), tokenizer, trainer_state.pt
    checkpoints/latest         the name of the newest complete checkpoint

Finding the model in a run directory (`resolve_checkpoint`, `latest_checkpoint`) lives in the
torch-free `trainer.model_paths`, so a config's paths are checked before torch is imported; it is
re-exported here. A checkpoint is written to a temporary directory and renamed into place, and `latest` is
replaced atomically after that, so a crash at any moment leaves the previous checkpoint usable.
Rotation (`keep`) deletes whole `step_*` directories: nothing else may live inside them, which is
why `rods eval` writes its results to the run's `eval/` directory (trainer/evaluate.py).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rods.fileio import atomic_write_text
from trainer.model_paths import (  # noqa: F401  (re-exported: checkpoints and model paths)
    CheckpointNotFound,
    is_model_dir,
    latest_checkpoint,
    resolve_checkpoint,
)


@dataclass
class TrainerState:
    step: int  # updates completed
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    extra: dict[str, Any]  # loop state that must survive a restart (e.g. the task order)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    run_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: torch.optim.Optimizer,
    extra: dict[str, Any], keep: int = 2,
) -> Path:
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_state(), "extra": extra}
    torch.save(state, tmp / "trainer_state.pt")
    final = root / name
    if final.exists():  # the same step again (a rerun after a crash): set the old one aside first
        old = root / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    atomic_write_text(root / "latest", name)
    done = sorted(p for p in root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(path: Path) -> TrainerState:
    state = torch.load(path / "trainer_state.pt", weights_only=False)  # our own file
    return TrainerState(state["step"], state["optimizer"], state["rng"], state.get("extra", {}))
