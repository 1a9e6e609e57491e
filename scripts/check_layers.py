#!/usr/bin/env python3
"""The import contract of docs/ARCHITECTURE.md §2, checked on every `import` statement of every module.

    cli  >  services  >  graphs
                         trainer, report  >  rods

A package may import the first-party packages listed for it and no other; `rods`, the core,
may import only the standard library and the third-party packages listed for it. Imports
inside functions count (they are edges all the same; hiding them from tools is what this
check exists to stop), and so do imports under `if TYPE_CHECKING:`.

Usage: `python scripts/check_layers.py [ROOT]`; exit 1 and one line per violation, else exit 0.
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FIRST_PARTY = ("rods", "graphs", "trainer", "report", "services", "cli")

# package -> first-party packages it may import (itself always allowed)
MAY_IMPORT: dict[str, set[str]] = {
    "rods": set(),
    "graphs": {"rods"},
    "trainer": {"rods"},
    "report": {"rods"},
    "services": {"rods", "graphs"},
    "cli": {"rods", "graphs", "trainer", "report", "services"},
}

# third-party packages a package may import; None = any
THIRD_PARTY: dict[str, set[str] | None] = {
    # the core: data types, rules and Redis; bfcl_eval is the environment it wraps
    "rods": {"pydantic", "pydantic_settings", "redis", "numpy", "bfcl_eval"},
    "report": {"pydantic", "numpy"},  # renders offline pages: no torch, no services
    "graphs": None,
    "trainer": None,
    "services": None,
    "cli": None,
}

# third-party packages a package must never import, whatever else it may
NEVER: dict[str, set[str]] = {
    # the trainer talks to synthesis only through Redis
    "trainer": {"celery", "langgraph", "litellm", "kombu"},
    "graphs": {"celery", "torch", "transformers"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the file, at any depth."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def violations(root: Path) -> list[str]:
    found: list[str] = []
    stdlib = sys.stdlib_module_names
    for pkg in FIRST_PARTY:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            for line, mod in imported_modules(path):
                if mod == pkg or mod in stdlib or mod == "__future__":
                    continue
                if mod in FIRST_PARTY:
                    if mod not in MAY_IMPORT[pkg]:
                        found.append(f"{rel}:{line}: `{pkg}` may not import `{mod}` (layers: docs/ARCHITECTURE.md §2)")
                    continue
                allowed = THIRD_PARTY[pkg]
                if (allowed is not None and mod not in allowed) or mod in NEVER.get(pkg, set()):
                    found.append(f"{rel}:{line}: `{pkg}` may not import third-party `{mod}`")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = violations(root)
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} import(s) against the layer contract", file=sys.stderr)
        return 1
    print(f"layers ok: {', '.join(FIRST_PARTY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
