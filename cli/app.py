"""The `rods` command. Each subcommand is a thin shell over a library function.

    rods data stats                       counts by category, class, split; signature histograms
    rods data ids --split train|eval      one task id a line
    rods env score IN.jsonl [--out OUT]   score trajectories given as calls per user turn
    rods env replay TASK_ID               execute a task's ground truth turn by turn
    rods buffer init|stats|export|import  the Redis replay buffer of a run
    rods synth run|validate|codes         synthesize variants of a seed; check a task file; reject codes
    rods llm serve|check                  a local OpenAI-compatible synthesizer server; check one
    rods worker | rods dispatcher         the synthesis service (Celery worker, stream consumer)
    rods sft | train | trainer | eval     warm start, GRPO training, the trainer service, evaluation
    rods model pull NAME | list           packaged pretrained models (Gemma 3 270M), converted once

The CLI is the one module of `rods` that reaches into `graphs`, `trainer` and `services`, and it
does so only inside command functions, so `rods --help` never imports torch or LangGraph.
A mistake ends in one `error: …` line (exit 2 for usage, 1 for failures; see `cli/errors.py`);
`rods --debug …` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli import experiment as cli_experiment
from cli import report as cli_report
from cli import services as cli_services
from cli import sft as cli_sft
from cli import train as cli_train
from cli.buffer import buffer_app
from cli.errors import RodsGroup, check_input_file, check_output_file
from cli.errors import fail as _fail
from cli.llm import llm_app
from cli.model import model_app
from cli.synth import synth_app
from rods import tasks as T

app = typer.Typer(
    cls=RodsGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="RODS: reward-driven online data synthesis",
)
data_app = typer.Typer(no_args_is_help=True, help="The BFCL multi-turn tasks and the fixed split.")
env_app = typer.Typer(no_args_is_help=True, help="The executable tool environment and its reward.")
app.add_typer(data_app, name="data")
app.add_typer(env_app, name="env")

console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="show the Python traceback of an error instead of one line"),
) -> None:
    """RODS: reward-driven online data synthesis."""


# ---------------------------------------------------------------- data


@data_app.command("ids")
def data_ids(split: str = typer.Option(..., help="train (400 seeds) or eval (400 held out)")) -> None:
    """Print the ids of one side of the fixed split, one a line, in BFCL order."""
    if split not in ("train", "eval"):
        raise _fail(f"--split must be 'train' or 'eval', not {split!r}")
    ids = T.split_ids(split)
    for task in T.load_bfcl_tasks():
        if task.id in ids:
            sys.stdout.write(task.id + "\n")


def _table(title: str, rows: dict[str, dict[str, int]], columns: list[str]) -> Table:
    table = Table(title=title)
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, counts in rows.items():
        table.add_row(name, *(str(counts.get(c, 0)) for c in columns))
    return table


@data_app.command("stats")
def data_stats(as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables")) -> None:
    """Counts by category, class and split, and signature histograms of the training seeds."""
    from rods.signature import compute_signature, signature_histograms

    tasks = T.load_bfcl_tasks()
    train = T.split_ids("train")
    by_category: dict[str, Counter[str]] = {c: Counter() for c in T.CATEGORIES}
    by_class: dict[str, Counter[str]] = {c: Counter() for c in T.CLASSES}
    for task in tasks:
        side = "train" if task.id in train else "eval"
        by_category[task.category][side] += 1
        for cls in task.involved_classes:
            by_class[cls][side] += 1
    hist: dict[str, dict[str, dict[str, int]]] = {}
    with err.status("computing signatures (executes every ground truth)…"):
        for side in ("train", "eval"):
            sigs = [compute_signature(t) for t in tasks if (t.id in train) == (side == "train")]
            hist[side] = signature_histograms(sigs)
    out: dict[str, Any] = {
        "total": len(tasks),
        "by_category": {k: dict(v) for k, v in by_category.items()},
        "by_class": {k: dict(v) for k, v in by_class.items()},
        "signature_histograms": hist,
    }
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    cols = ["train", "eval"]
    console.print(_table(f"{len(tasks)} BFCL multi-turn tasks by category", out["by_category"], cols))
    console.print(_table("tasks involving each class", out["by_class"], cols))
    for name in hist["train"]:
        keys = sorted({*hist["train"][name], *hist["eval"][name]}, key=_natural)
        rows = {k: {s: hist[s][name].get(k, 0) for s in cols} for k in keys}
        console.print(_table(f"signature: {name}", rows, cols))


def _natural(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.isdigit() else (1, key)


# ---------------------------------------------------------------- env


def _parse_score_line(obj: Any, lineno: int) -> tuple[T.Task, list[list[T.ToolCall]]]:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if "task" in obj:
        task = T.parse_task(obj["task"], where=f"line {lineno}: task")
        if obj.get("task_id", task.id) != task.id:
            raise ValueError(f"task_id {obj['task_id']!r} differs from the inline task's id {task.id!r}")
    elif isinstance(obj.get("task_id"), str):
        task = T.get_bfcl_task(obj["task_id"])
    else:
        raise ValueError("field 'task_id': missing (or give the task inline as 'task')")
    turns = obj.get("calls")
    if not isinstance(turns, list) or not all(isinstance(t, list) for t in turns):
        raise ValueError("field 'calls': expected a list of turns, each a list of calls")
    calls: list[list[T.ToolCall]] = []
    for u, turn in enumerate(turns):
        calls.append([])
        for k, c in enumerate(turn):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise ValueError(f"field 'calls[{u}][{k}]': expected {{\"name\": str, \"arguments\": {{}}}}")
            args = c.get("arguments", {})
            if not isinstance(args, dict):
                raise ValueError(f"field 'calls[{u}][{k}].arguments': expected an object")
            calls[-1].append(T.ToolCall(name=c["name"], arguments=args))
    return task, calls


@env_app.command("score")
def env_score(
    input: Path = typer.Argument(..., help="JSONL: {task_id | task, calls: [[{name, arguments}…]…]}"),
    out: Path | None = typer.Option(None, "--out", help="write results here (default: stdout)"),
) -> None:
    """Score trajectories with the progress reward and the official-correctness verdict.

    A line that cannot be scored gets `{"line", "task_id", "error"}` in the output and the
    command exits 1 after scoring every other line.
    """
    from rods.env import GroundTruthCache, score_calls
    from rods.fileio import AtomicWriter, OutputPathError, check_output_path

    check_input_file(input, "JSONL file")
    if out is not None:
        check_output_file(out)
        try:
            check_output_path(out, [input])
        except OutputPathError as e:
            raise _fail(str(e)) from None
    cache = GroundTruthCache()
    # --out replaces the file only once every line is scored: an interrupted run keeps the old one
    sink: Any = AtomicWriter(out) if out else sys.stdout
    n_ok = n_bad = n_correct = 0
    progress_sum = 0.0
    try:
        for lineno, line in T.iter_lines(input):
            obj: Any = None
            try:
                obj = json.loads(line)
                task, calls = _parse_score_line(obj, lineno)
                record = score_calls(task, calls, cache).to_json()
                n_ok += 1
                n_correct += record["correct"]
                progress_sum += record["progress"]
            except (ValueError, KeyError, RecursionError, T.TaskFileError) as e:
                msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
                if isinstance(e, RecursionError):
                    msg = "JSON nested too deeply"
                task_id = obj.get("task_id") if isinstance(obj, dict) else None
                record = {"line": lineno, "task_id": task_id if isinstance(task_id, str) else None, "error": msg}
                err.print(Text.assemble((f"{input}:{lineno}: ", "red"), str(msg)))
                n_bad += 1
            sink.write(json.dumps(record) + "\n")
            sink.flush()
    except T.TaskFileError as e:  # the file itself is unreadable (binary, not UTF-8): stop here
        if out:
            sink.abort()
        raise _fail(str(e)) from None
    except BaseException:
        if out:
            sink.abort()
        raise
    if out:
        sink.commit()
    mean = progress_sum / n_ok if n_ok else float("nan")
    err.print(
        f"scored {n_ok} trajectories: {n_correct} correct, mean progress {mean:.3f}"
        + (f"; {n_bad} lines could not be scored" if n_bad else "")
    )
    if n_bad:
        raise typer.Exit(1)


@env_app.command("replay")
def env_replay(
    task_id: str = typer.Argument(..., help="a BFCL multi-turn id, e.g. multi_turn_base_0"),
    width: int = typer.Option(160, min=10, help="cut results to this many characters (at least 10)"),
) -> None:
    """Execute a task's ground truth turn by turn, printing each call and its result."""
    from rods.env import World
    from rods.env.calls import parse_python_call
    from rods.env.episode import reveal_message

    try:
        task = T.get_bfcl_task(task_id)
    except KeyError as e:
        raise _fail(str(e.args[0])) from None
    world = World.load(task)
    console.print(f"[bold]{task.id}[/]  classes: {', '.join(task.involved_classes)}")
    for turn in task.turns:
        user = " ".join(m.content for m in turn.messages) or reveal_message()
        console.rule(f"turn {turn.index}")
        console.print(Text.assemble(("user: ", "cyan"), user))
        if turn.revealed_functions:
            console.print(Text.assemble(("reveals: ", "yellow"), ", ".join(turn.revealed_functions)))
        if not turn.ground_truth:
            console.print("[dim](empty ground truth: the assistant should not call anything)[/]")
        for source in turn.ground_truth:
            call = world.bind_python_call(parse_python_call(source))
            outcome = world.execute(call)
            text = outcome.text if len(outcome.text) <= width else outcome.text[: width - 1] + "…"
            console.print(Text.assemble("  ", (call.to_python(), "green")))
            console.print(Text.assemble("    → ", text))


