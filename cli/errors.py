"""How the `rods` command reports a mistake: one line that says what to fix, never a traceback.

Exit codes: 2 for a usage or configuration error (a bad option, file, URL or RODS_* variable,
an unreachable Redis: something the user changes), 1 for a failure of the work itself (a task
that was refused, a line that could not be scored, an unexpected error). `RodsGroup` is the
top-level command class: any exception that escapes a command becomes one `error: …` line on
stderr (a known kind with its own message, anything else with its type and a hint), unless the
global `rods --debug` flag (or `RODS_DEBUG=1`, which `rods demo` passes to its children) asks for
the traceback. The checks of input and output files are shared here so every command says the
same thing about the same mistake.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

err = Console(stderr=True, soft_wrap=True)  # messages name long paths: never wrap them
DEBUG_ENV = "RODS_DEBUG"
MAX_MESSAGE = 500  # characters of a foreign exception's message shown on the one line


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` (one line, no markup interpreted) and return the Exit to raise."""
    err.print(Text.assemble(("error: ", "bold red"), one_line(message)))
    return typer.Exit(code)


def one_line(message: str) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def _known(e: Exception) -> tuple[str, int] | None:
    """Message and exit code for the exceptions whose message already says what to fix."""
    from rods.config import SettingsError
    from rods.fileio import OutputPathError
    from rods.models import ModelError
    from rods.rundir import ConfigChanged, RunDirBusy
    from rods.store.connection import RedisUnavailable
    from rods.tasks import TaskFileError
    from trainer.config import ConfigError

    if isinstance(e, SettingsError | RedisUnavailable | TaskFileError | ConfigError | ModelError
                  | RunDirBusy | ConfigChanged | OutputPathError):
        return str(e), 2
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8", 2
    if isinstance(e, IsADirectoryError | NotADirectoryError | FileNotFoundError | PermissionError):
        return f"{e.strerror}: {e.filename}", 2
    return None


class RodsGroup(TyperGroup):
    """The `rods` group: turns an escaped exception into one line (see the module docstring)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Usage errors (a bad option value, an unknown command) as one line too, with where to
        look: click's own report is a usage line and a box."""
        import sys

        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **{**kwargs, "standalone_mode": False})
        except Exception as e:
            # click's exceptions (typer vendors click, so match them by module, not by class)
            if not type(e).__module__.startswith(("click", "typer")):
                raise
            if type(e).__name__ == "Abort":
                fail("aborted", 1)
                sys.exit(1)
            if not hasattr(e, "format_message"):
                raise
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            fail(e.format_message() + hint)
            sys.exit(getattr(e, "exit_code", 2))
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        if ctx.params.get("debug"):
            os.environ[DEBUG_ENV] = "1"  # children started by `rods demo` inherit it
        try:
            return super().invoke(ctx)
        except Exception as e:
            if isinstance(e, typer.Exit | typer.Abort) or type(e).__module__.startswith(("click", "typer")):
                raise
            if debug_enabled():
                raise
            known = _known(e)
            if known is not None:
                raise fail(*known) from None
            raise fail(
                f"{type(e).__name__}: {e} (unexpected; rerun as `rods --debug …` for the traceback)", 1
            ) from None


def check_input_file(path: Path, what: str = "file", form: str = "one JSON object a line") -> None:
    """A readable regular file, or a one-line usage error (exit 2)."""
    if not path.exists():
        raise fail(f"{path}: no such {what}")
    if path.is_dir():
        raise fail(f"{path} is a directory; give a {what} ({form})")
    if not os.access(path, os.R_OK):
        raise fail(f"{path}: permission denied")


def check_output_file(path: Path, option: str = "--out") -> None:
    """A path a file can be written to: not a directory, in a directory that exists and is
    writable. Checked before any work, so a mistake costs nothing and leaves nothing behind."""
    if path.is_dir():
        raise fail(f"{option} {path} is a directory; give a file path, e.g. {path / 'out.jsonl'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise fail(f"{option} {path}: the directory {parent} {what}; create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise fail(f"{option} {path}: permission denied")
