"""Every document the repository cites exists in it (a citation that leads nowhere is a bug).

A citation is a path ending in `.md` with a directory in it (`docs/PAPER.md`,
`benchmarks/results/buffer.md`) or a bare document name in capitals (`ARCHITECTURE.md`), in any
tracked source, config, Makefile or document. It must name a file relative to the repository
root or to the citing file's directory. Lower-case bare names (`eval.md`, `experiment.md`) are
files the commands write, not citations.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.md|[A-Z][A-Z0-9_-]*\.md)\b")
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".cfg", ".txt", ".sh", ""}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = [ROOT / line for line in out.stdout.splitlines()]
    me = Path(__file__).resolve()  # its own examples are not citations
    return [f for f in files if f.is_file() and f.suffix in SUFFIXES and f != me]


def citations(text: str) -> set[str]:
    return {m.group(1) for m in CITATION.finditer(text)}


def dangling(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return sorted(
        c for c in citations(text)
        if not (ROOT / c).is_file() and not (path.parent / c).is_file()
    )  # fmt: skip


def test_the_citation_pattern_finds_documents_and_skips_written_outputs() -> None:
    text = "see docs/ARCHITECTURE.md §2, PAPER.md beside it; writes eval.md and out/x.json; a/b/c.md"
    assert citations(text) == {"docs/ARCHITECTURE.md", "PAPER.md", "a/b/c.md"}


def test_a_missing_document_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text('"""See NOWHERE-TO-BE-FOUND.md and docs/ARCHITECTURE.md."""\n')
    assert dangling(f) == ["NOWHERE-TO-BE-FOUND.md"]


def test_the_design_documents_are_in_the_repository() -> None:
    for name in ("ARCHITECTURE.md", "PAPER.md", "CPU-DEMO.md", "REAL-MODELS.md"):
        assert (ROOT / "docs" / name).is_file(), name


@pytest.mark.parametrize("path", tracked_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_document_exists(path: Path) -> None:
    assert dangling(path) == [], f"{path.relative_to(ROOT)} cites documents that are not in the repository"
