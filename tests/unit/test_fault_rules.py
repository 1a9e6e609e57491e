"""The pure rules behind fault handling: which provider errors stop a request, how long the
dispatcher waits before sending a failed request again, and what a malformed entry says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graphs.synthesis.backend import BackendMisconfigured, BackendUnavailable
from graphs.synthesis.llm import provider_error
from rods.boundary import BoundaryRequest
from rods.store.stream import malformed_reason
from services.dispatcher import retry_delay_s

URL = "http://synth-llm:8000/v1"


def _named(name: str, status: int | None = None, cause: BaseException | None = None) -> Exception:
    """An exception of a class called `name` (how litellm's are told apart), with a status."""
    e = type(name, (Exception,), {})(f"litellm.{name}: OpenAIException - the provider's words")
    if status is not None:
        e.status_code = status  # type: ignore[attr-defined]
    e.__cause__ = cause
    return e


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (_named("InternalServerError", 500, ConnectionRefusedError(111, "refused")),
         BackendUnavailable, f"connection refused at {URL}"),
        (_named("Timeout", 408), BackendUnavailable, f"the model server at {URL} sent no reply in time"),
        (_named("APIConnectionError", None, OSError("Name or service not known")),
         BackendUnavailable, f"cannot connect to {URL} (OSError"),
        (_named("ServiceUnavailableError", 503), BackendUnavailable, "model server error 503"),
        (_named("RateLimitError", 429), BackendUnavailable, "model server error 429"),
        (_named("APIError", 504), BackendUnavailable, "model server error 504"),
        (_named("NotFoundError", 404), BackendMisconfigured, "model not found: hosted_vllm/m at"),
        (_named("AuthenticationError", 401), BackendMisconfigured, "refused the API key"),
        (_named("PermissionDeniedError", 403), BackendMisconfigured, "refused the API key"),
    ],
)  # fmt: skip
def test_provider_faults_are_classified(error, kind, message):
    fault = provider_error(error, "hosted_vllm/m", URL)
    assert type(fault) is kind and message in str(fault)
    assert fault.retryable is (kind is BackendUnavailable)


@pytest.mark.parametrize("name", ["ContextWindowExceededError", "ContentPolicyViolationError",
                                  "BadRequestError", "UnprocessableEntityError"])  # fmt: skip
def test_content_rejections_are_not_faults(name):
    assert provider_error(_named(name, 400), "openai/gpt-4o-mini", None) is None


def test_an_unroutable_model_string_is_a_configuration_error():
    e = _named("BadRequestError", 400)
    e.args = ("LLM Provider NOT provided. Pass in the LLM provider you are trying to call",)
    fault = provider_error(e, "gpt4", None)
    assert isinstance(fault, BackendMisconfigured) and "'gpt4'" in str(fault)
    assert "the gpt4 API" not in str(fault)


def test_without_an_api_base_the_provider_is_named():
    fault = provider_error(_named("InternalServerError", 500), "openai/gpt-4o-mini", None)
    assert "at the openai API" in str(fault)


def test_retry_delay_doubles_per_delivery_up_to_the_cap():
    assert [retry_delay_s(n, 30.0, 100.0) for n in (1, 2, 3, 4)] == [30.0, 60.0, 100.0, 100.0]
    assert retry_delay_s(0, 2.0, 60.0) == 2.0


def test_malformed_reasons_name_the_field():
    with pytest.raises(ValidationError) as info:
        BoundaryRequest.model_validate_json('{"request_id": "x@1"}')
    reason = malformed_reason({"request": '{"request_id": "x@1"}'}, info.value)
    assert reason.startswith("malformed request: task_id: Field required")
    assert malformed_reason({"payload": "1", "a": "2"}, None) == (
        "malformed entry: no 'request' field (fields: ['a', 'payload'])"
    )
    assert malformed_reason({}, None) == "malformed entry: no 'request' field (fields: none)"
