"""aioboto3 bedrock-runtime clients, with aioboto3's own (older) aiobotocore and botocore.

Runs only in the second venv (``make test-aioboto3`` builds ``.venv-aioboto3`` from
``constraints-aioboto3.txt``); the main run leaves this file out (``--ignore``), as aioboto3 pins
an aiobotocore, and so a botocore, older than the main venv's.

Everything is real: aioboto3 creates the client, aiobotocore/aiohttp sends signed requests to the
local bedrock-runtime server (event streams included), logtap's sink writes gzipped log files.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import aiobotocore
import botocore
import botocore.session
import pytest
from botocore.config import Config

import logtap
from logtap import middleware
from logtap.sink import open_sink
from support.bedrock_fixtures import FAKE_CREDENTIALS
from support.bedrock_server import (
    BedrockServer,
    RecordedRequest,
    Reply,
    anthropic_stream_chunks,
    converse_reply,
    converse_stream_reply,
    invoke_reply,
    invoke_stream_reply,
)
from support.sink_logs import FILE_NAME, KEY, read_records

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
HEADER = "x-amzn-bedrock-request-metadata"
PLACEHOLDER_ACCOUNT = "000000000000"
STREAM_TEXTS = [f"piece {i}" for i in range(12)]
INVOKE_STREAM_TEXTS = [f"bit {i}" for i in range(9)]
INVOKE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "aioboto3 hi"}]}]}
INVOKE_ANSWER = {"id": "msg_aio", "type": "message", "role": "assistant",
                 "content": [{"type": "text", "text": "an answer for aioboto3"}], "model": "claude-local",
                 "stop_reason": "end_turn", "stop_sequence": None,
                 "usage": {"input_tokens": 12, "output_tokens": 7}}


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def botocore_knows_invoke_metadata() -> dict[str, bool]:
    """Whether this venv's real botocore has ``requestMetadata`` on each InvokeModel* operation."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return {op: "requestMetadata" in model.operation_model(op).input_shape.members
            for op in middleware.INVOKE_OPS}


def reply_for(request: RecordedRequest) -> Reply:
    """Distinct answers per operation, so the test can tell every chunk and body apart."""
    if request.operation == "ConverseStream":
        return converse_stream_reply(STREAM_TEXTS, chunk_delay=0.002)
    if request.operation == "InvokeModelWithResponseStream":
        return invoke_stream_reply(anthropic_stream_chunks(INVOKE_STREAM_TEXTS), chunk_delay=0.002)
    if request.operation == "InvokeModel":
        return invoke_reply(INVOKE_ANSWER)
    text = (request.json() or {}).get("messages", [{}])[0].get("content", [{}])[0].get("text", "")
    return converse_reply(f"echo: {text}")


@pytest.fixture
def server(bedrock_server: BedrockServer) -> BedrockServer:
    bedrock_server.handler = reply_for
    return bedrock_server


@pytest.fixture
def no_sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The sink's caller-identity lookup meets a closed local port: records use the placeholder."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    yield


def client_kwargs(url: str) -> dict[str, Any]:
    return dict(endpoint_url=url, region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1, "mode": "standard"}), **FAKE_CREDENTIALS)


async def four_operations(client: Any) -> dict[str, Any]:
    """All four operations, streams iterated to the end, InvokeModel's body read by the caller."""
    seen: dict[str, Any] = {}
    seen["Converse"] = await client.converse(modelId=NOVA, messages=messages("four ops"))
    response = await client.converse_stream(modelId=NOVA, messages=messages("stream please"))
    seen["ConverseStream"] = [event async for event in response["stream"]]
    response = await client.invoke_model(modelId=CLAUDE, body=json.dumps(INVOKE_BODY),
                                         contentType="application/json", accept="application/json")
    seen["InvokeModel"] = await response["body"].read()
    response = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(INVOKE_BODY))
    seen["InvokeModelWithResponseStream"] = [event["chunk"]["bytes"] async for event in response["body"]]
    return seen


def expected_invoke_stream_bytes() -> list[bytes]:
    """The chunk bytes exactly as the server sent them (base64 inside each event)."""
    reply = invoke_stream_reply(anthropic_stream_chunks(INVOKE_STREAM_TEXTS))
    return [base64.b64decode(event.payload["bytes"]) for event in reply.events or []]


def check_caller_saw_everything(seen: dict[str, Any]) -> None:
    assert seen["Converse"]["output"]["message"]["content"] == [{"text": "echo: four ops"}]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in seen["ConverseStream"] if "contentBlockDelta" in e]
    assert deltas == STREAM_TEXTS  # every chunk, unchanged, in order
    assert [next(iter(e)) for e in seen["ConverseStream"]] == (
        ["messageStart"] + ["contentBlockDelta"] * len(STREAM_TEXTS)
        + ["contentBlockStop", "messageStop", "metadata"])
    assert seen["InvokeModel"] == json.dumps(INVOKE_ANSWER).encode()  # the body, byte for byte
    assert seen["InvokeModelWithResponseStream"] == expected_invoke_stream_bytes()


