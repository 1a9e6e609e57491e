"""Redis I/O only: the replay buffer, the boundary stream, the event log, and every key name.

- `keys`: every Redis key, stream, group, Celery queue and task name (per run: `rods:<run>:…`).
- `connection`: connect with retries and backoff; a clear error when Redis is unreachable.
- `contract`: the `ReplayBuffer` contract; `memory` (unit tests) and `buffer` (Redis) implement it.
- `changes`: the pure planning of every buffer write (compare-and-set change sets).
- `scripts`: loads the Lua scripts in `lua/` (`apply`: every buffer write; `publish`).
- `migrate`: the one-off conversion of a run stored in an older layout (`rods buffer migrate`).
- `events`: the event log model and its replay.
- `stream`: the boundary stream (publish, consumer groups, reclaim, dead letters).
- `server`: a private `redis-server` process for tests, benchmarks and the local mode.

Use from the trainer (one step)::

    settings = Settings()
    r = connect(settings)
    buf = RedisBuffer(r, settings.run, settings.pool_rules(), settings.events_maxlen)
    stream = BoundaryStream(r, settings.run, settings)
    tasks = buf.sample(32)                                  # epoch start: buf.end_epoch(step)
    stats_B = [group_stats(t.id, rewards_G, settings.detector_rules()) for t, rewards_G in ...]
    buf.report(stats_B, step)
    last = stream.last_requested([s.task_id for s in stats_B])
    stream.publish(select_requests(stats_B, step, last, settings.detector_rules()))

Use from a dispatcher / synthesis worker::

    stream.ensure_group()
    def handle(q: BoundaryRequest) -> None:
        variants = synthesize(q)                            # validated Tasks, origin synthetic
        buf.add_staged(variants, q.policy_step, priority=q.score, request_id=q.request_id)
    while True:
        stream.process(consumer_name, handle, block_ms=5000)  # ack after storing; retries; DLQ
"""
