"""The experiment report in a real browser: headless Chromium loads experiment.html offline.

Checked: no console error or warning, no request other than the file itself, every plot has a
rendered size and lines, and the final table names each protocol. Needs Debian's `chromium`
(`make test` installs it); without it the test fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from headless import open_page

from report.experiment import write_experiment_report
from tests.unit.test_experiment_report import _run

pytestmark = pytest.mark.integration


def test_experiment_page_renders_offline(tmp_path: Path) -> None:
    plan = {"arms": ["static", "rods"], "seeds": [0, 1], "steps": 4, "trajectories_per_step": 24}
    (tmp_path / "experiment-plan.json").write_text(json.dumps(plan))
    for arm, zv in (("static", [0.2, 0.4, 0.6, 0.8]), ("rods", [0.2, 0.2, 0.2, 0.2])):
        for seed in (0, 1):
            _run(tmp_path, arm, seed, zv, [0.1 + 0.1 * seed, 0.2 + 0.1 * seed])
    page_path = write_experiment_report(tmp_path)
    with open_page(page_path, tmp_path / "profile") as page:
        plots = json.loads(page.evaluate(
            "JSON.stringify([...document.querySelectorAll('svg')].map(s => ({w: s.getBoundingClientRect().width,"
            " lines: s.querySelectorAll('polyline,circle').length})))"))  # fmt: skip
        text = page.evaluate("document.body.innerText")
        bad = [m for m in page.console if m["level"] in ("error", "warning")]
        foreign = [u for u in page.requests if not u.startswith(("file://", "data:"))]
    assert not bad and not foreign
    assert len(plots) == 4 and all(p["w"] > 100 and p["lines"] > 0 for p in plots), plots
    assert "Final held-out numbers — protocol train" in text