# ---------------------------------------------------------------- the main job


@app.command("demo")
def demo(
    steps: int | None = typer.Option(None, help="GRPO steps (default: configs/demo.toml)"),
    run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir", help="where everything is written: a new or empty directory, or one an earlier demo made"),
    model: str | None = typer.Option(None, help="synthesize with this litellm model instead of the procedural backend"),
    config: Path | None = typer.Option(None, help="trainer config (default: configs/demo.toml)"),
    reuse_dir: bool = typer.Option(False, "--reuse-dir", help="use a --run-dir that holds other files too (the demo still deletes nothing it did not make)"),
    synth: str = typer.Option("procedural", help="procedural, or llm: serve gemma-3-270m locally with llama.cpp for the run (or use --model)"),
) -> None:
    """The whole closed loop embedded on CPU: Redis, 2 workers, dispatcher, trainer, report."""
    from cli.demo import DemoDirRefused, run_demo
    from rods.rundir import RunDirBusy

    if synth not in ("procedural", "llm"):
        raise _fail(f"--synth must be procedural or llm, not {synth!r}")
    try:
        run_demo(run_dir, steps=steps, model=model, config=config, reuse_dir=reuse_dir, synth=synth)
    except (DemoDirRefused, RunDirBusy) as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] every demo process was stopped; the warm start stays cached")
        raise typer.Exit(130) from None
    except (RuntimeError, FileNotFoundError, OSError) as e:
        raise _fail(str(e), code=1) from None


app.add_typer(buffer_app, name="buffer", help="The Redis replay buffer of a run.")
app.add_typer(llm_app, name="llm", help="Serve a synthesizer model locally (llama.cpp, vLLM); check a served one.")
app.add_typer(synth_app, name="synth", help="Synthesize task variants from a seed (no Celery).")
app.add_typer(model_app, name="model", help="Packaged pretrained models: pull (convert once), list.")
app.command("worker")(cli_services.worker)
app.command("train")(cli_train.train)
app.command("trainer")(cli_train.trainer_service)
app.command("eval")(cli_train.evaluate)
app.command("sft")(cli_sft.sft)
app.command("report")(cli_report.report)
app.command("dispatcher")(cli_services.dispatcher)
app.command("experiment")(cli_experiment.experiment)


if __name__ == "__main__":  # pragma: no cover
    app()
