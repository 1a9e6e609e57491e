"""Test-wide settings: nothing may reach a model hub or a pricing endpoint.

`gpu`-marked tests need a CUDA device: without one they are deselected (and the run says so), as
docs/ARCHITECTURE.md §2 lays out; on the GPU machine run `pytest -m gpu tests/gpu`.
"""

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda():
        return
    gpu = [i for i in items if i.get_closest_marker("gpu")]
    if gpu:
        items[:] = [i for i in items if not i.get_closest_marker("gpu")]
        config.hook.pytest_deselected(items=gpu)
        config._rods_gpu_deselected = len(gpu)  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    n = getattr(config, "_rods_gpu_deselected", 0)
    if n:
        terminalreporter.write_line(f"{n} gpu-marked tests deselected: no CUDA device here")
