"""How RODS writes a file a user keeps: whole or not at all, never over one of its own inputs.

    atomic_write_text / atomic_write_bytes   temp file in the same directory, fsync, os.replace:
                                             a crash (a full disk, Ctrl-C, SIGKILL) leaves the old
                                             file as it was, never a half-written one
    AtomicWriter                             the same for a file written line by line (JSONL): the
                                             lines go to the temp file and replace the target only
                                             when the writer is closed without an error
    JsonlAppender                            appends whole lines, each flushed and fsynced at once,
                                             so an interrupted run keeps every line it wrote
    check_output_path(out, inputs)           refuses an output that is one of the inputs (the same
                                             file by any path: relative, `..`, a symlink, a hard
                                             link), checked before the work that fills it

A refusal raises `OutputPathError` (a ValueError) whose message names the option and the file;
the CLI prints it as its one `error:` line. Imports only the standard library (rods core).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any


class OutputPathError(ValueError):
    """An output path that must not be written (it is an input, or it cannot be appended to)."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: compare where they would be
        return a.resolve() == b.resolve()


def check_output_path(out: str | Path, inputs: Iterable[str | Path | None], option: str = "--out") -> None:
    """Raise OutputPathError when `out` names the same file as any of `inputs` (None skipped)."""
    out = Path(out)
    for given in inputs:
        if given is None:
            continue
        if _same_file(out, Path(given)):
            raise OutputPathError(
                f"{option} {out} is the input file {given}: writing it would destroy what is read; "
                "give another output path"
            )


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace `path` by `data` atomically (temp file + fsync + os.replace in the same directory)."""
    with AtomicWriter(path, binary=True) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace `path` by `text` atomically; see `atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, **dumps: Any) -> None:
    """`json.dumps(obj, **dumps)` written atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps))


class AtomicWriter:
    """A file object for `path` that replaces it only on a clean close (a `with` block that ends
    without an exception, or `commit()`); an error or interrupt removes the temp file and leaves
    `path` as it was. The temp file is `.NAME.XXXX.tmp` beside the target (same filesystem)."""

    def __init__(self, path: str | Path, *, binary: bool = False, encoding: str = "utf-8"):
        self.path = Path(path)
        directory = self.path.parent if str(self.path.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        self.tmp = Path(tmp)
        self.file: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding)
        self._done = False

    def write(self, data: Any) -> int:
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def commit(self) -> None:
        """Flush, fsync and rename into place (keeping the old file's mode when there is one)."""
        if self._done:
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            try:
                os.chmod(self.tmp, self.path.stat().st_mode & 0o7777)
            except OSError:
                os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.file.close()
            self.tmp.unlink(missing_ok=True)  # never a stray temp file (e.g. `path` is a directory)
            self._done = True
            raise
        _fsync_dir(self.tmp.parent)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self.file.close()
        self.tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def ends_with_partial_line(path: str | Path) -> bool:
    """True when a non-empty file's last byte is not a newline (a write was cut off there)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size == 0:
        return False
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


class JsonlAppender:
    """Appends one JSON object a line to `path` (created when missing), each line written whole,
    flushed and fsynced before `append` returns: what was appended survives a crash. A file whose
    last line is incomplete (an earlier write was cut off) is refused before anything is written,
    so the new lines never glue onto the broken one."""

    def __init__(self, path: str | Path, option: str = "--out"):
        self.path = Path(path)
        if ends_with_partial_line(self.path):
            raise OutputPathError(
                f"{option} {self.path} ends with an incomplete line (an earlier write was cut off); "
                f"remove that last line first (e.g. sed -i '$d' {self.path}) or give another file"
            )
        self._f: IO[str] | None = None
        self.lines = 0

    def append(self, obj: Any) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        if self._f is None:
            self._f = self.path.open("a", encoding="utf-8")
        self._f.write(line)
        self._f.flush()  # the whole line is in the file now (an interrupt in fsync below keeps it)
        self.lines += 1
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
