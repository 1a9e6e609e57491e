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

from cli.app import app
from rods.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# read by litellm / huggingface / flower itself
THIRD_PARTY_ENV = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "FLOWER_BASIC_AUTH"}
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
    assert {"redis", "dispatcher", "synth-worker", "trainer", "synth-llm", "flower"} <= set(services)
    assert "appendonly" in " ".join(services["redis"]["command"])
    assert services["redis"]["healthcheck"]["test"]
    assert "replicas" not in str(services["synth-worker"])  # scaled with --scale, not pinned
    gpu = services["trainer"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["synth-llm"]["profiles"] == ["llm"]


def test_every_rods_command_is_a_real_entry_point_with_real_options():
    root = typer.main.get_command(app)
    ctx = click.Context(root)
    checked = 0
    for name, svc in _rods_services(_compose()).items():
        if "command" not in svc:
            continue
        argv = svc["command"]
        cmd = root.get_command(ctx, argv[0])
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
    assert all(p.startswith("127.0.0.1:") for p in flower["ports"])  # loopback only


def test_environment_is_read_by_the_settings():
    compose = _compose()
    known = _settings_env_names() | THIRD_PARTY_ENV
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
        for port in svc.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+", port), f"{name}: bad port {port}"


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
    targets = set(re.findall(r"^FROM \S+ AS (\w+)", text, re.M))
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
    assert "ports" not in redis  # compose network only: no clash with, or exposure on, host 6379
    argv = redis["command"]
    assert argv[argv.index("--requirepass") + 1] == "${REDIS_PASSWORD:-}"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert argv[argv.index("--maxmemory") + 1].startswith("${REDIS_MAXMEMORY:-")
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    url = compose["x-rods-env"]["REDIS_URL"]
    assert url == "redis://:${REDIS_PASSWORD:-}@redis:6379/0"
    # an empty password gives `redis://:@redis:6379/0`, which our settings and clients accept
    assert Settings(redis_url=url.replace("${REDIS_PASSWORD:-}", "")).redis_url.startswith(
        "redis://:@redis"
    )


def test_restart_policies_and_waiting_for_the_model_server():
    services = _compose()["services"]
    assert services["trainer"]["restart"] == "on-failure"  # it resumes from its checkpoint
    for name in ("redis", "dispatcher", "synth-worker", "synth-llm"):
        assert services[name]["restart"] == "unless-stopped", name
    llm = services["synth-llm"]
    assert llm["healthcheck"]["test"] and "/health" in " ".join(llm["healthcheck"]["test"])
    assert llm["image"] == f"vllm/vllm-openai:v{VLLM_PIN}"  # pinned, the gpu image's version
    dep = services["synth-worker"]["depends_on"]["synth-llm"]
    assert dep == {"condition": "service_healthy", "required": False}  # only with --profile llm


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
    assert trainer["network_mode"] == "service:trl-vllm"  # TRL's client: the server at 0.0.0.0:8000
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
