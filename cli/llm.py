"""`rods llm serve|check`: a real OpenAI-compatible synthesizer server, and a check of one.

    rods llm serve --engine llamacpp --model gemma-3-270m [--port 8080] [--parallel 4]
    rods llm check --api-base http://127.0.0.1:8080/v1 --model openai/gemma-3-270m

`serve` resolves the model (a packaged name: its GGUF for llama.cpp, its converted Hugging Face
directory for vLLM; or a path), starts `services.llm_server.LLMServer`, prints the URL and the
litellm settings a worker needs, and stays in the foreground until Ctrl-C or SIGTERM, when it
stops the server's whole process group. `check` sends one request per graph stage (plan,
arguments, queries, judge, repair) for a training seed through the real `LLMBackend` and prints
seconds, tokens and whether each reply parsed (or the kind of bad reply).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import fail

llm_app = typer.Typer(no_args_is_help=True, help="Serve a synthesizer model locally; check a served one.")
console = Console()
CHECK_SEED = "multi_turn_base_5"  # a training-split seed (GorillaFileSystem: short world)


def resolve_model(engine: str, model: str) -> tuple[Path, str]:
    """(path the engine loads, served name). A packaged name or a path; one line otherwise."""
    from rods.models import PACKAGED, ModelError, ensure_gguf

    path = Path(model)
    if engine == "llamacpp":
        if model in PACKAGED:
            try:
                return ensure_gguf(model), model
            except ModelError as e:
                raise fail(str(e)) from None
        if path.is_file() and path.suffix == ".gguf":
            return path, path.stem
        raise fail(f"--model {model}: neither a packaged model ({', '.join(PACKAGED)}) nor a .gguf file")
    if path.is_dir() and (path / "config.json").is_file():
        return path, path.name
    if model in PACKAGED:
        try:
            from trainer.models import hf_dir, is_converted
        except ImportError:
            raise fail(f"vLLM serves Hugging Face directories; this install cannot convert {model} (no trainer.models)") from None
        if not is_converted(model, "float32"):
            raise fail(f"{model} has no Hugging Face directory yet: run `rods model pull {model}` first")
        return hf_dir(model, "float32"), model
    raise fail(f"--model {model}: neither a packaged model ({', '.join(PACKAGED)}) nor a Hugging Face directory")


@llm_app.command("serve")
def serve(
    engine: str = typer.Option("llamacpp", help="llamacpp (GGUF, prebuilt xllamacpp) or vllm (HF directory, RODS_VLLM_PYTHON)"),
    model: str = typer.Option("gemma-3-270m", help="a packaged model name, a .gguf file (llamacpp) or a HF directory (vllm)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (loopback by default: the server has no API key)"),
    port: int = typer.Option(8080, min=1, max=65535, help="port to listen on"),
    parallel: int = typer.Option(4, min=1, max=64, help="requests decoded at once (continuous batching)"),
    ctx: int = typer.Option(4096, min=512, help="context tokens per parallel request"),
    threads: int = typer.Option(0, min=0, help="CPU threads (0: the engine's default)"),
    ready_timeout: float = typer.Option(180.0, min=1.0, help="seconds to wait for the server's first answer"),
) -> None:
    """Start a real OpenAI-compatible server for the synthesizer; Ctrl-C stops it."""
    from services.llm_server import ENGINES, LLMServer, ServerError

    if engine not in ENGINES:
        raise fail(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    path, name = resolve_model(engine, model)
    server = LLMServer(engine, path, name, host=host, port=port, parallel=parallel,
                       ctx_per_slot=ctx, threads=threads, ready_timeout_s=ready_timeout)  # fmt: skip
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        console.print(f"starting {engine} server for {path} …")
        server.start()
        console.print(f"[green]serving[/] {name} at {server.url} (ready in {server.started_s:.1f} s)")
        console.print(f"  litellm: model=[bold]{server.litellm_model}[/] api_base=[bold]{server.api_base}[/]")
        console.print(f"  workers: RODS_SYNTH_BACKEND=llm RODS_SYNTH_MODEL={server.litellm_model} "
                      f"RODS_SYNTH_API_BASE={server.api_base}")  # fmt: skip
        console.print("  Ctrl-C stops it", highlight=False)
        while not stop.is_set():
            if not server.alive():
                raise fail(f"the {engine} server exited by itself (code {server.proc.returncode if server.proc else '?'})", code=1)
            stop.wait(0.5)
    except ServerError as e:
        raise fail(str(e), code=1) from None
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    console.print("server stopped")


def check_backend(model: str, api_base: str | None, timeout_s: float, json_schema: bool = True) -> list[dict[str, Any]]:
    """One request per graph stage against a served model; a row per stage."""
    from graphs.synthesis.backend import ArgContext, PlanContext, QueryContext, Verdict
    from graphs.synthesis.llm import LLMBackend
    from rods.env.calls import parse_python_call
    from rods.env.world import World
    from rods.signature import compute_signature
    from rods.tasks import function_docs, get_bfcl_task

    seed = get_bfcl_task(CHECK_SEED)
    backend = LLMBackend(model, api_base=api_base, timeout_s=timeout_s, json_schema=json_schema)
    backend.preflight()
    rng = random.Random(0)
    world = World.load(seed)
    calls = [[world.bind_python_call(parse_python_call(c)) for c in turn] for turn in seed.ground_truth]
    results = [[world.execute(c).text for c in turn] for turn in calls]
    first = calls[0][0]
    doc = next(d for cls in seed.involved_classes for d in function_docs()[cls] if d["name"] == first.name)
    asks: list[tuple[str, Any]] = [
        ("plan", lambda: backend.plan(PlanContext(seed, compute_signature(seed), tuple(seed.involved_classes), 0, rng))),
        ("arguments", lambda: backend.arguments(ArgContext(first.name, doc, World.load(seed), [], 0, rng))),
        ("queries", lambda: backend.queries(QueryContext(
            seed, tuple(map(tuple, calls)), tuple(map(tuple, results)), seed.initial_config, rng))),
        ("judge", lambda: backend.judge(seed)),
        ("repair", lambda: backend.repair(seed, Verdict(False, ("turn 1 is vague",)))),
    ]  # fmt: skip
    rows = []
    for stage, ask in asks:
        t0 = time.perf_counter()
        p = ask()
        rows.append({
            "stage": stage, "seconds": time.perf_counter() - t0,
            "prompt_tokens": p.usage.prompt_tokens, "completion_tokens": p.usage.completion_tokens,
            "parsed": p.failure is None, "detail": p.failure.detail if p.failure else str(p.value)[:80],
        })  # fmt: skip
    return rows


@llm_app.command("check")
def check(
    api_base: str = typer.Option(None, "--api-base", help="the server's /v1 address (none for a hosted provider)"),
    model: str = typer.Option(..., help="litellm model string, e.g. openai/gemma-3-270m"),
    timeout: float = typer.Option(120.0, min=1.0, help="seconds per request"),
) -> None:
    """One request per graph stage: seconds, tokens, and whether each reply parsed."""
    from graphs.synthesis.backend import BackendUnavailable

    try:
        rows = check_backend(model, api_base, timeout)
    except BackendUnavailable as e:
        raise fail(str(e)) from None
    table = Table("stage", "seconds", "prompt tok", "reply tok", "parsed", "reply / why not")
    for r in rows:
        table.add_row(r["stage"], f"{r['seconds']:.1f}", str(r["prompt_tokens"]), str(r["completion_tokens"]),
                      "yes" if r["parsed"] else "[red]no[/]", r["detail"])  # fmt: skip
    console.print(table)
    tokens = sum(r["completion_tokens"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    console.print(f"{sum(r['parsed'] for r in rows)}/{len(rows)} replies parsed; "
                  f"{tokens} reply tokens in {seconds:.1f} s ({tokens / max(seconds, 1e-9):.1f} tok/s)")  # fmt: skip