def check_wire(requests: list[RecordedRequest], tags: dict[str, str]) -> None:
    """Converse* carry the tags in the JSON body; InvokeModel* in the signed header."""
    ops = {r.operation: r for r in requests}
    assert set(ops) == {"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"}
    for op in middleware.CONVERSE_OPS:
        assert ops[op].json()["requestMetadata"] == tags
        assert ops[op].header(HEADER) is None
    for op in middleware.INVOKE_OPS:
        assert json.loads(ops[op].header(HEADER) or "null") == tags
        assert HEADER in ops[op].signed_headers, ops[op].signed_headers
        assert ops[op].json() == INVOKE_BODY  # the caller's body is sent untouched
        assert "requestmetadata" not in ops[op].path.lower()


def check_sink(root: Path, seen: dict[str, Any], tags: dict[str, str]) -> None:
    records = read_records(root)
    assert len(records) == 4, [rec["operation"] for _, rec in records]
    for path, _rec in records:
        assert KEY.match(path), path
        assert FILE_NAME.match(path.rsplit("/", 1)[1]), path
        assert path.startswith(f"AWSLogs/{PLACEHOLDER_ACCOUNT}/BedrockModelInvocationLogs/us-east-1/")
        with gzip.open(root / path) as fh:  # a complete gzip file
            fh.read()
    ops = {rec["operation"]: rec for _, rec in records}
    assert set(ops) == {"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"}
    for op, rec in ops.items():
        assert rec["schemaType"] == "ModelInvocationLog" and rec["schemaVersion"] == "1.0"
        assert rec["requestMetadata"] == tags, op
        assert rec["accountId"] == PLACEHOLDER_ACCOUNT and rec["region"] == "us-east-1"
        assert rec["modelId"] == (NOVA if op.startswith("Converse") else CLAUDE)
        assert "errorCode" not in rec, (op, rec.get("errorCode"))
        assert rec["input"]["inputTokenCount"] == 12 and rec["output"]["outputTokenCount"] == 7
    assert ops["Converse"]["input"]["inputBodyJson"]["messages"] == messages("four ops")
    assert ops["Converse"]["output"]["outputBodyJson"]["output"] == seen["Converse"]["output"]
    assert ops["ConverseStream"]["output"]["outputBodyJson"]["output"]["message"]["content"] == [
        {"text": "".join(STREAM_TEXTS)}]
    assert ops["InvokeModel"]["input"]["inputBodyJson"] == INVOKE_BODY
    assert ops["InvokeModel"]["output"]["outputBodyJson"] == INVOKE_ANSWER
    assert ops["InvokeModelWithResponseStream"]["output"]["outputBodyJson"] == [
        json.loads(chunk) for chunk in seen["InvokeModelWithResponseStream"]]


def test_versions_and_which_invoke_path_runs(server: BedrockServer, capsys: pytest.CaptureFixture[str]) -> None:
    """This venv has aioboto3's real, older botocore, whose model does not know ``requestMetadata`` for
    InvokeModel*: logtap's header hook (which it uses with every botocore) is what tags them here."""
    knows = botocore_knows_invoke_metadata()

    async def main() -> Any:
        async with aioboto3.Session().client("bedrock-runtime", **client_kwargs(server.url)) as client:
            logtap.instrument(client, tags={"k": "v"})
            return client._logtap_state.invoke_param_ops, middleware._registrations(client._logtap_state)

    param_ops, registrations = asyncio.run(main())
    with capsys.disabled():
        print(f"\n[aioboto3 venv] aioboto3 {aioboto3.__version__}, aiobotocore {aiobotocore.__version__}, "
              f"botocore {botocore.__version__}; botocore knows InvokeModel* requestMetadata: {knows}")
    assert param_ops == frozenset(op for op, known in knows.items() if known)  # read from the real model
    header_hooks = {event for event, _, _ in registrations if event.startswith("before-call.")
                    and event.split(".")[-1] in middleware.INVOKE_OPS}
    assert header_hooks == {f"before-call.bedrock-runtime.{op}" for op in middleware.INVOKE_OPS}
    # The point of this venv: a REAL botocore too old for the parameter (the main venv's knows it).
    assert knows == {"InvokeModel": False, "InvokeModelWithResponseStream": False}, (
        f"botocore {botocore.__version__} knows requestMetadata now; an old botocore is no longer exercised here")


