"""The experiment TOML of `rods experiment`: [experiment], [warm_start] and the trainer's sections.

Imported only when an experiment runs, so `rods --help` does not build these models. Every field
has its range, checked when the file is read, and a mistake is one line naming the field and what
it allows (`trainer.config_check.describe`); a file without `[experiment]` (a train config, say)
is refused, and so is a `policy.model` that is not a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cli.experiment import ARMS


class WarmStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(100, ge=0, le=10**6)  # SFT optimiser steps (an upper bound; the probe picks the checkpoint); 0: no SFT
    subset: Literal["demo", "all"] = "demo"  # the SFT pool: the training subset every arm trains on
    lr: float = Field(2e-3, gt=0.0, le=1.0)  # the tiny model's SFT learning rate (docs/CPU-DEMO.md)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arms: list[str] = Field(default_factory=lambda: list(ARMS))  # which arms, in this order
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # policy/sampling seeds per arm
    eval_points: int = Field(4, ge=1, le=1000)  # held-out evaluations at every 1/eval_points of the budget
    eval_limit: int = Field(20, ge=0)  # held-out tasks per category (0: all)
    # eval protocols (trainer.evaluate.PROTOCOLS)
    protocols: list[Literal["train", "bfcl"]] = Field(default_factory=lambda: ["train", "bfcl"], min_length=1)
    offline_variants: int = Field(2, ge=1, le=100)  # K: variants per training seed for the offline arm
    workers: int = Field(2, ge=1, le=256)  # Celery synthesis workers for the synthesis arms

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in ARMS]
        if unknown or not v:
            raise ValueError(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"{v}: give distinct seeds ≥ 0, e.g. [0, 1, 2]")
        return v


class ExperimentFile(BaseModel):
    """The experiment TOML: [experiment], [warm_start], and the trainer's own sections."""

    model_config = ConfigDict(extra="forbid")
    experiment: Experiment = Field(default_factory=Experiment)
    warm_start: WarmStart = Field(default_factory=WarmStart)
    train: dict[str, Any] = Field(default_factory=dict)  # every other section: a TrainConfig


def load(path: Path) -> tuple[ExperimentFile, Any]:
    """(the experiment settings, the shared TrainConfig); one clear error for a bad file."""
    from trainer.config import ConfigError, TrainConfig, read_toml
    from trainer.config_check import check_paths, describe

    raw = read_toml(path)
    if "experiment" not in raw:
        import difflib

        typo = difflib.get_close_matches("experiment", list(raw), n=1, cutoff=0.6)
        hint = (
            f"[{typo[0]}] is close: a typo? " if typo else
            "it looks like a train config: run it with `rods train --config` "
            if raw.keys() & set(TrainConfig.model_fields) else ""
        )  # fmt: skip
        raise ConfigError(
            f"{path} has no [experiment] section; {hint}or add [experiment] (arms, seeds, ...; "
            "see configs/experiment-cpu.toml)"
        )
    own = {k: raw.pop(k) for k in ("experiment", "warm_start") if k in raw}
    sections = ["experiment", "warm_start", *TrainConfig.model_fields]
    try:
        exp = ExperimentFile.model_validate({**own, "train": raw})
    except ValidationError as e:
        raise ConfigError(f"{path}: {describe(e, ExperimentFile, sections)}") from None
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: {describe(e, TrainConfig, sections)}") from None
    return exp, check_paths(cfg, str(path))
