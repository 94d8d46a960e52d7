"""Fail-open: logtap can never change what a call returns or raises; streams pass through unchanged."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EventStreamError

import logtap
from logtap import context as tag_context
from logtap import middleware
from support.bedrock_fixtures import new_runtime_client
from support.bedrock_server import (
    BedrockServer,
    anthropic_stream_chunks,
    converse_reply,
    converse_stream_reply,
    error_reply,
    invoke_reply,
    invoke_stream_reply,
    stream_exception,
)

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
HEADER = "x-amzn-bedrock-request-metadata"


def strip_volatile(response: dict[str, Any]) -> dict[str, Any]:
    out = dict(response)
    meta = dict(out.pop("ResponseMetadata"))
    assert meta["HTTPStatusCode"] == 200
    return out


def call(client: Any, operation: str, metadata: Any = None) -> Any:
    """Run one operation to completion and return a comparable result."""
    extra = {} if metadata is None else {"requestMetadata": metadata}
    if operation == "Converse":
        return strip_volatile(client.converse(modelId=MODEL, messages=MESSAGES, **extra))
    if operation == "ConverseStream":
        response = client.converse_stream(modelId=MODEL, messages=MESSAGES, **extra)
        return list(response["stream"])
    if operation == "InvokeModel":
        response = strip_volatile(client.invoke_model(modelId=MODEL, body=b"{}", **extra))
        response["body"] = response["body"].read()
        return response
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}", **extra)
    return [event["chunk"]["bytes"] for event in response["body"]]


REPLIES: dict[str, Callable[[], Any]] = {
    "Converse": lambda: converse_reply("same answer", input_tokens=3, output_tokens=4),
    "ConverseStream": lambda: converse_stream_reply([f"part{i} " for i in range(25)]),
    "InvokeModel": lambda: invoke_reply({"outputs": [{"text": "same answer"}]}),
    "InvokeModelWithResponseStream": lambda: invoke_stream_reply(anthropic_stream_chunks(["a", "b", "c"] * 5)),
}
OPERATIONS = list(REPLIES)


def raising(*_: Any, **__: Any) -> Any:
    raise RuntimeError("logtap internal failure (test)")


INTERNALS = ["_base_tags", "_merge", "_fit_json", "_dump", "_parse_caller_json", "_put_header", "_base_json"]


def _run_with_broken(
    server: BedrockServer, raw: Any, clients: list[Any], caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Each operation through each client equals the raw client's; returns the failure warnings."""
    failures: list[str] = []
    for operation in OPERATIONS:
        for client in clients:
            knows_param = "requestMetadata" in client.meta.service_model.operation_model(
                operation).input_shape.members
            metadata: Any = None
            if knows_param:
                metadata = '{"c":"1"}' if operation.startswith("Invoke") else {"c": "1"}
            server.enqueue(REPLIES[operation]())
            expected = call(raw, operation, metadata)
            expected_request = server.last
            server.enqueue(REPLIES[operation]())
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="logtap"), logtap.tags(q="2"):
                assert call(client, operation, metadata) == expected
            failed = [r.getMessage() for r in caplog.records if "internal error in hook" in r.getMessage()]
            if failed:  # the request went out exactly as the raw client's did
                assert server.last.body == expected_request.body
                assert server.last.header(HEADER) == expected_request.header(HEADER)
            failures += failed
    return failures


@pytest.mark.parametrize("internal", [*INTERNALS, "current_stack", "ALL"])
def test_every_hook_failing_leaves_the_call_untouched(
    bedrock_server: BedrockServer, make_runtime_client: Any, old_botocore_session: Any,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, internal: str,
) -> None:
    raw = make_runtime_client()
    clients = [logtap.instrument(make_runtime_client(), tags={"p": "1"}),
               logtap.instrument(new_runtime_client(bedrock_server.url, old_botocore_session), tags={"p": "1"})]
    for name in INTERNALS if internal == "ALL" else [internal]:
        if name == "current_stack":
            continue
        monkeypatch.setattr(middleware, name, raising)
    if internal in ("current_stack", "ALL"):
        monkeypatch.setattr(tag_context, "current_stack", raising)
    assert _run_with_broken(bedrock_server, raw, clients, caplog)  # the broken code was reached


def _hook_names(client: Any) -> set[str]:
    state = middleware._state_of(client)
    assert state is not None
    return {handler.__name__ for _event, handler, _uid in middleware._registrations(state)}


