"""Data-loss mistakes, tried as a new user would: each case runs the real `rods` command in a
subprocess and records its exit code, the seconds to its first line of output, and what was
kept (a check of the files after the command, not the command's own word).

    .venv/bin/python benchmarks/bench_mistakes_data.py               # every case (~4 min on 2 cores)
    .venv/bin/python benchmarks/bench_mistakes_data.py --no-train    # without the trainer cases (~1 min)

Cases marked `#25` are the issue's own list (part A: data that a command destroyed); the others
are further mistakes of the same kind. A case passes when the exit code is the expected one, no
traceback is printed, and its check of the files holds. A private redis-server serves the buffer
cases; the trainer cases use a tiny locally built policy (CPU). Prints a Markdown table and
writes it, with the command and the machine, to benchmarks/results/mistakes-data.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent / "rods"
RODS = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "cli"]
SEED = "multi_turn_base_5"

TRAIN_TOML = """
[policy]
init_from = "{policy}"
device = "cpu"
[tasks]
subset = "demo"
[rollout]
group_size = 2
tasks_per_step = 2
max_new_tokens = 8
max_total_tokens = 200
compact_tools = true
[optim]
lr = {lr}
micro_batch = 2
[loop]
mode = "static"
steps = {steps}
checkpoint_every = 1
keep_checkpoints = 1
steps_per_epoch = 2
"""


@dataclass
class Case:
    name: str
    what: str  # the mistake, as a user would describe it
    argv: list[str]  # after `rods`; {d} is the case's directory, {redis} the private Redis URL
    code: int  # the exit code a careful tool gives
    setup: Callable[[Path], None] = lambda d: None
    kept: Callable[[Path, str], tuple[bool, str]] = lambda d, out: (True, "-")  # (holds, what was kept)
    issue: bool = False  # one of issue #25's own cases
    train: bool = False  # needs torch and the tiny policy
    interrupt_when: Callable[[Path], bool] | None = None  # send SIGINT once this holds
    cwd: str = "{d}"


def _bfcl(task_id: str) -> str:
    from rods.tasks import get_bfcl_task

    return json.dumps(get_bfcl_task(task_id).to_bfcl())


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else -1


def _same(path: Path, before: bytes) -> tuple[bool, str]:
    ok = path.exists() and path.read_bytes() == before
    return ok, f"{path.name} unchanged ({len(before)} bytes)" if ok else f"{path.name} CHANGED"


def cases(policy: Path | None) -> list[Case]:
    from rods.tasks import split_ids

    train = sorted((t for t in split_ids("train") if t.startswith("multi_turn_base_")), key=lambda t: int(t.rsplit("_", 1)[1]))
    a, b, c3 = train[:3]  # training seeds: they pass every gate and may be imported
    scores = json.dumps({"task_id": a, "calls": [[]]}) + "\n"
    seeds = "\n".join(_bfcl(t) for t in (a, b, SEED)) + "\n"
    cut = _bfcl(a) + "\n" + _bfcl(b) + "\n" + _bfcl(c3)[:300]
    broken = _bfcl(a) + "\n{broken\n" + _bfcl(b) + "\n"
    held: dict[str, bytes] = {}

    def put(name: str, text: str | bytes) -> Callable[[Path], None]:
        def f(d: Path) -> None:
            p = d / name
            p.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode() if isinstance(text, str) else text
            p.write_bytes(data)
            held[str(d / name)] = data
        return f

    def same(name: str) -> Callable[[Path, str], tuple[bool, str]]:
        return lambda d, out: _same(d / name, held[str(d / name)])

    def both(*fs: Callable[[Path], None]) -> Callable[[Path], None]:
        return lambda d: [f(d) for f in fs] and None

    def repo(d: Path) -> None:
        put("rods/__init__.py", "# the package\n")(d)
        put("README.md", "readme\n")(d)

    def repo_kept(d: Path, out: str) -> tuple[bool, str]:
        ok = (d / "rods" / "__init__.py").exists() and sorted(p.name for p in d.iterdir()) == ["README.md", "rods"]
        return ok, "rods/ and README.md untouched, nothing added" if ok else "the directory CHANGED"

    def synth_twice(d: Path) -> None:
        subprocess.run([*RODS, "synth", "run", "--seed", SEED, "--n", "2", "--out", "v.jsonl"], cwd=d,
                       capture_output=True, env=ENV, check=True)  # fmt: skip
        held[str(d / "v.jsonl")] = (d / "v.jsonl").read_bytes()

    def appended(d: Path, out: str) -> tuple[bool, str]:
        text = (d / "v.jsonl").read_bytes()
        ids = [json.loads(x)["id"] for x in text.decode().splitlines()]
        ok = text.startswith(held[str(d / "v.jsonl")]) and len(ids) == len(set(ids))
        return ok, f"the 2 earlier variants kept, {len(ids) - 2} new appended, no duplicate id" if ok else "LOST or duplicated"

    c = [
        # ---- issue #25's own cases
        Case("demo-run-dir-repo", "rods demo --run-dir . in the repository root", ["demo", "--run-dir", "."], 2,
             repo, repo_kept, issue=True),
        Case("score-out-is-input", "rods env score F --out F", ["env", "score", "c.jsonl", "--out", "c.jsonl"], 2,
             put("c.jsonl", scores), same("c.jsonl"), issue=True),
        Case("synth-out-is-tasks", "rods synth run --tasks F --out F",
             ["synth", "run", "--seed", SEED, "--tasks", "s.jsonl", "--out", "s.jsonl"], 2,
             put("s.jsonl", seeds), same("s.jsonl"), issue=True),
        Case("synth-rerun-appends", "rods synth run twice into one --out (help says it appends)",
             ["synth", "run", "--seed", SEED, "--n", "2", "--out", "v.jsonl", "--rng-seed", "5"], 0,
             synth_twice, appended, issue=True),
        Case("export-run-typo", "rods buffer export GOOD.jsonl --run <typo>",
             ["buffer", "export", "good.jsonl", "--redis-url", "{redis}", "--run", "bench-typo"], 2,
             put("good.jsonl", seeds), same("good.jsonl"), issue=True),
        Case("stats-run-typo", "rods buffer stats --run <typo>",
             ["buffer", "stats", "--redis-url", "{redis}", "--run", "bench-typo"], 2, issue=True),
        Case("validate-cut-last-line", "synth validate on a file whose last line was cut off (disk full)",
             ["synth", "validate", "cut.jsonl", "--json"], 0, put("cut.jsonl", cut),
             lambda d, out: ('"tasks": 2' in out and "warning:" in out, "2 complete lines read, 1 warning line"),
             issue=True),
        Case("import-cut-last-line", "buffer import of a file whose last line was cut off",
             ["buffer", "import", "cut.jsonl", "--redis-url", "{redis}", "--run", "bench-cut"], 0,
             put("cut.jsonl", cut), lambda d, out: ("imported 2" in out, "2 tasks imported, 1 warning line"), issue=True),
        Case("synth-ctrl-c", "Ctrl-C in rods synth run --n 500",
             ["synth", "run", "--seed", SEED, "--n", "500", "--out", "v.jsonl"], 130,
             kept=lambda d, out: ("interrupted: kept" in out and "--rng-seed" in out and _lines(d / "v.jsonl") >= 2,
                                  f"{_lines(d / 'v.jsonl')} whole variants in v.jsonl; the resume command printed"),
             interrupt_when=lambda d: _lines(d / "v.jsonl") >= 2, issue=True),
        # ---- further mistakes of the same kind
        Case("score-out-relative", "env score F --out ./sub/../F", ["env", "score", "c.jsonl", "--out", "./sub/../c.jsonl"], 2,
             both(put("c.jsonl", scores), lambda d: (d / "sub").mkdir()), same("c.jsonl")),
        Case("score-out-symlink", "env score F --out LINK (a symlink to F)", ["env", "score", "c.jsonl", "--out", "link.jsonl"], 2,
             both(put("c.jsonl", scores), lambda d: os.symlink(d / "c.jsonl", d / "link.jsonl")), same("c.jsonl")),
        Case("score-out-hardlink", "env score F --out H (a hard link to F)", ["env", "score", "c.jsonl", "--out", "h.jsonl"], 2,
             both(put("c.jsonl", scores), lambda d: os.link(d / "c.jsonl", d / "h.jsonl")), same("c.jsonl")),
        Case("score-stops-midway", "env score into an existing --out; a binary line stops the run",
             ["env", "score", "c.jsonl", "--out", "old.jsonl"], 2,
             both(put("c.jsonl", scores + "\x00bin\n"), put("old.jsonl", "earlier results\n")), same("old.jsonl")),
        Case("synth-tasks-symlink", "synth run --tasks F --out LINK-to-F",
             ["synth", "run", "--seed", SEED, "--tasks", "s.jsonl", "--out", "l.jsonl"], 2,
             both(put("s.jsonl", seeds), lambda d: os.symlink(d / "s.jsonl", d / "l.jsonl")), same("s.jsonl")),
        Case("synth-out-cut-off", "synth run --out F where F's last line was cut off",
             ["synth", "run", "--seed", SEED, "--out", "cut.jsonl"], 2, put("cut.jsonl", cut), same("cut.jsonl")),
        Case("synth-out-not-jsonl", "synth run --out README.md (a text file, not JSONL)",
             ["synth", "run", "--seed", SEED, "--out", "README.md"], 2, put("README.md", "# my notes\nkeep me\n"),
             same("README.md")),
        Case("synth-out-dir", "synth run --out DIR", ["synth", "run", "--seed", SEED, "--out", "adir"], 2,
             lambda d: (d / "adir").mkdir()),
        Case("synth-out-no-dir", "synth run --out missing/dir/v.jsonl", ["synth", "run", "--seed", SEED, "--out", "no/v.jsonl"], 2,
             kept=lambda d, out: (not (d / "no").exists(), "nothing created")),
        Case("synth-rerun-same-seed", "synth run twice with the same --rng-seed into one --out",
             ["synth", "run", "--seed", SEED, "--n", "2", "--out", "v.jsonl"], 0, synth_twice, appended),
        Case("validate-middle-broken", "synth validate on a file with a broken line in the middle",
             ["synth", "validate", "m.jsonl"], 2,
             put("m.jsonl", broken), lambda d, out: ("m.jsonl:2" in out, "error names m.jsonl:2")),
        Case("import-middle-broken", "buffer import of a file with a broken line in the middle",
             ["buffer", "import", "m.jsonl", "--redis-url", "{redis}", "--run", "bench-mid"], 2,
             put("m.jsonl", broken), lambda d, out: ("m.jsonl:2" in out and "imported" not in out, "nothing imported; error names m.jsonl:2")),
        Case("import-twice", "buffer import of the same file twice",
             ["buffer", "import", "s.jsonl", "--redis-url", "{redis}", "--run", "bench-import"], 0, put("s.jsonl", seeds),
             lambda d, out: ("imported 0, 3 already present" in out, "the run unchanged: 0 imported, 3 already present")),
        Case("score-out-dir", "env score F --out DIR", ["env", "score", "c.jsonl", "--out", "adir"], 2,
             both(put("c.jsonl", scores), lambda d: (d / "adir").mkdir()), same("c.jsonl")),
        Case("export-to-dir", "buffer export DIR", ["buffer", "export", "adir", "--redis-url", "{redis}", "--run", "bench-import"], 2,
             lambda d: (d / "adir").mkdir()),
        Case("demo-home-like", "rods demo --run-dir ~ (a directory full of the user's files)", ["demo", "--run-dir", "."], 2,
             both(put("notes.txt", "mine\n"), put("photos/a.jpg", b"\xff\xd8")), same("notes.txt")),
        Case("demo-run-dir-file", "rods demo --run-dir FILE", ["demo", "--run-dir", "f.txt"], 2,
             put("f.txt", "mine\n"), same("f.txt")),
        Case("demo-on-train-run", "rods demo --run-dir runs/train (a training run's directory)", ["demo", "--run-dir", "run"], 2,
             both(put("run/config.json", "{}"), put("run/metrics.jsonl", '{"step": 1}\n')), same("run/metrics.jsonl")),
        Case("demo-reuse-foreign-rods", "rods demo --reuse-dir on a directory with its own rods/", ["demo", "--run-dir", ".", "--reuse-dir"], 2,
             repo, repo_kept),
        Case("sft-over-demo-cache", "rods sft --run-dir runs/demo (the demo's cached warm start)",
             ["sft", "--run-dir", "runs/demo", "--steps", "1"], 2,
             put("runs/demo/sft/best/config.json", "the demo's model\n"), same("runs/demo/sft/best/config.json")),
        Case("sft-locked", "rods sft while another sft holds the same directory", ["sft", "--run-dir", "r", "--steps", "1"], 2,
             lambda d: LOCKS.append(_hold(d / "r" / "sft")),
             lambda d, out: ("in use by pid" in out, "refused; the holder named")),
    ]
    if policy is not None:
        def toml(name: str, steps: int, lr: str = "0.001") -> Callable[[Path], None]:
            return put(name, TRAIN_TOML.format(policy=policy, steps=steps, lr=lr))

        def trained(d: Path) -> None:
            toml("a.toml", 1)(d)
            toml("b.toml", 2, "0.0005")(d)
            toml("c.toml", 2)(d)
            subprocess.run([*RODS, "train", "--config", "a.toml", "--run-dir", "run"], cwd=d, env=ENV,
                           capture_output=True, check=True)  # fmt: skip
            held[str(d / "run/config.json")] = (d / "run" / "config.json").read_bytes()
            held[str(d / "run/metrics.jsonl")] = (d / "run" / "metrics.jsonl").read_bytes()

        def trained_trl(d: Path) -> None:
            toml("a.toml", 1)(d)
            toml("b.toml", 2, "0.0005")(d)
            subprocess.run([*RODS, "train", "--trainer", "trl", "--config", "a.toml", "--run-dir", "run"], cwd=d,
                           env=ENV, capture_output=True, check=True)  # fmt: skip
            held[str(d / "run/config.json")] = (d / "run" / "config.json").read_bytes()

        c += [
            Case("train-trl-resume-other-config", "rods train --trainer trl: resume with another learning rate",
                 ["train", "--trainer", "trl", "--config", "b.toml", "--run-dir", "run"], 2, trained_trl,
                 lambda d, out: (same("run/config.json")(d, out)[0] and "optim.lr: 0.001 -> 0.0005" in out,
                                 "config.json kept (TRL overwrote it before); the field named"), train=True),
            Case("train-trl-two-at-once", "a second rods train --trainer trl on a run directory in use",
                 ["train", "--trainer", "trl", "--config", "a.toml", "--run-dir", "run"], 2,
                 both(toml("a.toml", 1), lambda d: LOCKS.append(_hold(d / "run"))),
                 lambda d, out: ("in use by pid" in out and not (d / "run" / "metrics.jsonl").exists(),
                                 "nothing written; the holder named"), train=True),
            Case("train-resume-other-config", "resume a run with another learning rate", ["train", "--config", "b.toml", "--run-dir", "run"], 2,
                 trained, lambda d, out: (same("run/config.json")(d, out)[0] and "optim.lr: 0.001 -> 0.0005" in out,
                                          "config.json and metrics kept; the field named"), issue=True, train=True),
            Case("train-resume-allowed", "resume with another config, --allow-config-change",
                 ["train", "--config", "b.toml", "--run-dir", "run", "--allow-config-change"], 0, trained,
                 lambda d, out: ((d / "run/configs/until_step_000001.json").read_bytes() == held[str(d / "run/config.json")],
                                 "old config in configs/until_step_000001.json"), train=True),
            Case("train-already-done", "rods train --steps 1 on a run already at step 1", ["train", "--config", "a.toml", "--run-dir", "run"], 0,
                 trained, lambda d, out: ("already at step 1; nothing to do" in " ".join(out.split()) and same("run/metrics.jsonl")(d, out)[0],
                                          "metrics.jsonl and summary unchanged"), issue=True, train=True),
            Case("train-two-at-once", "a second rods train on a run directory in use", ["train", "--config", "a.toml", "--run-dir", "run"], 2,
                 both(toml("a.toml", 1), lambda d: LOCKS.append(_hold(d / "run"))),
                 lambda d, out: ("in use by pid" in out and not (d / "run" / "metrics.jsonl").exists(), "nothing written; the holder named"),
                 issue=True, train=True),
            Case("train-ctrl-c", "Ctrl-C in rods train", ["train", "--config", "c50.toml", "--run-dir", "run"], 130,
                 toml("c50.toml", 50), lambda d, out: ("checkpoint at step" in out and "resume with: rods train" in out,
                                                       "the last checkpoint and the resume command printed"),
                 interrupt_when=lambda d: (d / "run" / "checkpoints" / "latest").exists(), train=True),
            Case("eval-then-rotate", "rods eval a checkpoint, then resume training (rotation keeps 1)",
                 ["eval", "--checkpoint", "run/checkpoints/step_000001", "--limit", "1", "--config", "a.toml"], 0, trained,
                 lambda d, out: _eval_survives(d), issue=True, train=True),
        ]
    return c


LOCKS: list[subprocess.Popen[str]] = []
ENV: dict[str, str] = {}


def _hold(run_dir: Path) -> subprocess.Popen[str]:
    code = "import sys,time; from rods.rundir import RunLock; l = RunLock(sys.argv[1], 'rods train (bench)').acquire(); print('held', flush=True); time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    p.stdout.readline()  # "held" (or nothing, on a version without run-dir locks: the case then shows it)
    return p


def _eval_survives(d: Path) -> tuple[bool, str]:
    res = d / "run" / "eval" / "step_000001-eval-train" / "eval.json"
    subprocess.run([*RODS, "train", "--config", "c.toml", "--run-dir", "run"], cwd=d, env=ENV, capture_output=True)
    ok = res.exists() and not (d / "run" / "checkpoints" / "step_000001").exists()
    return ok, "run/eval/step_000001-eval-train/eval.json kept after step_000001 was rotated away" if ok else "eval results LOST"


def run_case(case: Case, root: Path, redis_url: str, timeout_s: float = 300.0) -> dict[str, object]:
    d = root / case.name
    d.mkdir()
    case.setup(d)
    argv = [a.replace("{redis}", redis_url) for a in case.argv]
    t0 = time.monotonic()
    proc = subprocess.Popen([*RODS, *argv], cwd=case.cwd.replace("{d}", str(d)), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    first: list[float] = []
    out: list[str] = []

    def read() -> None:  # a thread: the first line's time, whatever the command does after it
        assert proc.stdout is not None
        for line in proc.stdout:
            if not first:
                first.append(time.monotonic() - t0)
            out.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    interrupted = False
    while proc.poll() is None:
        if time.monotonic() - t0 > timeout_s:  # e.g. an old version that starts the work it should refuse
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        if case.interrupt_when is not None and not interrupted and case.interrupt_when(d):
            proc.send_signal(signal.SIGINT)
            interrupted = True
        time.sleep(0.05)
    reader.join(timeout=10)
    text = "".join(out)
    for p in LOCKS:
        p.kill()
        p.wait()
    LOCKS.clear()
    holds, kept = case.kept(d, text)
    ok = proc.returncode == case.code and "Traceback" not in text and holds
    # the line that says what happened: an error/warning/interrupt line, else the last line
    lines = [x for x in text.splitlines() if x.strip()]
    said = next((x for x in lines if x.startswith(("error:", "interrupted:", "already at step"))), lines[-1] if lines else "")
    return {"case": case.name, "issue": case.issue, "what": case.what, "code": proc.returncode, "want": case.code,
            "first_s": first[0] if first else None, "kept": kept, "ok": ok, "said": said}  # fmt: skip


def read_before(path: Path | None) -> dict[str, str]:
    """case → 'exit N, ok|NO' from a table this script wrote for another version of the code."""
    if path is None:
        return {}
    out = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) >= 7 and cells[0] not in ("case", "---"):
            out[cells[0]] = f"exit {cells[3].split()[0]}, {'ok' if cells[6] == 'yes' else 'NO'}"
    return out


def table(rows: list[dict[str, object]], before: dict[str, str] | None = None) -> str:
    before = before or {}
    extra = " before the fix |" if before else ""
    head = (f"| case | #25 | the mistake | exit (want) | first line (s) | what was kept | ok | first words |{extra}\n"
            f"|---|---|---|---|---|---|---|---|{'---|' if before else ''}\n")  # fmt: skip
    body = ""
    for r in rows:
        said = str(r["said"]).replace("|", "\\|")
        said = said if len(said) <= 110 else said[:109] + "…"
        first = "-" if r["first_s"] is None else f"{r['first_s']:.1f}"
        body += (f"| {r['case']} | {'yes' if r['issue'] else ''} | {r['what']} | {r['code']} ({r['want']}) | {first} | "
                 f"{r['kept']} | {'yes' if r['ok'] else 'NO'} | {said} |"
                 + (f" {before.get(str(r['case']), 'not run')} |" if before else "") + "\n")  # fmt: skip
    return head + body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-train", action="store_true", help="skip the cases that train (torch, ~3 min)")
    ap.add_argument("--only", default=None, help="run the cases whose name contains this")
    ap.add_argument("--before", type=Path, default=None,
                    help="a table this script wrote against older code: shown as a column")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a case is killed")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mistakes-data.md")
    args = ap.parse_args()
    from rods.store.server import RedisServer

    ENV.update({**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="rods-mistakes-"))
    try:
        policy = None
        if not args.no_train:
            from rods.tasks import load_split
            from trainer.chat import demo_subset
            from trainer.policy import build_tiny_policy

            policy = build_tiny_policy(root / "policy", seed=0, tasks=demo_subset(load_split("train"))[:8])
        with RedisServer() as server:
            ENV["REDIS_URL"] = server.url
            subprocess.run([*RODS, "buffer", "init", "--redis-url", server.url, "--run", "bench-import"], env=ENV,
                           capture_output=True, check=True)  # fmt: skip
            ENV["RODS_RUN"] = "bench-train"
            chosen = [c for c in cases(policy) if args.only is None or args.only in c.name]
            rows = []
            for case in chosen:
                rows.append(run_case(case, root, server.url, args.timeout))
                r = rows[-1]
                print(f"{r['case']:28s} exit {r['code']} (want {r['want']})  first line {r['first_s'] or 0:.1f}s  "
                      f"{'ok' if r['ok'] else 'FAILED'}  {r['kept']}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    md = table(rows, read_before(args.before))
    n_ok = sum(bool(r["ok"]) for r in rows)
    n_issue = sum(bool(r["issue"]) for r in rows)
    slowest = max((float(r["first_s"]) for r in rows if r["first_s"] is not None), default=0.0)  # type: ignore[arg-type]
    cmd = "benchmarks/bench_mistakes_data.py" + (" --no-train" if args.no_train else "") + (" --before FILE" if args.before else "")
    text = (f"# Data-loss mistakes (issue #25, part A)\n\n`{cmd}` on {platform.node()} "
            f"({os.cpu_count()} cores, Python {platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            f"{n_ok}/{len(rows)} cases as wanted ({n_issue} from the issue, {len(rows) - n_issue} further); slowest first "
            f"line {slowest:.1f} s. 'what was kept' is checked on the files after the command.\n\n{md}")  # fmt: skip
    if args.only is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(md)
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
