"""Ordinary mistakes in run configs, model paths, flags and Redis settings, through the real `rods`.

    .venv/bin/python benchmarks/bench_mistakes_config.py            # every case, one at a time (~2 min on 2 cores)
    .venv/bin/python benchmarks/bench_mistakes_config.py --only typo   # the cases whose name contains "typo"

Each case runs `python -m cli …` in a subprocess, in a sandbox directory of its own that holds an
earlier run directory (`prev/`: a metrics.jsonl, a config.json and a checkpoint marker), with
REDIS_URL pointing at a loopback port where nothing listens (no case may reach the Redis that may
listen on 6379). Measured per case: the exit code, the seconds from the start of the process to
its first line of output (stdout or stderr), whether a Python traceback was printed, and what was
kept: the sandbox's files before and after, by content hash ("all kept" = every file there before
is unchanged and nothing was added). Target (issue #25): no traceback, every first line within
5 s, within 30 s where a network timeout is the cause.

Prints a Markdown table and writes it, with the command and the machine, to
benchmarks/results/mistakes-config.md (or --out).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rods.store.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "configs" / "demo.toml").read_text()


@dataclass(frozen=True)
class Case:
    name: str  # what the user got wrong
    args: tuple[str, ...]  # `rods` arguments; {d} is the sandbox
    files: dict[str, str | bytes] = field(default_factory=dict)  # sandbox files to write first
    env: dict[str, str] = field(default_factory=dict)  # {dead}, {http} are filled in
    network: bool = False  # a network timeout may be the cause (target 30 s, not 5 s)


def toml(section: str, body: str) -> dict[str, str]:
    """A demo config with one line of `section` replaced or added: a realistic file."""
    lines, out, placed, current = DEMO.splitlines(), [], False, ""
    key = body.split("=", 1)[0].strip()
    for line in lines:
        if line.startswith("["):
            if current == section and not placed:
                out.append(body)
                placed = True
            current = line.strip("[] ")
        elif current == section and line.split("=", 1)[0].strip() == key:
            out.append(body)
            placed = True
            continue
        out.append(line)
    if not placed:
        out += ([] if current == section else [f"[{section}]"]) + [body]
    return {"c.toml": "\n".join(out) + "\n"}


def train(*extra: str) -> tuple[str, ...]:
    return ("train", "--config", "{d}/c.toml", "--run-dir", "{d}/run", *extra)


MODEL_FILES = {"m/config.json": "{}"}
CASES: list[Case] = [
    # --- values out of range / of the wrong type
    Case("group_size = 1 (GRPO needs 2)", train(), toml("rollout", "group_size = 1")),
    Case('group_size = "6" (quoted)', train(), toml("rollout", 'group_size = "6"')),
    Case("tasks_per_step = 0", train(), toml("rollout", "tasks_per_step = 0")),
    Case("steps = -5", train(), toml("loop", "steps = -5")),
    Case("ppo_epochs = 0", train(), toml("optim", "ppo_epochs = 0")),
    Case("micro_batch = 0", train(), toml("optim", "micro_batch = 0")),
    Case("max_new_tokens above max_total_tokens", train(), toml("rollout", "max_new_tokens = 2048")),
    Case("lr = 0", train(), toml("optim", "lr = 0")),
    Case('lr = "2e-5" (quoted)', train(), toml("optim", 'lr = "2e-5"')),
    Case("lr = 20 (meant 2e-5)", train(), toml("optim", "lr = 20")),
    Case("clip_low = 1.2", train(), toml("optim", "clip_low = 1.2")),
    Case("clip_high = -0.28", train(), toml("optim", "clip_high = -0.28")),
    Case("kl_coef = -0.01", train(), toml("optim", "kl_coef = -0.01")),
    Case("temperature = 0", train(), toml("rollout", "temperature = 0")),
    Case("top_p = 7 (meant 0.7)", train(), toml("rollout", "top_p = 7")),
    Case("request_budget = -1", train(), toml("loop", "request_budget = -1")),
    Case("checkpoint_every = 0", train(), toml("loop", "checkpoint_every = 0")),
    Case("betas = [0.9, 1.1]", train(), toml("optim", "betas = [0.9, 1.1]")),
    Case("pool beta = 20 (a percentage)", train(), toml("pool", "beta = 20")),
    Case("pool retire_hard_below above retire_mastered_above", train(),
         toml("pool", "retire_hard_below = 0.9\nretire_mastered_above = 0.5")),
    Case('categories = ["base", "longcontext"]', train(), toml("tasks", 'categories = ["base", "longcontext"]')),
    Case('device = "gpu"', train(), toml("policy", 'device = "gpu"')),
    Case('engine = "vllm" with device = "cpu"', train(), toml("rollout", 'engine = "vllm"')),
    Case('loop.run = "my run" (a space)', train(), toml("loop", 'run = "my run"')),
    Case('bf16 = "no" (a string)', train(), toml("policy", 'bf16 = "no"')),
    # --- typos and structure
    Case("section typo [rollot]", train(), {"c.toml": DEMO.replace("[rollout]", "[rollot]")}),
    Case("field typo gruop_size", train(), {"c.toml": DEMO.replace("group_size", "gruop_size")}),
    Case("TRL's name learning_rate for lr", train(), {"c.toml": DEMO.replace("lr = 2e-5", "learning_rate = 2e-5")}),
    Case("TRL's name num_generations for group_size", train(), {"c.toml": DEMO.replace("group_size", "num_generations")}),
    Case("a field in the wrong section (lr under [rollout])", train(), toml("rollout", "lr = 2e-5")),
    Case("steps = 12 above every section", train(), {"c.toml": "steps = 12\n" + DEMO}),
    Case("rollout = 6 instead of a section", train(), {"c.toml": "rollout = 6\n"}),
    Case("TOML syntax: unclosed string", train(), {"c.toml": DEMO.replace('model = "tiny"', 'model = "tiny')}),
    Case("--config names a missing file", train(), {}),
    Case("--config names a directory", ("train", "--config", "{d}", "--run-dir", "{d}/run")),
    Case("--config file is not UTF-8", train(), {"c.toml": b"[loop]\nsteps = 3 # \xff\xfe\n"}),
    Case("a config without [rollout] (runs paper-sized defaults)", train(),
         {"c.toml": '[policy]\nmodel = "tiny"\ndevice = "cpu"\n'}, network=True),
    # --- model paths
    Case("policy.model: no such directory", train(), toml("policy", 'model = "{d}/nope"')),
    Case("policy.model: an empty directory", train(), {**toml("policy", 'model = "{d}/m"'), "m/.keep": ""}),
    Case("policy.model: only a config.json", train(), {**toml("policy", 'model = "{d}/m"'), **MODEL_FILES}),
    Case("policy.model: a run directory", train(),
         {**toml("policy", 'model = "{d}/prev"'), "prev/sft/best/config.json": "{}", "prev/sft/best/model.safetensors": ""}),
    Case('policy.model = "gemma-3-270M" (case)', train(), toml("policy", 'model = "gemma-3-270M"')),
    Case("--init-from: no such directory", train("--init-from", "{d}/nope"), toml("policy", 'model = "tiny"')),
    Case("--init-from: a run without a checkpoint", train("--init-from", "{d}/prev"), toml("policy", 'model = "tiny"')),
    # --- flags
    Case("--steps 0", train("--steps", "0"), toml("policy", 'model = "tiny"')),
    Case("--steps ten", train("--steps", "ten"), toml("policy", 'model = "tiny"')),
    Case("--mode rod", train("--mode", "rod"), toml("policy", 'model = "tiny"')),
    Case("--trainer trll", train("--trainer", "trll"), toml("policy", 'model = "tiny"')),
    # --- experiment files
    Case("rods experiment given a train config", ("experiment", "--config", "{d}/c.toml", "--out", "{d}/exp"),
         {"c.toml": DEMO}),
    Case("experiment eval_points = 0", ("experiment", "--config", "{d}/c.toml", "--out", "{d}/exp"),
         {"c.toml": "[experiment]\neval_points = 0\n" + DEMO}),
    Case('experiment arms = ["rods", "static", "unifrom"]', ("experiment", "--config", "{d}/c.toml", "--out", "{d}/exp"),
         {"c.toml": '[experiment]\narms = ["rods", "static", "unifrom"]\n' + DEMO}),
    Case("experiment section typo [experimnt]", ("experiment", "--config", "{d}/c.toml", "--out", "{d}/exp"),
         {"c.toml": "[experimnt]\n" + DEMO}),
    # --- Redis and the services
    Case("rods train, nothing listens at REDIS_URL", train(), toml("policy", 'model = "tiny"'), network=True),
    Case('REDIS_URL = "localhost:6379" (no scheme)', train(), toml("policy", 'model = "tiny"'),
         env={"REDIS_URL": "localhost:6379"}),
    Case("REDIS_URL names a web server", train(), toml("policy", 'model = "tiny"'), env={"REDIS_URL": "{http}"},
         network=True),
    Case('RODS_CONNECT_TIMEOUT_S = "5s"', train(), toml("policy", 'model = "tiny"'), env={"RODS_CONNECT_TIMEOUT_S": "5s"}),
    Case("rods worker, nothing listens at REDIS_URL", ("worker",), network=True),
    Case("rods worker, llm backend without a model", ("worker",), env={"RODS_SYNTH_BACKEND": "llm"}),
    Case('RODS_SYNTH_BACKEND = "LLM" (case)', ("worker",), env={"RODS_SYNTH_BACKEND": "LLM"}),
    Case("rods demo with a bad config", ("demo", "--config", "{d}/c.toml", "--run-dir", "{d}/demo"),
         toml("rollout", "group_size = 1")),
]

PREV = {  # an earlier run directory in every sandbox: nothing may touch it
    "prev/metrics.jsonl": '{"step": 1, "reward/mean": 0.25}\n',
    "prev/config.json": "{}",
    "prev/checkpoints/latest": "step_000001",
}


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }  # fmt: skip


def kept(before: dict[str, str], after: dict[str, str]) -> str:
    changed = [k for k in before if after.get(k) != before[k]]
    added = sorted(set(after) - set(before))
    if not changed and not added:
        return f"all kept ({len(before)} files)"
    parts = [f"changed {', '.join(changed)}"] if changed else []
    parts += [f"added {', '.join(added[:3])}{'…' if len(added) > 3 else ''}"] if added else []
    return "; ".join(parts)


@dataclass
class Result:
    case: Case
    code: int
    first_s: float
    first_line: str
    error_s: float  # seconds to the `error:` line (NaN: none)
    error_line: str
    traceback: bool
    kept: str


def run_case(case: Case, dead: str, http_url: str, timeout_s: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="rods-mistake-") as tmp:
        d = Path(tmp)
        for rel, content in {**PREV, **case.files}.items():
            path = d / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content.replace("{d}", str(d)))
        before = snapshot(d)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RODS_") and k != "REDIS_URL"}
        env.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "REDIS_URL": dead, "COLUMNS": "400"})  # fmt: skip
        env.update({k: v.replace("{dead}", dead).replace("{http}", http_url) for k, v in case.env.items()})
        args = [a.replace("{d}", str(d)) for a in case.args]
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=d, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        assert proc.stdout is not None
        lines: list[tuple[float, str]] = []  # (seconds since start, line) of every non-blank line
        chunks: list[bytes] = []

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if raw.strip():
                    lines.append((time.monotonic() - t0, raw.decode(errors="replace").strip()))
                chunks.append(raw)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        reader.join(5)
        output = b"".join(chunks).decode(errors="replace")
        first_s, line = lines[0] if lines else (float("nan"), "(no output)")
        error_s, error = next(((t, x) for t, x in lines if x.startswith("error:")), (float("nan"), ""))
        return Result(case, code, first_s, line.replace(str(d), "D"), error_s, error.replace(str(d), "D"),
                      "Traceback" in output, kept(before, snapshot(d)))  # fmt: skip


class _Http(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(400)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is killed (a hang)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mistakes-config.md")
    a = ap.parse_args()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http_url = f"redis://127.0.0.1:{server.server_address[1]}/0"
    cases = [c for c in CASES if a.only in c.name]
    # the reference, in the same run: `rods train --help` (Python, typer and the CLI imported, no work)
    ref = sorted(run_case(Case("reference", ("train", "--help")), dead, http_url, a.timeout).first_s for _ in range(3))[1]
    results = []
    t_all = time.monotonic()
    for i, case in enumerate(cases, 1):
        r = run_case(case, dead, http_url, a.timeout)
        results.append(r)
        print(f"[{i}/{len(cases)}] {r.code:>3} {r.first_s:5.1f}s {case.name}", file=sys.stderr, flush=True)
    server.shutdown()
    wall = time.monotonic() - t_all
    ok = [r for r in results if not r.traceback and r.code in (1, 2) and r.first_s < 5
          and r.error_s < (30 if r.case.network else 5) and r.kept.startswith("all kept")]  # fmt: skip
    lines = [
        "# Config, model-path, flag and Redis mistakes (issue #25, part B)",
        "",
        f"Command: `python benchmarks/bench_mistakes_config.py` ({wall:.0f} s, {len(results)} cases one at a "
        f"time) on {platform.machine()} with {os.cpu_count()} CPUs, Python {platform.python_version()}. Each case "
        "runs `python -m cli …` in its own sandbox holding an earlier run directory; REDIS_URL points at a "
        "loopback port where nothing listens. 'first line' is the time from the process start to its first "
        "line of output; 'kept' compares every file of the sandbox before and after by sha256.",
        "",
        f"**{len(ok)}/{len(results)}** meet the target (exit 1 or 2, no traceback, first line < 5 s, the `error:` "
        f"line < 5 s or < 30 s where a network timeout is the cause (net), everything kept). Tracebacks: "
        f"{sum(r.traceback for r in results)}. Slowest first line {max(r.first_s for r in results):.1f} s, slowest "
        f"error line {max(r.error_s for r in results):.1f} s; the reference, `rods train --help`'s first line in the "
        f"same run (median of 3), {ref:.1f} s: the slowest error line is {max(r.error_s for r in results) / ref:.1f}× it.",
        "",
        "| # | mistake | exit | first line (s) | error line (s) | traceback | kept | first line; the error line when it is not the first |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        shown = [r.first_line] + ([r.error_line] if r.error_line and r.error_line != r.first_line else [])
        text = " ⏎ ".join(f"`{x if len(x) <= 220 else x[:219] + '…'}`" for x in shown).replace("|", "\\|")
        lines.append(
            f"| {i} | {r.case.name} | {r.code} | {r.first_s:.1f} | {r.error_s:.1f}{' (net)' if r.case.network else ''} | "
            f"{'yes' if r.traceback else 'no'} | {r.kept} | {text} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if not a.only:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(table)
        print(f"written to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