def test_every_registered_hook_raising_leaves_every_call_untouched(
    bedrock_server: BedrockServer, make_runtime_client: Any, old_botocore_session: Any,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """Each hook logtap registers (new and old botocore) raises as a whole; every call is as the raw one."""
    guard_code = middleware._guarded(lambda self: None).__code__
    probe = [logtap.instrument(make_runtime_client()),
             logtap.instrument(new_runtime_client(bedrock_server.url, old_botocore_session))]
    for client in probe:  # every handler on the client runs inside the guard
        state = middleware._state_of(client)
        assert state is not None
        assert all(handler.__func__.__code__ is guard_code for _e, handler, _u in middleware._registrations(state))
    names = _hook_names(probe[0]) | _hook_names(probe[1])
    assert names == {"on_converse_params", "on_before_call_body", "on_before_call_header"}
    for client in probe:
        logtap.uninstrument(client)

    def broken(name: str) -> Any:
        def hook(self: Any, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError(f"logtap internal failure in {name} (test)")

        hook.__name__ = name
        return middleware._guarded(hook)

    for name in names:
        monkeypatch.setattr(middleware._ClientState, name, broken(name))
    raw = make_runtime_client()
    clients = [logtap.instrument(make_runtime_client(), tags={"p": "1"}),
               logtap.instrument(new_runtime_client(bedrock_server.url, old_botocore_session), tags={"p": "1"})]
    failures = _run_with_broken(bedrock_server, raw, clients, caplog)
    assert {m.split("hook ")[1].split(";")[0] for m in failures} == names  # each one really raised


def test_failing_header_write_on_old_botocore(
    bedrock_server: BedrockServer, old_botocore_session: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = logtap.instrument(new_runtime_client(bedrock_server.url, old_botocore_session), tags={"p": "1"})
    monkeypatch.setattr(middleware, "_put_header", raising)
    with caplog.at_level(logging.WARNING, logger="logtap"):
        body = client.invoke_model(modelId=MODEL, body=b"{}")["body"].read()
    assert body == invoke_reply().body
    assert bedrock_server.last.header(HEADER) is None
    assert [r.getMessage() for r in caplog.records] == [
        "logtap: internal error in hook on_before_call_header; the call proceeds without logtap's changes"]


def test_session_instrumentation_failure_does_not_break_client_creation(
    bedrock_server: BedrockServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = boto3.Session()
    logtap.instrument_session(session, tags={"p": "1"})
    monkeypatch.setattr(middleware, "instrument", raising)
    client = new_runtime_client(bedrock_server.url, session)
    assert client.converse(modelId=MODEL, messages=MESSAGES)["stopReason"] == "end_turn"
    assert "requestMetadata" not in bedrock_server.last.json()


ERRORS = [
    ("ThrottlingException", "Too many requests, please wait before trying again.", 429),
    ("ValidationException", "The provided model identifier is invalid.", 400),
    ("AccessDeniedException", "You don't have access to the model with the specified model ID.", 403),
]


def capture_error(client: Any, operation: str) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(client, operation)
    return info.value


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(("code", "message", "status"), ERRORS)
def test_service_errors_reach_the_caller_unchanged(
    bedrock_server: BedrockServer, make_runtime_client: Any, operation: str, code: str, message: str, status: int
) -> None:
    raw = make_runtime_client()
    tagged = logtap.instrument(make_runtime_client(), tags={"p": "1"}, strict=True)
    bedrock_server.enqueue(error_reply(code, message))
    expected = capture_error(raw, operation)
    bedrock_server.enqueue(error_reply(code, message))
    with logtap.tags(q="2"):
        got = capture_error(tagged, operation)
    assert type(got) is type(expected)
    assert got.response["Error"] == expected.response["Error"] == {"Code": code, "Message": message}
    assert got.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert str(got).replace("local-2", "local-1") == str(expected)
    assert type(got).__name__ == code
    logtap.uninstrument(tagged)


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_mid_stream_errors_unchanged(bedrock_server: BedrockServer, make_runtime_client: Any, operation: str) -> None:
    def reply() -> Any:
        extra = [stream_exception("throttlingException", "slow down")]
        if operation == "ConverseStream":
            return converse_stream_reply(["a", "b"], extra_events=extra)
        return invoke_stream_reply(anthropic_stream_chunks(["a"]), extra_events=extra)

    results = []
    for client in (make_runtime_client(), logtap.instrument(make_runtime_client(), tags={"p": "1"})):
        bedrock_server.enqueue(reply())
        with pytest.raises(EventStreamError) as info:
            call(client, operation)
        results.append((type(info.value), info.value.response["Error"], str(info.value)))
    assert results[0] == results[1]
    assert results[0][1] == {"Code": "throttlingException", "Message": "slow down"}


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_stream_chunks_reach_the_caller_unchanged_and_in_order(
    bedrock_server: BedrockServer, make_runtime_client: Any, operation: str
) -> None:
    raw = make_runtime_client()
    tagged = logtap.instrument(make_runtime_client(), tags={"p": "1"})
    bedrock_server.enqueue(REPLIES[operation]())
    expected = call(raw, operation)
    bedrock_server.enqueue(REPLIES[operation]())
    with logtap.tags(q="2"):
        got = call(tagged, operation)
    assert got == expected
    if operation == "ConverseStream":
        texts = [e["contentBlockDelta"]["delta"]["text"] for e in got if "contentBlockDelta" in e]
        assert texts == [f"part{i} " for i in range(25)]
        assert bedrock_server.last.json()["requestMetadata"] == {"q": "2", "p": "1"}
    else:
        assert [json.loads(chunk) for chunk in got] == anthropic_stream_chunks(["a", "b", "c"] * 5)
        assert bedrock_server.last.header(HEADER) == '{"q":"2","p":"1"}'
