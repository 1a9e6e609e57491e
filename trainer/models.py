"""Packaged pretrained models as Hugging Face directories: the GGUF converted once, atomically.

`convert(name, dtype)` turns a packaged model's GGUF (`rods.models.ensure_gguf`: assembled from its
chunk packages and sha256-checked) into a normal Hugging Face directory `hf_dir(name, dtype)`
(`<models_dir>/<name>/hf-<dtype>/`) that `trainer.policy.load_policy`, TRL and vLLM load like any
other: config, safetensors weights, generation config, and a tokenizer whose chat template is the
model's own turn format with this project's tool conventions (`trainer.chat.GEMMA_CHAT_TEMPLATE`)
and whose eos is the token that ends a model turn.

Contracts:
- Idempotent: a directory whose `rods-model.json` matches the spec (name, GGUF sha256, dtype,
  `CONVERT_VERSION`) is returned at once (a stat and a small JSON read).
- Atomic: everything is written into a temporary directory beside the target and renamed into
  place, the marker file last; an interrupted conversion leaves no directory under the final
  name (a stale temporary one is removed by the next conversion).
- transformers refuses to `save_pretrained` a GGUF-loaded model, so the model is rebuilt from its
  config without `quantization_config` and given the dequantised state dict.
- Every failure is a `rods.models.ModelError` with a one-line message.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rods.models import PACKAGED, ModelError, check_free_space, ensure_gguf, model_dir, packaged

CONVERT_VERSION = 2  # bump when the conversion's output changes for the same GGUF
MARKER = "rods-model.json"  # written last: its presence and content make a directory complete
DTYPES = ("float32", "bfloat16", "float16")
BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}
SLACK_BYTES = 200 * 1024 * 1024  # tokenizer files (~35 MB) and the temporary copy's overheads
# progress(stage, done, total): stages "assemble" (bytes), "load", "convert", "save" (0/1 → 1/1)
Progress = Callable[[str, int, int], None]


def hf_dir(name: str, dtype: str = "float32") -> Path:
    """Where the converted Hugging Face directory of packaged model `name` lives."""
    return model_dir(name) / f"hf-{dtype}"


def spec_of(name: str, dtype: str) -> dict[str, Any]:
    p = packaged(name)
    return {"name": p.name, "gguf_sha256": p.sha256, "dtype": dtype, "version": CONVERT_VERSION,
            "source": p.source, "licence": p.licence}


def is_converted(name: str, dtype: str = "float32") -> bool:
    """True when `hf_dir(name, dtype)` holds a complete conversion of the current spec."""
    try:
        return json.loads((hf_dir(name, dtype) / MARKER).read_text()) == spec_of(name, dtype)
    except (OSError, ValueError):
        return False


def is_packaged(name: str) -> bool:
    return name in PACKAGED


def resolve_source(name_or_path: str) -> str:
    """A packaged model's name → its converted fp32 directory (pulled on first use, with a
    progress bar on stderr); anything else (a directory, a hub id) is returned unchanged."""
    if is_packaged(name_or_path):
        return str(pull_with_bar(name_or_path))
    return name_or_path


STAGES = {
    "assemble": "assembling the GGUF from its chunk packages (sha256-checked)",
    "load": "loading and dequantising the GGUF (~1.5 min on 2 cores)",
    "convert": "rebuilding it as a plain Hugging Face model",
    "save": "writing the directory",
}


def pull_with_bar(name: str, dtype: str = "float32") -> Path:
    """`convert` behind a rich progress bar on stderr (nothing shown when already converted)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if is_converted(name, dtype):
        return hf_dir(name, dtype)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True))
    stage_ids: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in stage_ids:
            stage_ids[stage] = bars.add_task(f"{name}: {STAGES.get(stage, stage)}", total=total)
        bars.update(stage_ids[stage], completed=done, total=total)

    with bars:
        return convert(name, dtype, progress=report)


def convert(name: str, dtype: str = "float32", progress: Progress | None = None) -> Path:
    """The converted Hugging Face directory of packaged model `name` in `dtype` (see module doc)."""
    if dtype not in DTYPES:
        raise ModelError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    spec = packaged(name)
    target = hf_dir(name, dtype)
    if is_converted(name, dtype):
        return target
    if target.exists() and not (target / MARKER).exists():
        raise ModelError(f"{target} exists but is not a rods conversion; move it away and pull again")
    report = progress or (lambda stage, done, total: None)
    gguf = ensure_gguf(name, lambda done, total: report("assemble", done, total))
    _require_gguf_reader(spec.pip_hint)
    check_free_space(target.parent, spec.n_params * BYTES_PER_PARAM[dtype] + SLACK_BYTES, f"{name} ({dtype})")
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)  # an interrupted conversion's leftovers
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _convert_into(gguf, dtype, tmp, report)
        (tmp / MARKER).write_text(json.dumps(spec_of(name, dtype), indent=1) + "\n")
        old = None
        if target.exists():  # an earlier CONVERT_VERSION: swap, then remove it
            old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise ModelError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _require_gguf_reader(pip_hint: str) -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"reading a GGUF file needs the gguf package: {pip_hint}")


def _convert_into(gguf: Path, dtype: str, out: Path, report: Progress) -> None:
    """Load the GGUF with transformers (dequantised), rebuild a plain model, save it to `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.chat import GEMMA_CHAT_TEMPLATE, GEMMA_END_OF_TURN, GEMMA_PAD

    torch_dtype = getattr(torch, dtype)
    report("load", 0, 1)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    report("load", 1, 1)
    report("convert", 0, 1)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # save_pretrained refuses a model marked as GGUF-quantised
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # random init, replaced
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ModelError(f"{gguf.name}: weights do not fit the config (missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]})")
    model.tie_weights()
    model.to(torch_dtype)
    del loaded
    eot = tokenizer.convert_tokens_to_ids(GEMMA_END_OF_TURN)
    pad = tokenizer.convert_tokens_to_ids(GEMMA_PAD)
    if eot in (None, tokenizer.unk_token_id) or pad in (None, tokenizer.unk_token_id):
        raise ModelError(f"{gguf.name}: its tokenizer lacks {GEMMA_END_OF_TURN} or {GEMMA_PAD}")
    tokenizer.eos_token, tokenizer.pad_token = GEMMA_END_OF_TURN, GEMMA_PAD
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    model.config.eos_token_id, model.config.pad_token_id = eot, pad
    gen = model.generation_config
    gen.eos_token_id = [eot, tokenizer.convert_tokens_to_ids("<eos>")]  # a turn's end, or text's
    gen.pad_token_id, gen.bos_token_id = pad, tokenizer.bos_token_id
    report("convert", 1, 1)
    report("save", 0, 1)
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out, save_jinja_files=False)
    report("save", 1, 1)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def installed() -> list[dict[str, Any]]:
    """Every packaged model with something on disk: its GGUF and each converted directory."""
    from rods.models import gguf_path, is_verified

    rows: list[dict[str, Any]] = []
    for name, spec in sorted(PACKAGED.items()):
        g = gguf_path(name)
        if g.is_file():
            rows.append({"name": name, "form": "gguf" + ("" if is_verified(name) else " (unverified)"),
                         "path": str(g), "bytes": g.stat().st_size, "licence": spec.licence})
        for dtype in DTYPES:
            d = hf_dir(name, dtype)
            if d.is_dir():
                form = f"hf {dtype}" + ("" if is_converted(name, dtype) else " (incomplete or outdated)")
                rows.append({"name": name, "form": form, "path": str(d), "bytes": dir_bytes(d),
                             "licence": spec.licence})
    return rows
