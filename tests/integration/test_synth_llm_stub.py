"""The LLM backend through litellm against a local OpenAI-compatible stub (loopback only).

The stub server runs in this process on a free 127.0.0.1 port; litellm's price map is read from
the package (LITELLM_LOCAL_MODEL_COST_MAP, set in tests/conftest.py). No other network.
"""

from __future__ import annotations

import json
import random
import socket

import pytest
from llm_stub import SeedResponder, StubLLM
from typer.testing import CliRunner

from cli.synth import synth_app
from graphs.synthesis.backend import (
    ArgContext,
    BackendMisconfigured,
    BackendUnavailable,
    PlanContext,
    Verdict,
)
from graphs.synthesis.graph import synthesize
from graphs.synthesis.llm import LLMBackend
from graphs.synthesis.state import result_metrics
from rods.env.world import World
from rods.signature import compute_signature
from rods.tasks import function_docs, get_bfcl_task, read_tasks

pytestmark = pytest.mark.integration
SEED_ID = "multi_turn_base_5"
KEY = "sk-stub-not-a-real-key"


@pytest.fixture(scope="module")
def seed():
    return get_bfcl_task(SEED_ID)


def backend(stub: StubLLM, model: str = "openai/stub", **kw) -> LLMBackend:
    return LLMBackend(model, api_base=stub.api_base, api_key=KEY, num_retries=0, timeout_s=20, **kw)


def test_graph_with_malformed_replies_counts_and_recovers(seed):
    script = {
        "plan": ["Let me think about a plan. I would start with the files."],  # no JSON at all
        "arguments": [
            # <think> block, fenced JSON, an invented parameter (dropped)
            '<think>{"folder": "wrong"}</think>```json\n{"folder": "project", "colour": "red"}\n```'
        ],
        "queries": ['```json\n["only one query"]\n```'],  # wrong number of turns
        "judge": ['<verdict>{"ok": false, "reasons": ["turn 2 is vague"]}</verdict>'],
    }
    responder = SeedResponder(seed, tag="llm", script=script)
    with StubLLM(responder) as stub:
        res = synthesize(seed, n_variants=1, backend=backend(stub), request_id="r-llm")
        requests = list(stub.requests)
    assert len(res.tasks) == 1, (res.failures, res.rejections)
    assert res.attempts == 2
    assert res.failures == {"decompose_failed": 1, "query_gen_failed": 1, "query_verify_failed": 1}
    task = res.tasks[0]
    assert task.rods.synthesizer == "llm:openai/stub" and task.rods.request_id == "r-llm"
    assert task.ground_truth[0][0] == "cd(folder='project')"
    assert all(m[0].content.startswith("Errand number") for m in task.question)
    # usage: every request counted, tokens as the stub reported them
    assert res.model_calls == len(requests)
    assert res.prompt_tokens == sum(r["usage"]["prompt_tokens"] for r in requests)
    assert res.completion_tokens == sum(r["usage"]["completion_tokens"] for r in requests)
    assert res.cost_usd == 0.0  # no price known for "stub"
    stages = [r["stage"] for r in requests]
    assert stages.count("plan") == 3 and stages.count("repair") == 1 and stages.count("judge") == 2
    assert result_metrics(res)["synth/tokens"] == res.prompt_tokens + res.completion_tokens


def test_cost_of_a_priced_model_comes_from_litellm(seed):
    import litellm

    with StubLLM(SeedResponder(seed)) as stub:
        proposal = backend(stub, model="openai/gpt-4o-mini").judge(seed)
        usage = stub.requests[0]["usage"]
    assert proposal.failure is None and proposal.value == Verdict(True, ())
    price = litellm.model_cost["gpt-4o-mini"]
    expected = (
        usage["prompt_tokens"] * price["input_cost_per_token"]
        + usage["completion_tokens"] * price["output_cost_per_token"]
    )
    assert proposal.usage.cost_usd == pytest.approx(expected) and expected > 0
    assert proposal.usage.prompt_tokens == usage["prompt_tokens"] and proposal.usage.calls == 1


def _free_port() -> int:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plan_ctx(seed):
    import random

    return PlanContext(
        seed, compute_signature(seed), tuple(seed.involved_classes), 0, random.Random(0)
    )


@pytest.mark.parametrize(
    ("status", "message", "raised", "words"),
    [
        (500, "boom", BackendUnavailable, "model server error 500"),
        (502, "bad gateway", BackendUnavailable, "model server error 502"),
        (503, "overloaded", BackendUnavailable, "model server error 503"),
        (429, "slow down", BackendUnavailable, "model server error 429"),
        (401, "bad key", BackendMisconfigured, "refused the API key"),
        (404, "The model `stub` does not exist.", BackendMisconfigured, "model not found: openai/stub"),
    ],
)
def test_provider_faults_raise_instead_of_counting(seed, status, message, raised, words):
    body = json.dumps({"object": "error", "message": message, "code": status})
    with StubLLM(lambda stage, req: (status, body)) as stub:
        with pytest.raises(raised, match=words) as info:
            backend(stub).plan(_plan_ctx(seed))
    assert info.type is raised  # a configuration error is not reported as transient, nor back
    assert stub.api_base in str(info.value)


