"""rods/fileio.py and rods/rundir.py: writes that are whole or absent, outputs that are never
inputs, one owner per run directory, a config record a resume never loses (issue #25). No services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rods.fileio import (
    AtomicWriter,
    JsonlAppender,
    OutputPathError,
    atomic_write_text,
    check_output_path,
)
from rods.rundir import ConfigChanged, RunDirBusy, RunLock, config_diff, record_config
from rods.tasks import TaskFileError, get_bfcl_task, read_tasks

ROOT = Path(__file__).resolve().parents[2]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError), AtomicWriter(path) as f:
        f.write("half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"


def test_atomic_write_onto_a_directory_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path / "adir", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["adir"]


def test_an_output_equal_to_an_input_is_refused_by_any_path(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    (tmp_path / "sub").mkdir()
    os.symlink(src, tmp_path / "link.jsonl")
    os.link(src, tmp_path / "hard.jsonl")
    monkeypatch.chdir(tmp_path)
    for same in ("in.jsonl", "./in.jsonl", "sub/../in.jsonl", str(src), "link.jsonl", "hard.jsonl"):
        with pytest.raises(OutputPathError, match="is the input file"):
            check_output_path(Path(same), [None, src])
    check_output_path(Path("other.jsonl"), [src, None])  # a different file: fine
    check_output_path(Path("new.jsonl"), [Path("new2.jsonl")])  # neither exists yet: fine


def test_appender_writes_whole_lines_and_refuses_a_cut_off_file(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"a": 1}\n')
    with JsonlAppender(path) as out:
        out.append({"b": 2})
        assert path.read_text() == '{"a": 1}\n{"b": 2}\n'  # on disk before close
    assert out.lines == 1
    path.write_text('{"a": 1}\n{"b": ')
    with pytest.raises(OutputPathError, match="incomplete line"):
        JsonlAppender(path)
    assert path.read_text() == '{"a": 1}\n{"b": '


def test_a_truncated_last_line_is_one_warning_and_a_broken_middle_line_an_error(tmp_path: Path) -> None:
    lines = [json.dumps(get_bfcl_task(f"multi_turn_base_{k}").to_bfcl()) for k in (0, 1, 2)]
    cut = tmp_path / "cut.jsonl"
    cut.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][: len(lines[2]) // 2])
    warnings: list[str] = []
    tasks = read_tasks(cut, on_warning=warnings.append)
    assert [t.id for t in tasks] == ["multi_turn_base_0", "multi_turn_base_1"]
    assert len(warnings) == 1 and f"{cut}:3" in warnings[0] and "kept the 2 lines" in warnings[0]
    middle = tmp_path / "middle.jsonl"
    middle.write_text(lines[0] + "\n" + lines[1][:40] + "\n" + lines[2] + "\n")
    with pytest.raises(TaskFileError, match=f"{middle}:2: not valid JSON"):
        read_tasks(middle, on_warning=warnings.append)
    last_with_newline = tmp_path / "last.jsonl"  # a broken last line WITH its newline was written broken
    last_with_newline.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(TaskFileError, match=":2: not valid JSON"):
        read_tasks(last_with_newline)


def _hold_lock(run_dir: Path) -> subprocess.Popen[str]:
    code = ("import sys,time; from rods.rundir import RunLock; lock = RunLock(sys.argv[1], 'rods train --test').acquire();"
            " print('held', flush=True); time.sleep(60)")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_owner_is_refused_with_the_holder_named_and_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = _hold_lock(run_dir)
    try:
        t0 = time.monotonic()
        with pytest.raises(RunDirBusy) as e:
            RunLock(run_dir, "rods train").acquire()
        assert time.monotonic() - t0 < 1.0  # refused at once, not after a wait
        assert f"pid {holder.pid}" in str(e.value) and "rods train --test" in str(e.value)
    finally:
        holder.kill()  # SIGKILL: no cleanup ran, the lock file stays
        holder.wait()
    assert (run_dir / ".lock").exists()
    with RunLock(run_dir, "rods train --again") as lock:  # the kernel dropped the dead holder's flock
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
        assert lock.command == "rods train --again"


def test_config_diff_names_each_changed_leaf_and_ignores_the_step_count() -> None:
    old = {"optim": {"lr": 2e-05, "betas": [0.9, 0.99]}, "loop": {"steps": 10, "mode": "rods"}}
    new = {"optim": {"lr": 1e-05, "betas": [0.9, 0.99]}, "loop": {"steps": 20, "mode": "static"}, "env": {"hints": True}}
    assert config_diff(old, new) == ["env.hints: (unset) -> true", 'loop.mode: "rods" -> "static"', "optim.lr: 2e-05 -> 1e-05"]


def test_record_config_refuses_a_changed_resume_unless_allowed_then_keeps_both(tmp_path: Path) -> None:
    first = json.dumps({"optim": {"lr": 2e-05}, "loop": {"steps": 4}})
    changed = json.dumps({"optim": {"lr": 1e-05}, "loop": {"steps": 8}})
    assert record_config(tmp_path, first, resumed_at=0, allow_change=False) is None
    assert record_config(tmp_path, json.dumps({"optim": {"lr": 2e-05}, "loop": {"steps": 8}}), 4, False) is None
    with pytest.raises(ConfigChanged, match=r"optim\.lr: 2e-05 -> 1e-05.*--allow-config-change"):
        record_config(tmp_path, changed, resumed_at=4, allow_change=False)
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == 2e-05  # untouched
    note = record_config(tmp_path, changed, resumed_at=4, allow_change=True)
    assert note is not None and "until_step_000004.json" in note
    assert json.loads((tmp_path / "configs" / "until_step_000004.json").read_text())["optim"]["lr"] == 2e-05
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["lr"] == 1e-05


def test_latest_step_reads_native_and_trl_checkpoints_without_torch(tmp_path: Path) -> None:
    from rods.rundir import latest_step, precheck_resume

    ckpts = tmp_path / "checkpoints"
    assert latest_step(tmp_path) == 0
    (ckpts / "checkpoint-4").mkdir(parents=True)
    (ckpts / "checkpoint-6").mkdir()  # a TRL save cut off before its trainer_state.json: not a checkpoint
    (ckpts / "checkpoint-4" / "trainer_state.json").write_text("{}")
    assert latest_step(tmp_path) == 4
    (tmp_path / "config.json").write_text(json.dumps({"optim": {"lr": 1e-4}}))
    with pytest.raises(ConfigChanged, match="trained to step 4"):
        precheck_resume(tmp_path, json.dumps({"optim": {"lr": 2e-4}}), allow_change=False)
    assert precheck_resume(tmp_path, json.dumps({"optim": {"lr": 2e-4}}), allow_change=True) == 4