def test_aioboto3_client_tags_and_sink_all_four_operations(server: BedrockServer, tmp_path: Path,
                                                           no_sts: None) -> None:
    root = tmp_path / "logs"
    tags = {"app": "aioboto3", "task": "main"}

    async def main() -> dict[str, Any]:
        session = aioboto3.Session()
        async with session.client("bedrock-runtime", **client_kwargs(server.url)) as client:
            assert logtap.instrument(client, tags={"app": "aioboto3"}, sink=str(root)) is client

            async def tagged() -> dict[str, Any]:
                with logtap.tags(task="main"):
                    return await four_operations(client)

            return await asyncio.create_task(tagged())

    seen = asyncio.run(main())
    check_caller_saw_everything(seen)
    check_wire(server.requests, tags)
    assert logtap.flush(10)
    check_sink(root, seen, tags)
    open_sink(str(root)).close(5)


def test_aioboto3_tags_follow_each_asyncio_task(server: BedrockServer) -> None:
    """Concurrent tasks on one client: each request carries its own task's tags, none leak."""

    async def main() -> None:
        async with aioboto3.Session().client("bedrock-runtime", **client_kwargs(server.url)) as client:
            logtap.instrument(client, tags={"app": "aioboto3"})

            async def one(i: int) -> None:
                async with logtap.tags(task=str(i)):
                    await asyncio.sleep(0.001 * (5 - i))
                    await client.converse(modelId=NOVA, messages=messages(f"t{i}"))
                    await client.invoke_model(modelId=CLAUDE, body=json.dumps({"i": i}))

            await asyncio.gather(*(one(i) for i in range(5)))
            await client.converse(modelId=NOVA, messages=messages("outside"))

    asyncio.run(main())
    converse = {r.json()["messages"][0]["content"][0]["text"]: r.json().get("requestMetadata")
                for r in server.requests if r.operation == "Converse"}
    assert converse == {**{f"t{i}": {"task": str(i), "app": "aioboto3"} for i in range(5)},
                        "outside": {"app": "aioboto3"}}
    invoke = {r.json()["i"]: json.loads(r.header(HEADER) or "null")
              for r in server.requests if r.operation == "InvokeModel"}
    assert invoke == {i: {"task": str(i), "app": "aioboto3"} for i in range(5)}
    assert all(HEADER in r.signed_headers for r in server.requests if r.operation == "InvokeModel")


def test_aioboto3_instrument_session(server: BedrockServer, tmp_path: Path, no_sts: None) -> None:
    root = tmp_path / "session-logs"
    session = aioboto3.Session()
    assert logtap.instrument_session(session, tags={"app": "aioboto3-session"}, sink=str(root)) is session
    tags = {"app": "aioboto3-session", "task": "s"}

    async def main() -> dict[str, Any]:
        async with session.client("bedrock-runtime", **client_kwargs(server.url)) as client:
            assert middleware.is_instrumented(client)
            async with logtap.tags(task="s"):
                return await four_operations(client)

    seen = asyncio.run(main())
    check_caller_saw_everything(seen)
    check_wire(server.requests, tags)
    assert logtap.flush(10)
    check_sink(root, seen, tags)
    open_sink(str(root)).close(5)

    logtap.uninstrument_session(session)

    async def after() -> bool:
        async with session.client("bedrock-runtime", **client_kwargs(server.url)) as client:
            await client.converse(modelId=NOVA, messages=messages("untagged"))
            return middleware.is_instrumented(client)

    assert asyncio.run(after()) is False
    assert "requestMetadata" not in server.last.json()


def test_aioboto3_invoke_body_read_in_chunks_and_as_context_manager(server: BedrockServer, tmp_path: Path) -> None:
    """The replayed InvokeModel body reads like aiobotocore's own: chunks, lines, ``async with``."""
    from logtap.sink import Sink

    sink = Sink(tmp_path / "logs", resolve_account=False)
    answer = json.dumps(INVOKE_ANSWER, indent=1).encode()
    server.enqueue(invoke_reply(answer), invoke_reply(answer), invoke_reply(answer))

    async def main() -> tuple[bytes, list[bytes], bytes]:
        async with aioboto3.Session().client("bedrock-runtime", **client_kwargs(server.url)) as client:
            logtap.instrument(client, sink=sink)
            body = (await client.invoke_model(modelId=CLAUDE, body=b"{}"))["body"]
            chunks = b"".join([chunk async for chunk in body.iter_chunks(7)])
            body = (await client.invoke_model(modelId=CLAUDE, body=b"{}"))["body"]
            lines = [line async for line in body.iter_lines()]
            body = (await client.invoke_model(modelId=CLAUDE, body=b"{}"))["body"]
            async with body as opened:
                whole = await opened.read()
            return chunks, lines, whole

    chunks, lines, whole = asyncio.run(main())
    assert chunks == answer and whole == answer
    assert lines == answer.splitlines()
    assert sink.flush(10)
    records = [rec for _, rec in read_records(tmp_path / "logs")]
    assert [rec["output"]["outputBodyJson"] for rec in records] == [INVOKE_ANSWER] * 3
    sink.close(5)