def test_content_rejections_stay_counted_failures(seed):
    body = json.dumps({"error": {"message": "This model's maximum context length is 10 tokens"}})
    with StubLLM(lambda stage, req: (400, body)) as stub:
        p = backend(stub).plan(_plan_ctx(seed))
    assert p.value is None and p.failure.code == "decompose_failed" and p.usage.calls == 1
    assert "maximum context length" in p.failure.detail


def test_dead_server_and_unknown_model_stop_the_graph(seed):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    dead = LLMBackend("openai/stub", api_base=url, api_key=KEY, num_retries=0, timeout_s=5)
    doc = next(d for d in function_docs()["GorillaFileSystem"] if d["name"] == "cd")
    with pytest.raises(BackendUnavailable, match=f"connection refused at {url}$"):
        dead.arguments(ArgContext("cd", doc, World.load(seed), [], 0, random.Random(0)))
    with pytest.raises(BackendUnavailable, match="connection refused"):  # not a counted failure
        synthesize(seed, n_variants=1, backend=dead, request_id="r-dead")
    with StubLLM(SeedResponder(seed), served_models={"served"}) as stub:
        with pytest.raises(BackendMisconfigured, match="model not found: openai/stub"):
            synthesize(seed, n_variants=2, backend=backend(stub), request_id="r-404")
        assert len(stub.requests) == 1  # stopped at the first call, not after every stage


def test_a_server_that_refuses_then_recovers(seed):
    stub = StubLLM(SeedResponder(seed), port=_free_port())
    b = backend(stub)
    with pytest.raises(BackendUnavailable, match="connection refused"):
        b.judge(seed)
    with stub:
        assert b.judge(seed).value == Verdict(True, ())
    with pytest.raises(BackendUnavailable, match="connection refused"):
        b.judge(seed)


def test_judge_reply_without_a_verdict(seed):
    replies = ["Looks fine to me!", '<verdict>{"ok": "yes"}</verdict>']
    with StubLLM(lambda stage, req: replies.pop(0)) as stub:
        b = backend(stub)
        first, second = b.judge(seed), b.judge(seed)
    assert (
        first.failure.code == "query_verify_no_tag" and second.failure.code == "query_verify_no_tag"
    )


def test_per_stage_models_and_sampling_parameters(seed):
    seen = []

    def responder(stage, req):
        seen.append((stage, req["model"], req.get("temperature"), req.get("top_p")))
        return '<verdict>{"ok": true}</verdict>'

    with StubLLM(responder) as stub:
        b = backend(stub, per_stage_models={"judge": "openai/stub-judge"})
        b.judge(seed)
    assert seen == [("judge", "stub-judge", 1.0, 0.7)]
    with pytest.raises(ValueError, match="unknown stages"):
        LLMBackend("openai/stub", per_stage_models={"jduge": "x"})


def test_cli_run_with_the_llm_backend_then_validate(seed, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "variants.jsonl"
    runner = CliRunner()
    with StubLLM(SeedResponder(seed, tag="cli")) as stub:
        res = runner.invoke(
            synth_app,
            [
                "run",
                "--seed",
                SEED_ID,
                "--n",
                "1",
                "--backend",
                "llm",
                "--model",
                "openai/stub",
                "--api-base",
                stub.api_base,
                "--out",
                str(out),
            ],
        )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert metrics["synth/accepted"] == 1
    (task,) = read_tasks(out)
    assert task.rods.parent_id == SEED_ID and task.rods.synthesizer == "llm:openai/stub"
    res = runner.invoke(synth_app, ["validate", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["passed"] == 1


@pytest.mark.parametrize("fault", ["refused", "unknown_model"])
def test_cli_run_says_what_is_wrong_with_the_server_once(seed, tmp_path, monkeypatch, fault):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "variants.jsonl"
    with StubLLM(SeedResponder(seed), served_models={"Qwen/Qwen3-32B"}) as stub:
        url = stub.api_base if fault == "unknown_model" else f"http://127.0.0.1:{_free_port()}/v1"
        args = ["run", "--seed", SEED_ID, "--n", "3", "--backend", "llm", "--model",
                "openai/stub", "--api-base", url, "--out", str(out)]  # fmt: skip
        res = CliRunner().invoke(synth_app, args)
        calls = len(stub.requests)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and not out.exists()
    words = f"connection refused at {url}" if fault == "refused" else "model not found: openai/stub"
    assert res.output.count(words) == 1, res.output
    assert "decompose_failed" not in res.output
    # the first call only (RODS_SYNTH_NUM_RETRIES defaults to 0), not one per stage and attempt
    assert calls == (1 if fault == "unknown_model" else 0)
