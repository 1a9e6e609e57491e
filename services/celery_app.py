"""The Celery app of the synthesis service (broker and result backend: the run's Redis).

Start a worker with `rods worker` (or `celery -A services.celery_app worker -Q rods.synth`).
Settings come from the environment (`rods.config.Settings`), read once when the app is made.

Delivery semantics: `acks_late` + `task_reject_on_worker_lost` — a task is acknowledged only
after it returns, so a worker killed mid-graph leaves its message to be redelivered to another
worker; the work is idempotent (staging is keyed by the boundary request id). Prefetch 1: one
synthesis run can take seconds to minutes, and a prefetching worker would hoard requests that
idle workers could take.
"""

from __future__ import annotations

from celery import Celery

from rods.config import Settings
from rods.store.keys import SYNTH_QUEUE


def make_app(settings: Settings | None = None) -> Celery:
    s = settings or Settings()
    app = Celery("rods", broker=s.redis_url, backend=s.redis_url, include=["services.synth_task"])
    app.conf.update(
        task_default_queue=SYNTH_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A graph run is bounded by its own retry counters; these limits catch a hung model
        # server or simulator. Soft first (the task records the failure), then hard.
        task_soft_time_limit=s.synth_soft_time_limit_s,
        task_time_limit=s.synth_soft_time_limit_s + 30,
        result_expires=3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # Redis transport: an unacknowledged message is redelivered after this long. It must
        # exceed the longest task, or a slow task would run twice (harmless, but wasted work).
        broker_transport_options={"visibility_timeout": s.synth_soft_time_limit_s + 120},
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
