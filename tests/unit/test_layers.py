"""The import contract (scripts/check_layers.py) holds on this tree and catches what it must."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layers.py"

spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
assert spec and spec.loader
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for pkg in check_layers.FIRST_PARTY:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_this_tree_keeps_the_contract() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_upward_import_inside_a_function_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"rods/cli.py": "def main():\n    from trainer.loop import train\n"})
    assert check_layers.violations(root) == [
        "rods/cli.py:2: `rods` may not import `trainer` (layers: docs/ARCHITECTURE.md §2)"
    ]


def test_sideways_and_third_party_imports_are_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "trainer/a.py": "import graphs.synthesis\n",
        "trainer/b.py": "from celery import Celery\n",
        "rods/c.py": "import torch\nimport json\nimport numpy\n",
        "report/d.py": "from trainer import types\n",
        "cli/e.py": "import trainer, services, graphs, report, rods, torch\n",
    })
    found = check_layers.violations(root)
    assert len(found) == 4, found
    assert any("trainer/a.py:1" in v and "`graphs`" in v for v in found)
    assert any("trainer/b.py:1" in v and "`celery`" in v for v in found)
    assert any("rods/c.py:1" in v and "`torch`" in v for v in found)
    assert any("report/d.py:1" in v for v in found)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)
    assert proc.returncode == 1 and "4 import(s) against the layer contract" in proc.stderr
