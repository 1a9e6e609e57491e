"""Config and start-up mistakes through the REAL `rods` entry point (a subprocess each): one
`error:` line, exit 2, no traceback, before any model loads. No service is needed: the Redis URLs
point at a loopback port where nothing listens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rods.config import redis_url_source
from rods.store.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def rods(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[int, str, str, float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RODS_", "REDIS_URL"))}
    full = {**base, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RODS_CONNECT_TIMEOUT_S": "2", **(env or {})}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=120)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


@pytest.fixture(scope="module")
def dead() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cfg")
    (d / "range.toml").write_text("[rollout]\ngroup_size = 1\n")
    (d / "typo.toml").write_text("[rollout]\ngruop_size = 4\n")
    (d / "section.toml").write_text("[optimizer]\nlr = 1e-5\n")
    (d / "tokens.toml").write_text("[rollout]\nmax_new_tokens = 2048\nmax_total_tokens = 1024\n")
    (d / "norollout.toml").write_text('[policy]\nmodel = "tiny"\ndevice = "cpu"\n')
    (d / "empty-model").mkdir()
    (d / "model.toml").write_text(f'[policy]\nmodel = "{d / "empty-model"}"\n')
    return d


CASES = {  # name: (args, env, words of the error line)
    "range": (["train", "--config", "{d}/range.toml"], {}, "rollout.group_size = 1: must be an integer from 2 to 1024"),
    "typo": (["train", "--config", "{d}/typo.toml"], {}, "did you mean rollout.group_size?"),
    "section": (["train", "--config", "{d}/section.toml"], {}, "did you mean [optim]?"),
    "tokens": (["train", "--config", "{d}/tokens.toml"], {}, "max_new_tokens (2048) must be below max_total_tokens (1024)"),
    "steps0": (["train", "--config", "configs/demo.toml", "--steps", "0"], {}, "--steps 0: loop.steps = 0"),
    "model": (["train", "--config", "{d}/model.toml"], {}, "is an empty directory"),
    "init-from": (["train", "--config", "configs/demo.toml", "--init-from", "{d}/nope"], {}, "--init-from '"),
    "no-file": (["train", "--config", "{d}/missing.toml"], {}, "no such TOML config file"),
    "experiment-train-config": (["experiment", "--config", "configs/demo.toml"], {}, "has no [experiment] section"),
    "worker-llm-no-model": (["worker"], {"RODS_SYNTH_BACKEND": "llm"}, "RODS_SYNTH_BACKEND=llm needs RODS_SYNTH_MODEL"),
    "worker-dead-redis": (["worker"], {"REDIS_URL": "{dead}"}, "cannot reach Redis at"),
    "train-dead-redis": (["train", "--config", "{d}/norollout.toml", "--run-dir", "{d}/run"], {"REDIS_URL": "{dead}"}, "cannot reach Redis at"),
    "demo-bad-config": (["demo", "--config", "{d}/range.toml", "--run-dir", "{d}/demo"], {}, "rollout.group_size = 1"),
}


@pytest.fixture(scope="module")
def results(files: Path, dead: str) -> dict[str, tuple[int, str, str, float]]:
    def fill(s: str) -> str:
        return s.replace("{d}", str(files)).replace("{dead}", dead)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(rods, [fill(a) for a in args], {k: fill(v) for k, v in env.items()})
            for name, (args, env, _) in CASES.items()
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_a_mistake_is_one_line_and_exit_2(name: str, results) -> None:
    code, out, err, _ = results[name]
    words = CASES[name][2]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, (out, err)
    assert len(errors) == 1 and words in errors[0], err
    assert "Traceback" not in out + err


def test_train_says_which_redis_first_and_which_defaults_it_runs_with(results, dead: str, files: Path) -> None:
    _, _, err, seconds = results["train-dead-redis"]
    lines = err.splitlines()
    assert lines[0] == f"redis: {dead} (from REDIS_URL), run 'default' (default)"
    assert lines[1].startswith(f"note: {files}/norollout.toml has no [tasks], [rollout], [optim], [loop]")
    assert "group_size=16" in lines[1] and "paper-sized" in lines[1]
    assert lines[2].startswith("error: cannot reach Redis at")
    assert seconds < 30
    assert not (files / "run").exists()  # nothing written before the checks


def test_worker_fails_within_the_connect_timeout(results) -> None:
    assert results["worker-dead-redis"][3] < 30


def test_demo_checks_its_config_before_it_starts_anything(results, files: Path) -> None:
    assert not (files / "demo").exists()


def test_the_redis_source_is_named() -> None:
    assert redis_url_source({}) == "the default: REDIS_URL is unset"
    assert redis_url_source({"REDIS_URL": "redis://x:1/0"}) == "from REDIS_URL"
    assert redis_url_source({"RODS_REDIS_URL": "redis://x:1/0"}) == "from RODS_REDIS_URL"
