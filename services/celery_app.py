"""The Celery app of the synthesis service (broker and result backend: the run's Redis).

Start a worker with `rods worker` (or `celery -A services.celery_app worker -Q rods.synth`).
Settings come from the environment (`rods.config.Settings`), read once when the app is made.

Delivery semantics: `acks_late` + `task_reject_on_worker_lost` — a task is acknowledged only
after it returns, so a worker killed mid-graph leaves its message to be redelivered to another
worker; the work is idempotent (staging is keyed by the boundary request id). Prefetch 1: one
synthesis run can take seconds to minutes, and a prefetching worker would hoard requests that
idle workers could take.

Redis outages: every Celery client here reconnects with the same backoff settings as our own
clients (`connect_retries`, `backoff_base_s`, `backoff_cap_s`): the result backend retries its
reads and writes (`result_backend_always_retry`), a publish retries, the worker's broker
connection retries forever. What still fails after that fails the task or the dispatcher's pass,
and the boundary stream — the source of truth — sends the request again (services/dispatcher.py).
"""

from __future__ import annotations

from celery import Celery

from rods.config import Settings
from rods.store.keys import SYNTH_QUEUE

# The hard time limit is the soft one plus this: a task past its soft limit is killed by then.
HARD_LIMIT_MARGIN_S = 10


def make_app(settings: Settings | None = None) -> Celery:
    s = settings or Settings()
    app = Celery("rods", broker=s.redis_url, backend=s.redis_url, include=["services.synth_task"])
    retries = max(0, s.connect_retries - 1)
    policy = {  # kombu/celery retry policy: sleeps 0, step, 2·step, … capped at interval_max
        "max_retries": retries,
        "interval_start": 0,
        "interval_step": s.backoff_base_s,
        "interval_max": s.backoff_cap_s,
    }
    app.conf.update(
        task_default_queue=SYNTH_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A graph run is bounded by its own retry counters; these limits catch a hung model
        # server or simulator. Soft first (the task records the failure), then hard.
        task_soft_time_limit=s.synth_soft_time_limit_s,
        task_time_limit=s.synth_soft_time_limit_s + HARD_LIMIT_MARGIN_S,
        result_expires=3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out any outage
        task_publish_retry_policy=policy,
        result_backend_always_retry=True,
        result_backend_max_retries=retries,
        result_backend_base_sleep_between_retries_ms=int(s.backoff_base_s * 1000),
        result_backend_max_sleep_between_retries_ms=int(s.backoff_cap_s * 1000),
        result_backend_transport_options={"retry_policy": policy},
        redis_socket_connect_timeout=s.connect_timeout_s,
        redis_socket_timeout=s.socket_timeout_s,
        redis_retry_on_timeout=True,
        # Redis transport: an unacknowledged message is redelivered after this long. It must
        # exceed the longest task, or a slow task would run twice (harmless, but wasted work).
        broker_transport_options={"visibility_timeout": s.synth_soft_time_limit_s + 120},
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
