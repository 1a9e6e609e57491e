"""The run report's pure parts: tolerant reading (missing files → notes), NaN handling, summaries,
and SVG helpers that emit well-formed XML. No browser here: tests/integration/test_report_browser.py."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.report import report
from report import svg
from report.data import (
    clean_metrics,
    latency_summary,
    load_run,
    pool_history,
    series,
    synth_outcomes,
    task_pairs,
)
from report.html import SECTIONS, render, write_report
from rods.pool import PoolRules, Report
from rods.store.memory import MemoryBuffer
from rods.tasks import RodsMeta, Task, load_split, synthetic_id

SVG_NS = "{http://www.w3.org/2000/svg}"


def _parse(svg_text: str) -> ET.Element:
    root = ET.fromstring(svg_text)
    assert root.tag == f"{SVG_NS}svg" and root.get("class") == "plot"
    return root


def _plots(html: str) -> list[str]:
    parts = html.split('<svg class="plot"')[1:]
    return ['<svg class="plot"' + p.split("</svg>")[0] + "</svg>" for p in parts]


def _child(seed: Task, text: str, generation: int = 1, parent: str | None = None) -> Task:
    body = seed.to_bfcl() | {"question": [[{"role": "user", "content": text}]] * len(seed.question)}
    body.pop("rods", None)
    meta = RodsMeta(origin="synthetic", parent_id=parent or seed.id, generation=generation)
    return Task.model_validate(body | {"id": synthetic_id(seed.category, body), "rods": meta})


# ---------------------------------------------------------------- reading


def test_empty_run_dir_gives_notes_and_a_page(tmp_path: Path) -> None:
    data = load_run(tmp_path)
    joined = " ".join(data.notes)
    for name in ("metrics.jsonl", "events.jsonl", "synth.json", "buffer.jsonl"):
        assert name in joined
    html = render(data)
    assert _plots(html) == []
    assert html.count('class="note"') >= len(SECTIONS)
    for anchor, _, _ in SECTIONS:
        assert f'<section id="{anchor}">' in html


def test_missing_run_dir_and_compare_do_not_crash(tmp_path: Path) -> None:
    path = write_report(tmp_path / "nope", compare=tmp_path / "nostatic", out=tmp_path / "r.html")
    html = path.read_text()
    assert "not found" in html and html.startswith("<!DOCTYPE html>")


def test_nan_null_and_bad_values_become_none(tmp_path: Path) -> None:
    lines = [
        '{"step": 1, "reward/mean": 0.5, "loss/pg": NaN}',
        '{"step": 2, "reward/mean": null, "loss/pg": Infinity, "tag": "x", "flag": true}',
        "not json",
        '{"step": 3, "reward/mean": 0.7}',
        '{"step": 2, "reward/mean": 0.6}',  # a resumed run re-wrote step 2: the last line wins
        "[1, 2]",
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    data = load_run(tmp_path)
    assert [r["step"] for r in data.metrics] == [1.0, 2.0, 3.0]
    assert series(data.metrics, "reward/mean") == ([1.0, 2.0, 3.0], [0.5, 0.6, 0.7])
    assert data.metrics[0]["loss/pg"] is None
    assert any("2 unreadable line(s)" in n for n in data.notes)
    rows = clean_metrics([{"step": 1, "a": float("nan")}, {"step": 2, "a": "1", "b": True}])
    assert rows[0]["a"] is None and rows[1]["a"] is None and rows[1]["b"] is None


def test_bad_synth_and_buffer_files_are_notes(tmp_path: Path) -> None:
    (tmp_path / "synth.json").write_text("[1, 2")
    (tmp_path / "buffer.jsonl").write_text('{"id": "x"}\n')
    (tmp_path / "events.jsonl").write_text('{"kind": "nope"}\n')
    data = load_run(tmp_path)
    joined = " ".join(data.notes)
    assert "synth.json" in joined and "buffer.jsonl:1" in joined and "events.jsonl" in joined
    render(data)


def test_synth_json_nan_values_dropped(tmp_path: Path) -> None:
    body = '{"metrics": {"synth/accepted": 3, "synth/accept_rate": NaN}, "latency_s": [1.0, NaN, 3.0]}'
    (tmp_path / "synth.json").write_text(body)
    data = load_run(tmp_path)
    assert data.synth == {"synth/accepted": 3.0}
    assert data.latency_s == [1.0, 3.0]


# ---------------------------------------------------------------- summaries


def test_synth_outcomes_order_and_latency_summary() -> None:
    bars = synth_outcomes({"synth/accepted": 5, "synth/reject/a": 1, "synth/reject/b": 3,
                           "synth/fail/x": 2, "synth/attempts": 11})  # fmt: skip
    assert [b[0] for b in bars] == ["accepted", "reject: b", "reject: a", "fail: x"]
    s = latency_summary([1.0, 2.0, 3.0, 4.0], [10.0, None, 12.0])
    assert s["median"] == 2.5 and s["step_median"] == 11.0 and s["n"] == 4.0
    assert math.isclose(s["p95"] or 0, 3.85)
    assert latency_summary([], [])["median"] is None


def test_pool_history_replays_events_when_metrics_lack_counts(tmp_path: Path) -> None:
    seeds = load_split("train")[:3]
    buf = MemoryBuffer(run="unit", rules=PoolRules(beta=1.0))
    buf.load_seeds(seeds)
    buf.add_staged([_child(seeds[0], "hello")], step=2)
    buf.report([Report(task_id=seeds[1].id, reward_mean=0.5, reward_var=0.25)], step=3)
    buf.end_epoch(4)
    (tmp_path / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in buf.events()))
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "buffer/active": 3}\n')
    rows, source = pool_history(load_run(tmp_path))
    assert source.startswith("events.jsonl")
    last = rows[-1]
    assert last["step"] == 4.0
    assert last["buffer/active/origin/seed"] == 3 and last["buffer/active/origin/synthetic"] == 1
    html = render(load_run(tmp_path))
    assert "Active pool by origin and generation" in html


def test_task_pairs_find_parents_in_buffer_or_bfcl_and_note_missing() -> None:
    seeds = load_split("train")[:2]
    kid = _child(seeds[0], "a <b>variant</b>")
    grandkid = _child(seeds[0], "deeper", generation=2, parent=kid.id)
    orphan = _child(seeds[1], "orphan", parent="no_such_task_0")
    pairs = task_pairs([kid, grandkid, orphan], limit=5)
    found = {t.id: (p.id if p else None, why) for t, p, why in pairs}
    assert found[kid.id] == (seeds[0].id, "")  # looked up among the BFCL tasks
    assert found[grandkid.id] == (kid.id, "")  # found in the exported buffer
    assert found[orphan.id][0] is None and "no_such_task_0" in found[orphan.id][1]
    assert task_pairs([seeds[0]]) == []


# ---------------------------------------------------------------- SVG helpers


NASTY = 'a <b> & "c" \'d\''


@pytest.mark.parametrize(
    "chart",
    [
        lambda: svg.line_chart(NASTY, [svg.Series(NASTY, [1, 2, 3, 4], [0.1, None, 0.3, 0.4])]),
        lambda: svg.line_chart("empty", []),
        lambda: svg.line_chart("all missing", [svg.Series("x", [1, 2], [None, None])]),
        lambda: svg.line_chart("one point", [svg.Series("x", [5], [2.0])]),
        lambda: svg.line_chart("flat", [svg.Series("x", [1, 2, 3], [0.0, 0.0, 0.0]),
                                        svg.Series("y", [1, 2, 3], [1e6, 2e6, 3e6], dashed=True)]),
        lambda: svg.stacked_area_chart(NASTY, [1, 2, 3], [("a", [1, None, 2]), (NASTY, [0, 1, 1])]),
        lambda: svg.stacked_area_chart("single", [3], [("a", [1])]),
        lambda: svg.stacked_area_chart("none", [], [("a", [])]),
        lambda: svg.bar_chart(NASTY, [(NASTY, 3.0), ("b", float("nan")), ("c", 0.0)]),
        lambda: svg.bar_chart("no bars", []),
        lambda: svg.histogram(NASTY, [0.5, 1.5, 1.7, float("nan"), 9.0], markers=[(NASTY, 2.0)]),
        lambda: svg.histogram("empty", []),
        lambda: svg.histogram("one value", [3.0]),
    ],
)  # fmt: skip
def test_svg_helpers_emit_well_formed_xml(chart) -> None:  # noqa: ANN001
    root = _parse(chart())
    assert root.find(f"{SVG_NS}title") is not None
    assert len(list(root)) > 3
    assert float(root.get("width", 0)) > 0 and float(root.get("height", 0)) > 0


def test_line_chart_breaks_at_missing_values() -> None:
    root = _parse(svg.line_chart("t", [svg.Series("s", [1, 2, 3, 4, 5], [1, 2, None, 3, None])]))
    assert len(root.findall(f"{SVG_NS}polyline")) == 1  # 1–2 joined
    assert len(root.findall(f"{SVG_NS}circle")) == 1  # 4 alone: a dot
    assert NASTY not in svg.line_chart(NASTY, [])  # escaped
    assert "a &lt;b&gt; &amp;" in svg.line_chart(NASTY, [])


def test_nice_ticks_and_quantile() -> None:
    ticks = svg.nice_ticks(0.0, 0.93)
    assert ticks[0] <= 0.0 and ticks[-1] >= 0.93 and len(ticks) <= 8
    assert svg.nice_ticks(5.0, 5.0)[0] < 5.0 < svg.nice_ticks(5.0, 5.0)[-1]
    assert svg.nice_ticks(float("nan"), 1.0) == [0.0, 1.0]
    assert svg.quantile([3, 1, 2], 0.5) == 2 and svg.quantile([float("nan")], 0.5) is None
    assert svg.finite(True) is None and svg.finite("1") is None and svg.finite(2) == 2.0


def test_rendered_page_plots_are_xml(tmp_path: Path) -> None:
    rows = [{"step": s, "reward/mean": s / 10, "reward/correct": None if s == 3 else s / 20,
             "reward/frac_zero_var": 0.2, "boundary/frac_hard": 0.3, "boundary/frac_boundary": 0.4,
             "boundary/frac_mastered": 0.3, "buffer/active": 10, "buffer/active/origin/seed": 8,
             "buffer/active/origin/synthetic": 2, "buffer/active/generation/1": 2,
             "buffer/active/category/base": 10, "time/step": 2.0} for s in range(1, 6)]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "synth.json").write_text(json.dumps(
        {"metrics": {"synth/accepted": 2, "synth/reject/gate": 1}, "latency_s": [1.0, 1.5]}))
    html = write_report(tmp_path).read_text()
    plots = _plots(html)
    assert len(plots) == 9  # reward, depletion, regions, 3 pool, outcomes, latency, timing
    for p in plots:
        _parse(p)
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_cli_report_command(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(report)
    runner = CliRunner()
    assert runner.invoke(app, [str(tmp_path / "missing")]).exit_code == 2
    res = runner.invoke(app, [str(tmp_path), "--compare", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").is_file()
    assert runner.invoke(app, [str(tmp_path), "--compare", str(tmp_path / "x")]).exit_code == 2


def test_fixed_y_range_widens_for_values_outside_it() -> None:
    root = _parse(svg.line_chart("t", [svg.Series("s", [1, 2], [0.5, 3.2])], y_range=(0.0, 1.0)))
    labels = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "4" in labels or "3.5" in labels  # the top tick covers 3.2
    ys = [float(v) for p in root.iter(f"{SVG_NS}polyline") for xy in p.get("points", "").split()
          for v in xy.split(",")[1:]]  # fmt: skip
    assert min(ys) >= svg.MARGIN_T  # nothing drawn above the plot area
