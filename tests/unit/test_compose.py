"""compose.yaml and the Dockerfile, checked without a Docker engine.

Every command a `rods` image runs is a real `rods` entry point with real options; every
environment variable set for it is read by the settings (or by litellm / huggingface, named
below); every named volume, dependency and config file exists.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import click
import pytest
import typer
import yaml
from typer.core import TyperGroup

from cli.app import app
from rods.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# read by litellm / huggingface / flower itself
THIRD_PARTY_ENV = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HF_HUB_OFFLINE", "FLOWER_BASIC_AUTH"}
ENTRYPOINT_ENV = {"RODS_FLOWER_PORT"}  # read by flower's entrypoint script (checked below)
# commands a service names that another branch adds: checked once they exist (`rods llm serve`)
VLLM_PIN = "0.33.0"
# vllm 0.33.0's own pins, read from its wheel's METADATA (pip download --no-deps vllm==0.33.0)
VLLM_REQUIRES = {"torch": "==2.14.0", "transformers": ">=5.16.1,<5.21.0"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _settings_env_names() -> set[str]:
    names = {f"RODS_{name.upper()}" for name in Settings.model_fields}
    return names | {"REDIS_URL"}


def _rods_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if str(s.get("image", "")).startswith("rods:")}


def test_expected_services_exist():
    services = _compose()["services"]
    assert {"redis", "dispatcher", "synth-worker", "trainer", "trainer-cpu", "trl-vllm", "synth-llm",
            "synth-llamacpp", "flower"} <= set(services)
    assert "appendonly" in " ".join(services["redis"]["command"])
    assert services["redis"]["healthcheck"]["test"]
    assert "replicas" not in str(services["synth-worker"])  # scaled with --scale, not pinned
    gpu = services["trainer"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["synth-llm"]["profiles"] == ["llm"]
    assert services["synth-llamacpp"]["profiles"] == ["llamacpp"]
    assert services["trainer-cpu"]["profiles"] == ["cpu"]
    assert services["trainer"]["profiles"] == services["trl-vllm"]["profiles"] == ["gpu"]


def test_a_plain_or_cpu_up_starts_nothing_that_needs_a_gpu():
    """`docker compose up` and `--profile cpu up` build only the cpu image and reserve no GPU."""
    services = _compose()["services"]
    for profile in (None, "cpu"):
        started = {n: s for n, s in services.items() if "profiles" not in s or profile in s["profiles"]}
        assert "synth-worker" in started and ("trainer-cpu" in started) == (profile == "cpu")
        for name, svc in started.items():
            assert "deploy" not in svc, f"{name} reserves devices on a CPU stack"
            assert svc.get("build", {}).get("target", "cpu") == "cpu", name
            assert not str(svc.get("image", "")).startswith(("vllm/", "nvidia/")), name


def test_every_rods_command_is_a_real_entry_point_with_real_options():
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    checked = 0
    for name, svc in _rods_services(_compose()).items():
        if "command" not in svc:
            continue
        argv = svc["command"]
        cmd = root.get_command(ctx, argv[0])
        if isinstance(cmd, click.Group | TyperGroup) and len(argv) > 1 and not argv[1].startswith("-"):
            cmd = cmd.get_command(ctx, argv[1])
        assert cmd is not None, f"{name}: `rods {argv[0]}` is not a command"
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for arg in argv[1:]:
            if arg.startswith("--"):
                assert arg.split("=")[0] in opts, f"{name}: `rods {argv[0]}` has no option {arg}"
        checked += 1
    assert checked >= 3


def test_flower_entrypoint_names_the_celery_app_and_needs_basic_auth():
    flower = _compose()["services"]["flower"]
    script = " ".join(flower["entrypoint"])
    module = re.search(r"exec celery -A (\S+) flower", script).group(1)
    app_obj = importlib.import_module(module).app
    assert app_obj.main == "rods"
    assert 'test -n "$$FLOWER_BASIC_AUTH" ||' in script and "exit 2" in script
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    # host networking: published ports do nothing, so Flower itself binds the loopback only
    assert "--address=127.0.0.1" in script and "ports" not in flower
    assert '--port="$$RODS_FLOWER_PORT"' in script and "RODS_FLOWER_PORT" in flower["environment"]
    assert "flower==2.0.1" in (ROOT / "Dockerfile").read_text()  # pinned


def test_environment_is_read_by_the_settings():
    compose = _compose()
    known = _settings_env_names() | THIRD_PARTY_ENV | ENTRYPOINT_ENV
    anchor = compose["x-rods-env"]
    for key in anchor:
        assert key in known, f"x-rods-env sets {key}, which nothing reads"
    for name, svc in _rods_services(compose).items():
        for key in svc.get("environment", {}):
            assert key in known, f"{name} sets {key}, which nothing reads"


def test_volumes_dependencies_and_ports_are_declared():
    compose = _compose()
    declared = set(compose.get("volumes", {}))
    services = compose["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith(("/", ".")):
                assert source in declared, f"{name} uses undeclared volume {source}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        # every service on the host's network (hosts without a bridge); servers bind 127.0.0.1
        assert svc.get("network_mode") == "host", f"{name} is not on host networking"
        assert "ports" not in svc, f"{name}: published ports do nothing under host networking"


def test_trainer_config_exists_and_loads():
    from trainer.config import load_config

    argv = _compose()["services"]["trainer"]["command"]
    path = argv[argv.index("--config") + 1]
    local = ROOT / path.removeprefix("/app/")
    cfg = load_config(local)
    assert cfg.rollout.engine == "vllm" and cfg.rollout.group_size == 16
    assert cfg.rollout.tasks_per_step == 32 and cfg.optim.lr == 1e-6 and cfg.optim.kl_coef == 0.01


def test_dockerfile_targets_and_sources():
    text = (ROOT / "Dockerfile").read_text()
    targets = set(re.findall(r"^FROM \S+ AS ([\w-]+)$", text, re.M))
    assert {"cpu", "gpu"} <= targets
    compose = _compose()
    for svc in compose["services"].values():
        build = svc.get("build")
        if build:
            assert build["target"] in targets
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in src.split():
            assert (ROOT / item).exists(), f"Dockerfile copies missing {item}"


def test_redis_is_private_password_protected_and_never_evicts():
    compose = _compose()
    redis = compose["services"]["redis"]
    argv = redis["command"]
    # host networking: its own port on the loopback, never the default one another Redis holds
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "${RODS_REDIS_PORT:-6390}"
    assert redis["environment"]["RODS_REDIS_PORT"] == "${RODS_REDIS_PORT:-6390}"
    assert argv[argv.index("--requirepass") + 1] == "${REDIS_PASSWORD:-}"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert argv[argv.index("--maxmemory") + 1].startswith("${REDIS_MAXMEMORY:-")
    check = " ".join(redis["healthcheck"]["test"])
    assert "REDISCLI_AUTH" in check and '-p "$$RODS_REDIS_PORT"' in check  # this stack's server
    assert 'test "$$pid" = 1' in check  # and only if it is this container's own (PID 1)
    url = compose["x-rods-env"]["REDIS_URL"]
    assert url == "redis://:${REDIS_PASSWORD:-}@127.0.0.1:${RODS_REDIS_PORT:-6390}/0"
    # an empty password gives `redis://:@127.0.0.1:6390/0`, which our settings and clients accept
    bare = url.replace("${REDIS_PASSWORD:-}", "").replace("${RODS_REDIS_PORT:-6390}", "6390")
    assert Settings(redis_url=bare).redis_url == "redis://:@127.0.0.1:6390/0"


def test_restart_policies_and_waiting_for_the_model_server():
    services = _compose()["services"]
    # a bad setting exits 2: at most 3 restarts, never a loop; the trainers resume from checkpoints
    for name in ("trainer", "trainer-cpu", "trl-vllm", "dispatcher", "synth-worker", "synth-llm", "synth-llamacpp"):
        assert services[name]["restart"] == "on-failure:3", name
    assert services["redis"]["restart"] == "unless-stopped"
    assert services["flower"]["restart"] == "no"  # without FLOWER_BASIC_AUTH: one line, exit 2
    llm = services["synth-llm"]
    assert llm["healthcheck"]["test"] and "/health" in " ".join(llm["healthcheck"]["test"])
    assert llm["image"] == f"vllm/vllm-openai:v{VLLM_PIN}"  # pinned, the gpu image's version
    dep = services["synth-worker"]["depends_on"]["synth-llm"]
    assert dep == {"condition": "service_healthy", "required": False}  # only with --profile llm
    dep = services["synth-worker"]["depends_on"]["synth-llamacpp"]
    assert dep == {"condition": "service_healthy", "required": False}  # only with --profile llamacpp


def test_rods_images_are_built_where_they_are_used():
    """Every service on a rods image builds it, with the target its tag names."""
    for name, svc in _rods_services(_compose()).items():
        tag = svc["image"].split(":", 1)[1]
        assert svc.get("build", {}).get("target") == tag, f"{name} uses rods:{tag} without building it"


def test_worker_pool_is_prefork_unless_asked():
    argv = _compose()["services"]["synth-worker"]["command"]
    assert argv[argv.index("--pool") + 1] == "${RODS_WORKER_POOL:-prefork}"
    assert argv[argv.index("--concurrency") + 1].startswith("${RODS_WORKER_CONCURRENCY:-")


def test_dockerfile_copies_every_package_and_pins_vllm():
    import tomllib

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    text = (ROOT / "Dockerfile").read_text()
    copied = {item for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M) for item in src.split()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, f"the image lacks {sorted(packages - copied)}"
    assert f"'vllm=={VLLM_PIN}'" in text
    deps = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in project["project"]["dependencies"]}
    for name, pin in VLLM_REQUIRES.items():  # vllm's pins must fit inside ours
        ours = SpecifierSet(deps[name][len(name):])
        if pin.startswith("=="):
            assert Version(pin[2:]) in ours, (name, pin, ours)
        else:
            lows = [Version(s.version) for s in SpecifierSet(pin) if s.operator == ">="]
            assert all(v in ours for v in lows), (name, pin, ours)


def _gpu_ids(svc: dict) -> list[str]:
    return svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]


def _flag(argv: list[str], name: str, default: str = "1") -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def test_trainer_launches_trl_under_accelerate_on_gpus_of_its_own():
    from trainer.config import load_config

    services = _compose()["services"]
    trainer, server, synth = services["trainer"], services["trl-vllm"], services["synth-llm"]
    launch = trainer["entrypoint"]
    assert launch[:2] == ["accelerate", "launch"] and launch[-2:] == ["-m", "cli"]
    accel = yaml.safe_load((ROOT / _flag(launch, "--config_file").removeprefix("/app/")).read_text())
    ids = {name: _gpu_ids(svc) for name, svc in [("trainer", trainer), ("trl-vllm", server), ("synth-llm", synth)]}
    assert accel["num_processes"] == len(ids["trainer"])  # one process per GPU it reserves
    assert _flag(trainer["command"], "--trainer") == "trl"
    every = [i for v in ids.values() for i in v]
    assert len(every) == len(set(every)) == 8 and set(every) == {str(i) for i in range(8)}  # no overlap
    serve = server["entrypoint"]
    assert serve[:2] == ["trl", "vllm-serve"]
    assert int(_flag(serve, "--data-parallel-size")) * int(_flag(serve, "--tensor-parallel-size")) == len(ids["trl-vllm"])
    assert int(_flag(synth["command"], "--tensor-parallel-size")) == len(ids["synth-llm"])
    # host networking: TRL's client's default 0.0.0.0:8000 reaches the server on the loopback
    assert trainer["network_mode"] == server["network_mode"] == "host"
    assert _flag(serve, "--host") == "127.0.0.1" and _flag(serve, "--port") == "8000"
    cfg = load_config(ROOT / _flag(trainer["command"], "--config").removeprefix("/app/"))
    assert cfg.rollout.engine == "vllm"  # with --trainer trl: generate through trl-vllm
    per_process, rest = divmod(cfg.rollout.tasks_per_step * cfg.rollout.group_size, accel["num_processes"])
    assert rest == 0 and per_process % cfg.optim.micro_batch == 0  # what trainer.trl.loop.grpo_args needs


def test_every_shipped_accelerate_config_loads_and_matches_the_trainer_service():
    pytest.importorskip("accelerate", reason="accelerate comes with the trl extra")
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    trainer_gpus = len(_gpu_ids(_compose()["services"]["trainer"]))
    files = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
    kinds = set()
    for f in files:
        cfg = load_config_from_file(str(f))  # accelerate's own parser: what `accelerate launch` reads
        kinds.add(cfg.distributed_type)
        assert cfg.num_processes == trainer_gpus, f.name  # one process per GPU of the trainer service
        assert cfg.mixed_precision == "bf16" and not cfg.use_cpu, f.name
        if cfg.distributed_type == DistributedType.FSDP:
            # a plain model.safetensors in each checkpoint: `rods eval` and a resumed run read it
            assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT", f.name
        if cfg.distributed_type == DistributedType.DEEPSPEED:
            assert cfg.deepspeed_config["zero3_save_16bit_model"], f.name
    assert kinds == {DistributedType.DEEPSPEED, DistributedType.FSDP}


def test_dockerfile_builds_without_a_registry_frontend_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    assert "# syntax=" not in text  # BuildKit would pull a frontend image from a registry first
    # what a normal build gets by default; a host with no registry or index passes build args
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS base$", text, re.M)
    assert re.search(r"^FROM \$\{CUDA_IMAGE\} AS gpu$", text, re.M)
    # each final stage drops root before its entry point
    for stage in ("cpu", "gpu"):
        body = re.split(rf"^FROM \S+ AS {stage}$", text, flags=re.M)[1].split("\nFROM ")[0]
        assert re.search(r"^USER rods$", body, re.M), f"the {stage} image runs as root"
    # torch and the CA bundle come by URL (a loopback server works: builds use host networking),
    # never by COPY: no wheel and no CA bundle in a layer of the image
    cpu = re.split(r"^FROM base AS cpu$", text, flags=re.M)[1].split("\nFROM ")[0]
    assert "COPY" not in cpu and '--find-links "$TORCH_FIND_LINKS"' in cpu
    assert 'export PIP_CERT=/tmp/pip-ca.crt' in cpu and cpu.rstrip().count("rm -f /tmp/pip-ca.crt") == 1
    assert _compose()["x-rods-cpu"]["build"]["network"] == "host"
    args = _compose()["x-rods-cpu"]["build"]["args"]
    assert args["BASE_IMAGE"] == "${RODS_BASE_IMAGE:-python:3.11-slim}"
    assert args["TORCH_INDEX_URL"] == "${RODS_TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"


def test_dockerignore_sends_only_what_the_dockerfile_copies():
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "**"  # everything out, then the Dockerfile's sources back in
    allowed = {ln[1:] for ln in lines if ln.startswith("!")}
    text = (ROOT / "Dockerfile").read_text()
    copied = {item for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M) for item in src.split()}
    assert copied <= allowed, f"the build context lacks {sorted(copied - allowed)}"
    assert not {".venv", ".git", "runs", "tests"} & allowed


def test_trainer_cpu_warm_starts_and_takes_a_step_count():
    from trainer.config import load_config

    svc = _compose()["services"]["trainer-cpu"]
    argv = svc["command"]
    assert argv[0] == "trainer" and "--warm-start" in argv
    assert _flag(argv, "--steps") == "${RODS_TRAINER_STEPS:-12}"
    cfg = load_config(ROOT / _flag(argv, "--config").removeprefix("/app/"))
    assert cfg.policy.device == "cpu" and cfg.rollout.engine == "hf" and cfg.policy.model == "tiny"
    assert "runs:/runs" in svc["volumes"] and "deploy" not in svc


def test_llamacpp_service_serves_what_the_workers_are_told_to_use():
    svc = _compose()["services"]["synth-llamacpp"]
    argv = svc["command"]
    assert argv[:2] == ["llm", "serve"] and _flag(argv, "--engine") == "llamacpp"
    assert _flag(argv, "--model") == "gemma-3-270m" and _flag(argv, "--host") == "127.0.0.1"
    port = _flag(argv, "--port")
    assert f"http://127.0.0.1:{port}/v1" in " ".join(svc["healthcheck"]["test"])
    text = (ROOT / "compose.yaml").read_text()
    # the workers switch to it by environment only: the variables the header tells are settings
    assert f"RODS_SYNTH_API_BASE=http://127.0.0.1:{port}/v1" in text
    assert "RODS_SYNTH_MODEL=openai/gemma-3-270m" in text
    assert {"RODS_SYNTH_BACKEND", "RODS_SYNTH_MODEL", "RODS_SYNTH_API_BASE"} <= set(_compose()["x-rods-env"])


def test_worker_node_names_are_distinct_unless_given(monkeypatch):
    from cli import services as cli_services
    from services.celery_app import app as celery_app

    argvs: list[list[str]] = []
    monkeypatch.setattr(celery_app, "worker_main", argvs.append)
    cli_services.worker(concurrency=1, pool="solo", loglevel="info", node_name=None)
    cli_services.worker(concurrency=1, pool="solo", loglevel="info", node_name=None)
    cli_services.worker(concurrency=1, pool="solo", loglevel="info", node_name="synth-a@%h")
    names = [next(a for a in argv if a.startswith("--hostname=")) for argv in argvs]
    assert names[0] != names[1] and all(n.startswith("--hostname=synth-") for n in names)
    assert names[2] == "--hostname=synth-a@%h"


def test_trainer_logs_one_line_per_step_without_a_tty(monkeypatch, tmp_path, capsys):
    from types import SimpleNamespace

    import cli.report
    import trainer.loop
    from cli import train as cli_train

    def fake_train(cfg, run_dir, on_step, **_):  # noqa: ANN001, ANN202
        for step in range(1, cfg.loop.steps + 1):
            on_step(step, {"reward/mean": 0.5, "boundary/requests": 2.0})
        return SimpleNamespace(resumed_from=None, steps_done=cfg.loop.steps)

    monkeypatch.setattr(trainer.loop, "train", fake_train)
    monkeypatch.setattr(cli.report, "write_report", lambda run_dir: run_dir / "report.html")
    cli_train.trainer_service(config=ROOT / "configs/demo.toml", run_dir=tmp_path, steps=3)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert len(lines) == 3 and lines[0].startswith("step 1/3  R_P 0.500") and " req 2 " in lines[0]


def test_trainer_warm_start_is_for_the_native_trainer_only(tmp_path):
    from cli import train as cli_train

    with pytest.raises(typer.Exit) as e:
        cli_train.trainer_service(config=ROOT / "configs/demo.toml", run_dir=tmp_path, trainer="trl", warm_start=True)
    assert e.value.exit_code == 2
