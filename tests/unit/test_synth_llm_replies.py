"""The llm backend's handling of each kind of bad reply, its schemas, its per-stage stats and the
words of each transport fault. litellm is replaced by a scripted fake (unit test: no server);
the real server is tested in tests/integration/test_synth_llm_real.py."""

from __future__ import annotations

import random
import socket
from types import SimpleNamespace
from typing import Any

import pytest

import graphs.synthesis.llm as llm
from graphs.synthesis import prompts
from graphs.synthesis.backend import (
    ArgContext,
    BackendMisconfigured,
    BackendUnavailable,
    PlanContext,
    QueryContext,
)
from rods.env.world import World
from rods.signature import compute_signature
from rods.tasks import function_docs, get_bfcl_task

SEED = "multi_turn_base_5"  # TwitterAPI + GorillaFileSystem


class FakeLiteLLM:
    """Answers `completion` with scripted contents (or raises a scripted exception)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    def completion(self, **kw: Any) -> Any:
        self.calls.append(kw)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        message = SimpleNamespace(content=reply)
        usage = SimpleNamespace(prompt_tokens=100, completion_tokens=10)
        return SimpleNamespace(choices=[SimpleNamespace(message=message)], usage=usage)

    def completion_cost(self, **_: Any) -> float:
        return 0.0


@pytest.fixture
def seed():
    return get_bfcl_task(SEED)


def backend(monkeypatch: pytest.MonkeyPatch, *replies: Any, **kw: Any) -> tuple[llm.LLMBackend, FakeLiteLLM]:
    fake = FakeLiteLLM(*replies)
    monkeypatch.setattr(llm, "_litellm", lambda: fake)
    return llm.LLMBackend("openai/m", api_base="http://127.0.0.1:9/v1", **kw), fake


def _plan_ctx(seed):
    return PlanContext(seed, compute_signature(seed), tuple(seed.involved_classes), 0, random.Random(0))


def _doc(name: str) -> dict[str, Any]:
    return next(d for ds in function_docs().values() for d in ds if d["name"] == name)


def test_each_kind_of_bad_reply_is_its_own_failure(monkeypatch, seed) -> None:
    b, _ = backend(monkeypatch, "Sure, here is a plan.", '{"turns": "cd"}', '{"turns": [["cd", "fly_to_mars"]]}',
                   '{"turns": [["cd"], ["ls"]], "notes": "tidy"}', json_schema=False)  # fmt: skip
    kinds = []
    for _ in range(3):
        p = b.plan(_plan_ctx(seed))
        kinds.append((p.failure.code, p.failure.detail.split(":")[0]))
    assert kinds == [("decompose_failed", "no_json"), ("decompose_failed", "wrong_shape"),
                     ("func_sample_failed", "unknown_function")]  # fmt: skip
    assert b.plan(_plan_ctx(seed)).value.turns == (("cd",), ("ls",))
    m = b.stats.metrics()
    assert m["llm/plan/calls"] == 4 and m["llm/plan/parsed"] == 1
    assert m["llm/plan/fail/no_json"] == m["llm/plan/fail/wrong_shape"] == m["llm/plan/fail/unknown_function"] == 1
    assert m["llm/plan/prompt_tokens"] == 400 and m["llm/plan/completion_tokens"] == 40
    assert m["llm/plan/seconds"] >= 0


def test_an_id_that_is_not_in_the_world_and_a_turn_that_names_a_function(monkeypatch, seed) -> None:
    world = World.load(seed)
    b, _ = backend(monkeypatch, '{"tweet_id": 987654321, "comment_content": "nice"}',
                   '{"queries": ["Please run get_user_tweets for me", "Then tidy up"]}')  # fmt: skip
    p = b.arguments(ArgContext("comment", _doc("comment"), world, [], 0, random.Random(0)))
    assert p.failure.code == "param_gen_failed" and p.failure.detail.startswith("not_in_world: tweet_id=987654321")
    q = b.queries(QueryContext(seed, ((), ()), ((), ()), seed.initial_config, random.Random(0)))
    assert q.failure.code == "query_gen_failed" and q.failure.detail == "names_function: get_user_tweets"
    m = b.stats.metrics()
    assert m["llm/arguments/fail/not_in_world"] == 1 and m["llm/queries/fail/names_function"] == 1


def test_a_provider_rejection_is_a_counted_failure(monkeypatch, seed) -> None:
    b, _ = backend(monkeypatch, ValueError("This model's maximum context length is 10 tokens"))
    p = b.judge(seed)
    assert p.failure.code == "query_verify_no_tag" and p.failure.detail.startswith("rejected:")
    assert b.stats.metrics()["llm/judge/fail/rejected"] == 1


def test_schemas_are_sent_and_stage_budgets_apply(monkeypatch, seed) -> None:
    b, fake = backend(monkeypatch, '{"turns": [["cd"], ["ls"]], "notes": ""}', '{"ok": true, "reasons": []}')
    b.plan(_plan_ctx(seed))
    b.judge(seed)
    plan_format, judge_format = (c["response_format"]["json_schema"] for c in fake.calls)
    enum = plan_format["schema"]["properties"]["turns"]["items"]["items"]["enum"]
    assert "cd" in enum and "post_tweet" in enum and "fly_to_mars" not in enum
    assert judge_format["schema"] == prompts.VERDICT_SCHEMA
    assert [c["max_tokens"] for c in fake.calls] == [llm.STAGE_TOKENS["plan"], llm.STAGE_TOKENS["judge"]]
    off, fake_off = backend(monkeypatch, '{"ok": true}', json_schema=False)
    off.judge(seed)
    assert "response_format" not in fake_off.calls[0]


def test_arguments_schema_follows_the_function_doc() -> None:
    schema = prompts.arguments_schema(_doc("mv"))
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["source", "destination"]
    assert schema["properties"]["source"] == {"type": "string", "maxLength": 200}
    numbers = prompts.arguments_schema(_doc("get_stock_info"))
    assert numbers["properties"]["symbol"]["type"] == "string"
    assert prompts.queries_schema(3)["properties"]["queries"]["minItems"] == 3


class _Err(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status


def test_each_transport_fault_has_its_own_words() -> None:
    base = "http://127.0.0.1:8080/v1"
    keyless = llm.provider_error(_Err("OpenAIException - Missing credentials. Please pass an `api_key`", 500), "openai/x", None)
    assert isinstance(keyless, BackendMisconfigured) and str(keyless).startswith("no API key for openai/x")
    garbage = llm.provider_error(_Err("OpenAIException - Empty or invalid response from LLM endpoint. Received: '<html>'", 500), "openai/x", base)  # fmt: skip
    assert isinstance(garbage, BackendMisconfigured)
    assert f"{base} answered with something that is not an OpenAI chat completion" in str(garbage)
    five = llm.provider_error(_Err("OpenAIException - boom", 503), "openai/x", base)
    assert type(five) is BackendUnavailable and str(five) == f"model server error 503 at {base}: boom"

    class Timeout(Exception):
        pass

    silent = llm.provider_error(Timeout("Request timed out."), "openai/x", base)
    assert str(silent).startswith(f"the model server at {base} sent no reply in time")
    assert len({str(keyless)[:20], str(garbage)[:20], str(five)[:20], str(silent)[:20]}) == 4


def test_preflight_names_a_closed_port_and_a_missing_key(monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = llm.LLMBackend("openai/m", api_base=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(BackendUnavailable, match=f"^connection refused at http://127.0.0.1:{port}/v1$"):
        closed.preflight()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendMisconfigured, match="no API key for openai/gpt-4o-mini: set OPENAI_API_KEY"):
        llm.LLMBackend("openai/gpt-4o-mini").preflight()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    llm.LLMBackend("openai/gpt-4o-mini").preflight()  # a key is there: nothing sent, nothing raised


def test_the_run_report_shows_the_model_per_stage() -> None:
    from report.html import llm_table

    html = llm_table({"llm/plan/calls": 4, "llm/plan/parsed": 1, "llm/plan/fail/no_json": 3,
                      "llm/plan/seconds": 40, "llm/plan/prompt_tokens": 2000, "llm/plan/completion_tokens": 100,
                      "llm/judge/calls": 2, "llm/judge/parsed": 2})  # fmt: skip
    assert "<td>plan</td><td>4</td><td>25%</td><td>no_json 3</td><td>10.0</td><td>500 + 25</td>" in html
    assert "<td>judge</td><td>2</td><td>100%</td><td>–</td>" in html
