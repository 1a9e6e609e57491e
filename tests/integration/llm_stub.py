"""A local OpenAI-compatible chat-completions server for tests and benchmarks (loopback only).

`StubLLM(responder, latency_s)` serves `POST …/chat/completions` on a free 127.0.0.1 port in a
thread. For each request it finds the synthesis stage from the prompt (the tag the prompt asks
for), asks `responder(stage, request)` for a reply — a string (the message content) or a
`(status, body)` pair for an HTTP error — and answers in the OpenAI format with usage
(prompt tokens = prompt characters // 4, completion tokens = reply characters // 4).
It records (stage, model, usage) of every request.

Faults, as a real vLLM server shows them: `served_models` answers any other model with vLLM's
404 ("The model `x` does not exist."); `stop()` closes the port (connection refused) and
`start()` serves again on the same port (a restarted server); `port=` picks the port up front,
so a client can be pointed at a server that is not up yet.

`SeedResponder(seed)` answers every stage by imitating a seed's ground truth (like the unit
tests' scripted backend), with per-stage queues of scripted replies served first.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rods.env.calls import parse_python_call
from rods.env.world import World
from rods.tasks import Task

Reply = str | tuple[int, str]


def stage_of(request: dict[str, Any]) -> str:
    text = request["messages"][-1]["content"]
    if "<plan>" in text:
        return "plan"
    if "<arguments>" in text:
        return "arguments"
    if "<verdict>" in text:
        return "judge"
    if "was rejected" in text:
        return "repair"
    if "<queries>" in text:
        return "queries"
    return "unknown"


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True  # start() again on the same port right after stop()
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed client: not news
            super().handle_error(request, client_address)


class StubLLM:
    def __init__(
        self,
        responder: Callable[[str, dict[str, Any]], Reply],
        latency_s: float = 0.0,
        served_models: set[str] | None = None,
        port: int = 0,
    ):
        self.responder = responder
        self.latency_s = latency_s
        self.served_models = served_models
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, payload = stub._answer(json.loads(body or b"{}"))
                data = payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self.port = port
        self._server: _Server | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> StubLLM:
        """Listen (again) on `port` (a free one the first time when it is 0)."""
        self._server = _Server(("127.0.0.1", self.port), self._handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: clients get `connection refused` until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stages(self) -> list[str]:
        with self._lock:
            return [r["stage"] for r in self.requests]

    def _answer(self, request: dict[str, Any]) -> tuple[int, str]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            stage = stage_of(request)
            model = request.get("model")
            if self.served_models is not None and model not in self.served_models:
                message = f"The model `{model}` does not exist."
                reply: Reply = (404, json.dumps({"object": "error", "message": message,
                                                 "type": "NotFoundError", "code": 404}))  # fmt: skip
            else:
                reply = self.responder(stage, request)
        finally:
            with self._lock:
                self._in_flight -= 1
        if isinstance(reply, tuple):
            with self._lock:
                self.requests.append(
                    {"stage": stage, "model": request.get("model"), "status": reply[0]}
                )
            return reply
        prompt_chars = sum(len(m.get("content") or "") for m in request.get("messages", []))
        usage = {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(reply) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self._lock:
            self.requests.append(
                {"stage": stage, "model": request.get("model"), "status": 200, "usage": usage}
            )
        return 200, json.dumps(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )


_EARLIER_RE = re.compile(r"Earlier calls and their results:\n(.*?)\n\n", re.DOTALL)
_FUNCTION_RE = re.compile(r"^Function: (\{.*\})$", re.MULTILINE)
_TURN_RE = re.compile(r"^Turn (\d+):\n((?:    .*\n?)*)", re.MULTILINE)


class SeedResponder:
    """Replies that imitate `seed`; `script[stage]` replies are served first, in order."""

    def __init__(self, seed: Task, tag: str = "stub", script: dict[str, list[Reply]] | None = None):
        world = World.load(seed)
        self.calls = [
            world.bind_python_call(parse_python_call(s)) for turn in seed.ground_truth for s in turn
        ]
        self.turns = [
            [parse_python_call(s).name for s in turn] for turn in seed.ground_truth if turn
        ]
        self.tag = tag
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self._lock = threading.Lock()

    def __call__(self, stage: str, request: dict[str, Any]) -> Reply:
        with self._lock:
            queue = self.script.get(stage)
            if queue:
                return queue.pop(0)
        text = request["messages"][-1]["content"]
        if stage == "plan":
            return (
                "<plan>" + json.dumps({"turns": self.turns, "notes": "an archive day"}) + "</plan>"
            )
        if stage == "arguments":
            earlier = _EARLIER_RE.search(text)
            n = (
                0
                if earlier is None or earlier.group(1) == "(none yet)"
                else earlier.group(1).count("\n- ") + 1
            )
            name = json.loads(_FUNCTION_RE.search(text).group(1))["name"]
            call = self.calls[n] if n < len(self.calls) else None
            if call is None or call.name != name:
                return "<arguments>{}</arguments>"
            args = {
                k: (f"{v} ({self.tag})" if k in ("content", "comment_content") else v)
                for k, v in call.arguments.items()
            }
            return "<arguments>" + json.dumps(args) + "</arguments>"
        if stage in ("queries", "repair"):
            n_turns = (
                len(_TURN_RE.findall(text))
                if stage == "queries"
                else len(re.findall(r"^Turn \d+: user:", text, re.MULTILINE))
            )
            queries = [
                f"Errand number {u + 1} for the {self.tag} assistant: handle the next piece of my archive day, "
                f"with all the details I mentioned ({u})."
                for u in range(n_turns)
            ]
            return "<queries>" + json.dumps(queries) + "</queries>"
        if stage == "judge":
            return '<verdict>{"ok": true, "reasons": []}</verdict>'
        return (400, json.dumps({"error": {"message": "unknown stage"}}))
