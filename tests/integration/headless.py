"""Headless Chromium driven over the DevTools protocol on a pipe (no websocket, no extra package).

`open_page(path)` starts `chromium --remote-debugging-pipe` (commands on fd 3, replies and events
on fd 4, NUL-terminated JSON), loads a local file and returns a `Page` whose `console` lists every
console message, uncaught exception and browser log entry, and whose `requests` lists every URL
the page fetched. Chromium is the Debian `chromium` package (`apt-get install chromium`); a
missing binary raises FileNotFoundError — tests that need it fail rather than skip.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-pipe",
)  # fmt: skip


def chromium_binary() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            "chromium not found: install the Debian package (apt-get install -y chromium)"
        )
    return path


class Page:
    def __init__(self, proc: subprocess.Popen[bytes], r: int, w: int, timeout_s: float) -> None:
        self.proc, self._r, self._w, self.timeout_s = proc, r, w, timeout_s
        self._buf = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.session: str | None = None
        self.console: list[dict[str, Any]] = []  # {"source", "level", "text"}
        self.requests: list[str] = []

    # --------------------------------------------------------- protocol

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self._record(msg)
        return msg

    def _record(self, msg: dict[str, Any]) -> None:
        self._events.append(msg)
        method, p = msg["method"], msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append({"source": "console", "level": p.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console.append({"source": "exception", "level": "error", "text": d.get("text", "")})
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append({"source": e.get("source"), "level": e.get("level"), "text": e.get("text")})
        elif method == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        seen = 0
        while True:
            for msg in self._events[seen:]:
                if msg["method"] == method:
                    self._events.remove(msg)
                    return msg.get("params", {})
            seen = len(self._events)
            self._read_message(deadline)

    # --------------------------------------------------------- page helpers

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, width: int = 1200) -> Path:
        """The whole page (not only the viewport) as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        res = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        })  # fmt: skip
        path.write_bytes(base64.b64decode(res["data"]))
        return path


def _to_fd(fd: int, target: int) -> None:
    # Via a close-on-exec copy above 10, so that it works even if `fd` is 3 or 4; dup2 makes the
    # target inheritable, and every other descriptor Python opened is close-on-exec.
    os.dup2(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10), target)


@contextmanager
def open_page(
    path: Path, profile_dir: Path, width: int = 1200, height: int = 3000, timeout_s: float = 60.0
) -> Iterator[Page]:
    """Load `path` in a fresh headless Chromium; the browser is closed on exit."""
    binary = chromium_binary()
    cmd_r, cmd_w = os.pipe()  # we write commands; chromium reads them on fd 3
    out_r, out_w = os.pipe()  # chromium writes replies on fd 4; we read them

    def child_fds() -> None:
        _to_fd(cmd_r, 3)
        _to_fd(out_w, 4)

    stderr = (profile_dir.parent / "chromium.stderr").open("wb")
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"],
        stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, close_fds=False,
        preexec_fn=child_fds,
    )  # fmt: skip
    os.close(cmd_r)
    os.close(out_w)
    page = Page(proc, out_r, cmd_w, timeout_s)
    try:
        target = page.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        page.session = page.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        page.send("Page.navigate", {"url": path.resolve().as_uri()})
        page.wait_event("Page.loadEventFired")
        yield page
    finally:
        try:
            page.send("Browser.close", session=False)
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 — already gone or hung: kill below
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(out_r)
        os.close(cmd_w)
        stderr.close()
