"""`rods buffer init|stats|export|import|migrate` against a private Redis (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.buffer import buffer_app
from rods.pool import Report
from rods.store.buffer import RedisBuffer
from rods.store.changes import encode_record
from rods.store.connection import connect
from rods.store.migrate import migrate_layout
from rods.store.server import free_port

pytestmark = pytest.mark.integration
runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(buffer_app, list(args))
    return res.exit_code, res.output


def test_init_stats_export_import_round_trip(settings, make_variant, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where = ["--redis-url", settings.redis_url, "--run", settings.run]
    code, out = cli("init", *where)
    assert code == 0 and "400 seeds loaded, 0 already present" in out
    code, out = cli("init", *where)
    assert code == 0 and "0 seeds loaded, 400 already present" in out

    buf = RedisBuffer(connect(settings), settings.run)
    kids = [make_variant(k) for k in range(5)]
    buf.add_staged(kids, step=1, priority=0.8)
    buf.promote(2)
    buf.add_staged([make_variant(9)], step=2)
    buf.report([Report(task_id=kids[0].id, reward_mean=0.0, reward_var=0.0)], step=3)  # trial

    code, out = cli("stats", *where)
    assert code == 0 and "active: 404" in out and "staged: 1" in out and "retired: 1" in out
    assert "reason/trial: 1" in out and "origin/seed: 400" in out
    code, out = cli("stats", "--json", *where)
    metrics = json.loads(out)
    assert metrics["buffer/active"] == 404 and metrics["buffer/retired/reason/trial"] == 1

    first, second, only_staged = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "s.jsonl"
    code, out = cli("export", str(first), *where)
    assert code == 0 and "wrote 406 tasks" in out
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert rows[-1]["rods"]["buffer"]["retired_reason"] == "trial"
    assert rows[-1]["rods"]["parent_id"] == kids[0].rods.parent_id  # type: ignore[union-attr]
    assert {"id", "question", "initial_config", "involved_classes", "ground_truth"} <= set(rows[0])

    copy = ["--redis-url", settings.redis_url, "--run", settings.run + "-copy"]
    try:
        code, out = cli("import", str(first), *copy)
        assert code == 0 and "imported 406, 0 already present" in out
        code, out = cli("export", str(second), *copy)
        assert code == 0 and second.read_bytes() == first.read_bytes()
        code, out = cli("import", str(first), *copy)
        assert "imported 0, 406 already present" in out
    finally:
        RedisBuffer(connect(settings), settings.run + "-copy").drop_run()
    code, out = cli("export", str(only_staged), "--state", "staged", *where)
    assert code == 0 and len(only_staged.read_text().splitlines()) == 1


def test_clear_errors(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where = ["--redis-url", settings.redis_url, "--run", settings.run]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "multi_turn_base_1"}\n')
    code, out = cli("import", str(bad), *where)
    assert code == 2 and "bad.jsonl:1" in out and "question" in out
    code, out = cli("export", str(tmp_path / "x.jsonl"), "--state", "lost", *where)
    assert code == 2 and "unknown state" in out
    code, out = cli("stats", "--run", "bad name", "--redis-url", settings.redis_url)
    assert code == 2 and "bad run name" in out
    dead = f"redis://127.0.0.1:{free_port()}/0"
    res = runner.invoke(
        buffer_app, ["stats", "--redis-url", dead], env={"RODS_CONNECT_RETRIES": "1"}
    )
    assert res.exit_code == 2
    assert (
        f"cannot reach Redis at {dead}" in res.output and "redis-server --port 6379" in res.output
    )


def _state(buf: RedisBuffer) -> tuple:
    return buf.records(), buf.counts(), sorted(buf._active_weights()), buf.events()


def _to_older_layout(r, buf: RedisBuffer) -> None:  # type: ignore[no-untyped-def]
    """Store the run as RODS did before records had two parts: a JSON `rec:<id>` key per task."""
    for rec in buf.records():
        r.set(f"{buf.keys.base}:rec:{rec.task_id}", rec.model_dump_json())
    r.delete(buf.keys.records, buf.keys.live)


def test_a_run_in_the_older_layout_is_refused_then_migrated(  # type: ignore[no-untyped-def]
    settings, seeds, make_variant
) -> None:
    """The buffer refuses a run in the older layout, naming `rods buffer migrate`, and one whose
    migration was interrupted; `migrate` finishes it and the run reads as it did (records,
    counters, weights, log) and takes reports again."""
    where = ["--redis-url", settings.redis_url, "--run", settings.run]
    r = connect(settings)
    buf = RedisBuffer(r, settings.run)
    buf.load_seeds(list(seeds[:4]))
    kids = [make_variant(k) for k in range(3)]
    buf.add_staged(kids, step=1, priority=0.5)
    buf.promote(2)
    buf.report([Report(t.id, 0.5, 0.25) for t in seeds[:2]] + [Report(kids[0].id, 0.0, 0.0)], 3)
    before = _state(buf)
    _to_older_layout(r, buf)
    with pytest.raises(ValueError, match="older version of RODS.*rods buffer migrate"):
        RedisBuffer(r, settings.run)
    code, out = cli("stats", *where)
    assert code == 2 and f"rods buffer migrate --run {settings.run}" in out
    # interrupted after its first record: the marker is still there
    first = before[0][0]
    details, live = encode_record(first)
    r.hset(buf.keys.records, first.task_id, details)
    r.hset(buf.keys.live, first.task_id, live)
    r.delete(f"{buf.keys.base}:rec:{first.task_id}")
    r.set(buf.keys.migrating, "1")
    with pytest.raises(ValueError, match="part-way through its migration"):
        RedisBuffer(r, settings.run)
    code, out = cli("migrate", *where)
    assert code == 0 and f"{len(before[0]) - 1} records converted" in out
    assert _state(RedisBuffer(r, settings.run)) == before
    assert not list(r.scan_iter(match=f"{buf.keys.base}:rec:*"))
    assert not r.exists(buf.keys.migrating)
    _to_older_layout(r, buf)  # again, in batches of two
    assert migrate_layout(r, settings.run, batch=2) == len(before[0])
    after = RedisBuffer(r, settings.run)
    assert _state(after) == before
    assert after.report([Report(seeds[0].id, 1.0, 0.0)], 4).applied == 1
