"""Service entry points: `rods worker` (Celery synthesis worker) and `rods dispatcher`.

Both read their settings from the environment (REDIS_URL, RODS_RUN, RODS_SYNTH_*), as the
compose services do. `services` is imported inside the commands only. A worker checks before
Celery starts what Celery would wait on forever: the llm backend needs RODS_SYNTH_MODEL, and its
Redis must answer within the connect timeout (one line, exit 2; compose restarts it).
"""

from __future__ import annotations

import logging
import secrets
import signal
import socket
import threading

import typer

from rods.config import Settings
from rods.store.keys import SYNTH_QUEUE


def worker(
    concurrency: int = typer.Option(1, help="graph runs at once in this worker process group"),
    pool: str = typer.Option(
        "prefork", help="prefork (CPU-bound procedural backend) or threads (LLM backend: waits on the model)"
    ),
    loglevel: str = typer.Option("info", help="Celery log level"),
    node_name: str = typer.Option(
        None, "--node-name", help="Celery node name, e.g. synth-1@%h (default: synth-<random>@<hostname>)"
    ),
) -> None:
    """Run a Celery synthesis worker on the `rods.synth` queue."""
    _check_worker_startup()
    from services.celery_app import app

    # Celery's default node name is celery@<hostname>: replicas sharing a hostname (compose
    # replicas under host networking, which are PID 1 alike) would collide in Flower and in
    # control replies, so each start gets its own unless one is given.
    node_name = node_name or f"synth-{secrets.token_hex(3)}@{socket.gethostname()}"
    app.worker_main(
        ["worker", f"--concurrency={concurrency}", f"--pool={pool}", "-Q", SYNTH_QUEUE,
         f"--loglevel={loglevel}", "--without-gossip", "--without-mingle", f"--hostname={node_name}"]
    )  # fmt: skip


def _check_worker_startup() -> None:
    """Refuse to start, in one line, a worker that could never do its work: the llm backend with
    no model, or a Redis (its broker) that does not answer within the connect timeout; Celery
    itself would wait for either forever. Says which Redis it uses first."""
    from cli.errors import fail
    from rods.config import redis_url_source
    from rods.store.connection import connect, redact

    settings = Settings()
    if settings.synth_backend == "llm" and not settings.synth_model:
        raise fail(
            "RODS_SYNTH_BACKEND=llm needs RODS_SYNTH_MODEL (a litellm model string, e.g. "
            "openai/gpt-4o-mini, or hosted_vllm/Qwen/Qwen3-32B with RODS_SYNTH_API_BASE); "
            "or unset RODS_SYNTH_BACKEND for the procedural backend"
        )
    typer.echo(
        f"worker: redis {redact(settings.redis_url)} ({redis_url_source()}), backend "
        f"{settings.synth_backend}" + (f" ({settings.synth_model})" if settings.synth_model else ""),
        err=True,
    )
    connect(settings).close()  # RedisUnavailable: one line within the connect timeout (cli.errors)


def dispatcher(
    run: str = typer.Option(None, help="run name (default: RODS_RUN)"),
    max_in_flight: int = typer.Option(None, min=1, help="requests sent and unfinished at once (default: RODS_DISPATCH_MAX_IN_FLIGHT)"),
) -> None:
    """Consume the boundary stream of a run and send one Celery task per request."""
    from services.dispatcher import Dispatcher

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = Settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    d = Dispatcher(settings, run or settings.run, max_in_flight=max_in_flight)
    stats = d.run_forever(stop)
    typer.echo(f"dispatcher stopped: {stats.sent} sent, {stats.done} done, {stats.failed} failed, {stats.dead} dead-lettered")
