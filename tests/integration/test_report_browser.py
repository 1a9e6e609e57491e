"""The run report in a real browser: headless Chromium (Debian `chromium`) loads report.html.

Needs no Redis or Celery, but a browser binary: without one these tests FAIL (`make test`
installs it). Checked: no console message, exception or log entry of level error or warning; no
request other than the file itself (the page opens offline); every `<svg class="plot">` has
content and a rendered size; task text arrives escaped; a full-page screenshot is written (and
copied to $RODS_TEST_ARTIFACTS when set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from headless import open_page
from report_run import make_run, make_static_run

from report.html import write_report

pytestmark = pytest.mark.integration

PLOTS_JS = """JSON.stringify([...document.querySelectorAll('svg.plot')].map(s => {
  const r = s.getBoundingClientRect(); const b = s.getBBox();
  return {title: s.getAttribute('aria-label'), children: s.childElementCount,
          shapes: s.querySelectorAll('polyline,polygon,rect,circle').length,
          w: r.width, h: r.height, bw: b.width, bh: b.height};
}))"""
SECTIONS = ("reward", "regions", "pool", "synthesis", "latency", "timing", "tasks")


def _load(report: Path, tmp_path: Path, shot_name: str) -> tuple[list[dict], dict, Path]:
    import json

    with open_page(report, tmp_path / "profile") as page:
        plots = json.loads(page.evaluate(PLOTS_JS))
        facts = {
            "sections": page.evaluate("[...document.querySelectorAll('section')].map(s => s.id)"),
            "scripts": page.evaluate("document.scripts.length"),
            "tables": page.evaluate("document.querySelectorAll('table.pairs tbody tr').length"),
            "notes": page.evaluate("document.querySelectorAll('.note').length"),
            "text": page.evaluate("document.body.innerText"),
        }
        shot = page.screenshot(tmp_path / shot_name)
        bad = [m for m in page.console if m["level"] in ("error", "warning")]
        assert not bad, f"console errors: {bad}"
        foreign = [u for u in page.requests if not u.startswith(("file://", "data:"))]
        assert not foreign, f"the page fetched {foreign}"
    if artifacts := os.environ.get("RODS_TEST_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot_name)
    return plots, facts, shot


def test_full_report_renders_every_plot(tmp_path: Path) -> None:
    run, static = make_run(tmp_path / "rods"), make_static_run(tmp_path / "static")
    report = write_report(run, static)

    plots, facts, shot = _load(report, tmp_path, "report_full.png")

    assert facts["sections"] == list(SECTIONS)
    titles = [p["title"] for p in plots]
    assert len(plots) == 12, titles
    for p in plots:
        assert p["children"] > 5 and p["shapes"] > 0, p
        assert p["w"] > 300 and p["h"] > 80 and p["bw"] > 300, p
    assert facts["scripts"] == 0  # task text such as <script> is escaped, never parsed
    assert '<script>alert("x")</script>' in facts["text"]
    assert facts["tables"] == 4
    assert facts["notes"] == 0
    assert "compared with static" in facts["text"]  # the comparison run is named
    assert shot.stat().st_size > 50_000  # a blank 1200-px page is a few kB


def test_report_of_an_empty_run_renders_notes(tmp_path: Path) -> None:
    run = tmp_path / "empty"
    run.mkdir()
    report = write_report(run)

    plots, facts, _ = _load(report, tmp_path, "report_empty.png")

    assert plots == []
    assert facts["sections"] == list(SECTIONS)
    assert facts["notes"] >= len(SECTIONS)
    assert "metrics.jsonl not found" in facts["text"]
