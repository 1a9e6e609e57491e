"""The experiment TOML of `rods experiment`: [experiment], [warm_start] and the trainer's sections.

Imported only when an experiment runs, so `rods --help` does not build these models.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cli.experiment import ARMS


class WarmStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 100  # SFT optimiser steps (an upper bound; the probe picks the checkpoint)
    subset: str = "demo"  # the SFT pool: the training subset every arm trains on
    lr: float = 2e-3  # the tiny model's SFT learning rate (CPU-DEMO)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arms: list[str] = Field(default_factory=lambda: list(ARMS))  # which arms, in this order
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])  # policy/sampling seeds per arm
    eval_points: int = 4  # held-out evaluations at every 1/eval_points of the budget
    eval_limit: int = 20  # held-out tasks per category (0: all)
    protocols: list[str] = Field(default_factory=lambda: ["train", "bfcl"])  # eval protocols
    offline_variants: int = 2  # K: variants per training seed for the offline arm
    workers: int = 2  # Celery synthesis workers for the synthesis arms


class ExperimentFile(BaseModel):
    """The experiment TOML: [experiment], [warm_start], and the trainer's own sections."""

    model_config = ConfigDict(extra="forbid")
    experiment: Experiment = Field(default_factory=Experiment)
    warm_start: WarmStart = Field(default_factory=WarmStart)
    train: dict[str, Any] = Field(default_factory=dict)  # every other section: a TrainConfig


def load(path: Path) -> tuple[ExperimentFile, Any]:
    """(the experiment settings, the shared TrainConfig); one clear error for a bad file."""
    from trainer.config import ConfigError, TrainConfig

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the experiment config ({e})") from None
    own = {k: raw.pop(k) for k in ("experiment", "warm_start") if k in raw}
    try:
        exp = ExperimentFile.model_validate({**own, "train": raw})
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    unknown = [a for a in exp.experiment.arms if a not in ARMS]
    if unknown:
        raise ConfigError(f"{path}: unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    return exp, cfg
