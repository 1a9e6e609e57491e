"""The local synthesizer server: start time, sampled tokens/s (one request, N parallel, with and
without a JSON schema), and one request per graph stage through the real `LLMBackend`.

    RODS_MODELS_DIR=/work/cache/models python benchmarks/bench_llm.py --parallel 4 --tokens 48

The reference of each speed is the same server's plain single request in the same run (the
machine is shared, so absolute tok/s move with its load; the ratios are the figure). Prints one
JSON object; `--stages` adds `rods llm check`'s per-stage rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rods.models import ensure_gguf  # noqa: E402
from rods.store.server import free_port  # noqa: E402
from services.llm_server import LLMServer  # noqa: E402

PROMPT = ("Write one short message a user might send to an assistant that manages their files, "
          "asking to move report.pdf into the archive folder.")  # fmt: skip
SCHEMA = {"type": "object", "properties": {"message": {"type": "string", "maxLength": 400}},
          "required": ["message"], "additionalProperties": False}  # fmt: skip


def one(api_base: str, tokens: int, schema: bool) -> tuple[int, float]:
    body: dict = {"model": "gemma-3-270m", "messages": [{"role": "user", "content": PROMPT}],
                  "max_tokens": tokens, "temperature": 1.0, "top_p": 0.7, "ignore_eos": True}  # fmt: skip
    if schema:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "m", "schema": SCHEMA}}
        del body["ignore_eos"]  # a grammar ends the reply itself (llama.cpp refuses both: 500)
    req = urllib.request.Request(f"{api_base}/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})  # fmt: skip
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        reply = json.loads(r.read())
    return int(reply["usage"]["completion_tokens"]), time.perf_counter() - t0


def rate(api_base: str, n: int, tokens: int, schema: bool) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        done = list(pool.map(lambda _: one(api_base, tokens, schema), range(n)))
    return sum(t for t, _ in done) / (time.perf_counter() - t0)


def synth_compare(server: LLMServer, n_seeds: int, schema: bool, few_shot: bool) -> dict:
    """One variant per seed (first `n_seeds` base-category training seeds, then one per other
    category), llm vs procedural: accepted, seconds per accepted variant, failures, stage stats."""
    from graphs.synthesis.graph import synthesize
    from graphs.synthesis.llm import LLMBackend
    from graphs.synthesis.procedural import ProceduralBackend
    from rods.tasks import load_split

    seeds = [t for c in ("base", "miss_func", "miss_param", "long_context") for t in load_split("train", [c])[:n_seeds]]
    llm = LLMBackend(server.litellm_model, api_base=server.api_base, timeout_s=600,
                     json_schema=schema, few_shot=few_shot)  # fmt: skip
    out: dict = {"seeds": len(seeds), "schema": schema, "few_shot": few_shot}
    for name, backend in (("procedural", ProceduralBackend()), ("llm", llm)):
        t0, accepted, by_cat, failures, rejections = time.perf_counter(), [], {}, {}, {}
        for k, seed in enumerate(seeds):
            res = synthesize(seed, n_variants=1, backend=backend, rng_seed=k)
            accepted += res.tasks
            by_cat[seed.category] = by_cat.get(seed.category, 0) + len(res.tasks)
            for src, dst in ((res.failures, failures), (res.rejections, rejections)):
                for code, n in src.items():
                    dst[code] = dst.get(code, 0) + n
            print(f"{name} {seed.id}: {len(res.tasks)} accepted, {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        seconds = time.perf_counter() - t0
        out[name] = {"accepted": len(accepted), "per_category": by_cat, "seconds": round(seconds, 1),
                     "s_per_accepted": round(seconds / len(accepted), 1) if accepted else None,
                     "failures": failures, "rejections": rejections}  # fmt: skip
        if accepted:
            from rods.tasks import write_tasks

            write_tasks(Path(f"/tmp/bench_llm_{name}.jsonl"), accepted)
    out["llm"]["stages"] = llm.stats.metrics()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--synth", type=int, default=0, help="graph runs on this many training seeds (llm vs procedural)")
    ap.add_argument("--no-schema", action="store_true", help="the llm backend without JSON-schema replies")
    ap.add_argument("--no-few-shot", action="store_true", help="the writer without its training-split example")
    args = ap.parse_args()
    server = LLMServer("llamacpp", ensure_gguf("gemma-3-270m"), "gemma-3-270m", port=free_port(),
                       parallel=args.parallel, log=open("/dev/null", "w"))  # noqa: SIM115
    with server:
        out: dict = {"start_s": round(server.started_s, 1)}
        one(server.api_base, 4, False)  # warm the slots
        base = rate(server.api_base, 1, args.tokens, False)
        out["tok_s_1"] = round(base, 2)
        out["tok_s_1_schema"] = round(rate(server.api_base, 1, args.tokens, True), 2)
        out[f"tok_s_{args.parallel}_parallel"] = round(rate(server.api_base, args.parallel, args.tokens, False), 2)
        out["ratio_schema_vs_plain"] = round(out["tok_s_1_schema"] / base, 2)
        out["ratio_parallel_vs_one"] = round(out[f"tok_s_{args.parallel}_parallel"] / base, 2)
        if args.stages:
            from cli.llm import check_backend

            out["stages"] = check_backend(server.litellm_model, server.api_base, 300.0, not args.no_schema)
        if args.synth:
            out["synth"] = synth_compare(server, args.synth, not args.no_schema, not args.no_few_shot)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
