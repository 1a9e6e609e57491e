"""Run directories: one owner at a time, and a config record that a resume never loses.

    RunLock(run_dir, command)     fcntl.flock on `run_dir/.lock`, which records the holder's pid,
                                  host, command and start time. A second process gets
                                  `RunDirBusy` naming the holder; a lock left by a dead process is
                                  taken over (the kernel drops a flock when its holder dies).
    record_config(run_dir, new, resumed_at, allow_change)
                                  writes `config.json` for a new run; on a resume, refuses a
                                  config that differs from the recorded one (`ConfigChanged`,
                                  the differing fields named) unless `allow_change`, and then
                                  keeps the old one as `configs/until_step_NNNNNN.json`.
    config_diff(old, new)         the differing leaf fields as `a.b: old -> new`.
    claim_made_dir / made_here    marker files for directories a command created and may clear.

Only the standard library: `trainer`, `cli` and tests share it. The lock is advisory (flock):
it guards RODS processes against each other, not against `rm`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from rods.fileio import atomic_write_bytes, atomic_write_text

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
HISTORY_DIR = "configs"
RESUMABLE_FIELDS = frozenset({"loop.steps"})  # raising the step count is how a run continues
MADE_MARKER = ".made-by-rods"  # inside a directory that a RODS command created and may clear


class RunDirBusy(RuntimeError):
    """Another live process owns the run directory; the message names it."""


class ConfigChanged(ValueError):
    """A resume with a config that differs from the recorded one; the message names the fields."""


class RunLock:
    """An exclusive flock on `run_dir/.lock` for as long as the object is held (a context manager).

    The lock file's text says who holds it (JSON: pid, host, command, started), so a refused
    process can name the holder; it is rewritten by each new holder."""

    def __init__(self, run_dir: str | Path, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.command = command or " ".join(["rods", *sys.argv[1:]])
        self._f: IO[str] | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK_FILE
        f = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = _describe(f.read())
            f.close()
            raise RunDirBusy(
                f"run directory {self.run_dir} is in use by {holder}; wait for it to finish or stop "
                "it, or give another --run-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}) + "\n")  # fmt: skip
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None

    def __enter__(self) -> RunLock:
        return self if self._f is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']} (`{info['command']}`, since {info['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process (its lock file records nothing readable)"


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def config_diff(old: dict[str, Any], new: dict[str, Any], ignore: frozenset[str] = RESUMABLE_FIELDS) -> list[str]:
    """`field: old -> new` for each leaf that differs (a missing side reads `(unset)`)."""
    a, b = _leaves(old), _leaves(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or a.get(key, "(unset)") == b.get(key, "(unset)"):
            continue
        out.append(f"{key}: {_show(a.get(key, '(unset)'))} -> {_show(b.get(key, '(unset)'))}")
    return out


def _show(v: Any) -> str:
    return v if isinstance(v, str) and v == "(unset)" else json.dumps(v)


def record_config(run_dir: Path, new_json: str, resumed_at: int, allow_change: bool,
                  flag: str = "--allow-config-change") -> str | None:
    """Write the run's config.json. `resumed_at` > 0 (a checkpoint exists) and a recorded config
    that differs: raise ConfigChanged, or with `allow_change` keep the old file under configs/ and
    return a line saying where. Returns None when nothing needed saying."""
    path = run_dir / CONFIG_FILE
    if resumed_at > 0 and path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            old = None
        diff = config_diff(old, json.loads(new_json)) if isinstance(old, dict) else ["(unreadable config.json)"]
        if diff:
            if not allow_change:
                raise ConfigChanged(_changed(run_dir, resumed_at, diff, flag))
            history = run_dir / HISTORY_DIR
            history.mkdir(exist_ok=True)
            kept = history / f"until_step_{resumed_at:06d}.json"
            n = 1
            while kept.exists():  # changed twice at one step: keep both
                kept = history / f"until_step_{resumed_at:06d}.{n}.json"
                n += 1
            atomic_write_bytes(kept, path.read_bytes())  # copied first: config.json never goes missing
            atomic_write_text(path, new_json)
            return f"config changed at step {resumed_at} ({'; '.join(diff[:3])}); the old one is kept in {kept}"
    atomic_write_text(path, new_json)
    return None


def latest_step(run_dir: Path) -> int:
    """The step of the run's newest complete checkpoint, 0 when none: the native trainer's
    `checkpoints/latest` or TRL's `checkpoints/checkpoint-N` (with its `trainer_state.json`).
    Read without torch, so a command can refuse a resume before it imports the trainer."""
    return max(_native_step(run_dir / "checkpoints"), _trl_step(run_dir / "checkpoints"))


def _native_step(ckpts: Path) -> int:
    try:
        name = (ckpts / "latest").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return 0
    if not (ckpts / name / "trainer_state.pt").exists():
        return 0
    try:
        return int(name.split("_")[1])
    except (IndexError, ValueError):
        return 0


def _trl_step(ckpts: Path) -> int:
    steps = [0]
    for d in ckpts.glob("checkpoint-*") if ckpts.is_dir() else ():
        tail = d.name.removeprefix("checkpoint-")
        if tail.isdigit() and (d / "trainer_state.json").exists():
            steps.append(int(tail))
    return max(steps)


def precheck_resume(run_dir: Path, new_json: str, allow_change: bool) -> int:
    """Before any heavy import: raise RunDirBusy when another process holds the run, ConfigChanged
    for a resume with another config (unless allowed); returns the steps already done. The
    process that trains checks all of it again while it holds the lock."""
    if (run_dir / LOCK_FILE).exists():
        RunLock(run_dir).acquire().release()
    done = latest_step(run_dir)
    path = run_dir / CONFIG_FILE
    if done > 0 and path.exists() and not allow_change:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return done
        diff = config_diff(old, json.loads(new_json)) if isinstance(old, dict) else []
        if diff:
            raise ConfigChanged(_changed(run_dir, done, diff, "--allow-config-change"))
    return done


def _changed(run_dir: Path, step: int, diff: list[str], flag: str) -> str:
    more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
    return (f"{run_dir} was trained to step {step} with another config: {'; '.join(diff[:3])}{more}; "
            f"resume with the same config, give another --run-dir, or pass {flag} to continue with the "
            "new one (the old config is kept)")


def claim_made_dir(path: Path, command: str) -> None:
    """Create `path` (missing or empty) and mark it as made by `command`, so that command may
    clear it later; see `made_here`."""
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / MADE_MARKER, json.dumps({"command": command, "pid": os.getpid(),
                                                      "created": time.time()}) + "\n")  # fmt: skip


def made_here(path: Path, command: str) -> bool:
    """True when `path` carries the marker that `command` wrote when it created it."""
    try:
        return json.loads((path / MADE_MARKER).read_text(encoding="utf-8")).get("command") == command
    except (OSError, ValueError, AttributeError):
        return False
