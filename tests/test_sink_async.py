"""aiobotocore bedrock-runtime clients: tagged and sinked with the same contract, streams included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiobotocore.session
import pytest

import logtap
from logtap.sink import Sink
from support.bedrock_fixtures import FAKE_CREDENTIALS
from support.bedrock_server import converse_stream_reply, stream_exception
from support.sink_logs import by_operation, read_records

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "async hello"}]}]
BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "async hi"}]}]}


def aio_client(url: str) -> Any:
    from aiobotocore.config import AioConfig

    session = aiobotocore.session.get_session()
    return session.create_client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                                 config=AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}),
                                 **FAKE_CREDENTIALS)


def test_async_client_all_four_operations(bedrock_server: Any, tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", resolve_account=False)

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with aio_client(bedrock_server.url) as client:
            logtap.instrument(client, tags={"runtime": "asyncio"}, sink=sink)

            async def tagged_task() -> None:
                with logtap.tags(task="t1"):
                    seen["Converse"] = (await client.converse(modelId=NOVA, messages=MESSAGES))["output"]
                    response = await client.invoke_model(modelId=CLAUDE, body=json.dumps(BODY))
                    async with response["body"] as body:
                        seen["InvokeModel"] = json.loads(await body.read())

            await asyncio.create_task(tagged_task())
            response = await client.converse_stream(modelId=NOVA, messages=MESSAGES)
            seen["ConverseStream"] = [event async for event in response["stream"]]
            response = await client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(BODY))
            seen["InvokeModelWithResponseStream"] = [json.loads(e["chunk"]["bytes"]) async for e in response["body"]]
        return seen

    seen = asyncio.run(main())
    assert seen["InvokeModel"]["content"][0]["text"] == "Hello from the local Bedrock."
    assert len(seen["ConverseStream"]) == 7
    sink.flush(10)
    ops = by_operation(read_records(tmp_path / "logs"))
    assert set(ops) == {"Converse", "InvokeModel", "ConverseStream", "InvokeModelWithResponseStream"}
    assert ops["Converse"]["requestMetadata"] == {"runtime": "asyncio", "task": "t1"}
    assert ops["InvokeModel"]["requestMetadata"] == {"runtime": "asyncio", "task": "t1"}
    assert ops["ConverseStream"]["requestMetadata"] == {"runtime": "asyncio"}
    assert ops["InvokeModel"]["output"]["outputBodyJson"] == seen["InvokeModel"]
    assert ops["InvokeModel"]["input"]["inputBodyJson"] == BODY
    assert ops["Converse"]["output"]["outputBodyJson"]["output"] == seen["Converse"]
    assert ops["ConverseStream"]["output"]["outputBodyJson"]["output"]["message"]["content"] == [
        {"text": "Hello from the stream."}]
    assert ops["InvokeModelWithResponseStream"]["output"]["outputBodyJson"] == seen["InvokeModelWithResponseStream"]
    for rec in ops.values():
        assert rec["input"]["inputTokenCount"] == 12 and rec["output"]["outputTokenCount"] == 7
    sink.close(5)


def test_async_stream_failure_and_abandon(bedrock_server: Any, tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", resolve_account=False)
    failing = converse_stream_reply(["partial"])
    failing.events = (failing.events or [])[:2] + [stream_exception("throttlingException", "slow")]
    bedrock_server.enqueue(failing, converse_stream_reply(["a", "b", "c"]))

    async def main() -> None:
        async with aio_client(bedrock_server.url) as client:
            logtap.instrument(client, sink=sink)
            response = await client.converse_stream(modelId=NOVA, messages=MESSAGES)
            with pytest.raises(Exception, match="slow"):
                async for _ in response["stream"]:
                    pass
            response = await client.converse_stream(modelId=NOVA, messages=MESSAGES)
            async for event in response["stream"]:
                if "contentBlockDelta" in event:
                    break
            response["stream"].close()

    asyncio.run(main())
    sink.flush(10)
    records = [rec for _, rec in read_records(tmp_path / "logs")]
    assert sorted(rec["errorCode"] for rec in records) == ["StreamAbandoned", "throttlingException"]
    sink.close(5)


def test_async_stream_events_reach_the_caller_before_the_next_is_sent(bedrock_server: Any, tmp_path: Path) -> None:
    import threading

    from support.bedrock_server import Event

    gate = threading.Event()

    class GatedEvent(Event):
        def encode(self) -> bytes:
            gate.wait(10)
            return super().encode()

    reply = converse_stream_reply()
    events = list(reply.events or [])
    for event in events[2:]:
        event.__class__ = GatedEvent
    reply.events = events
    bedrock_server.enqueue(reply)
    sink = Sink(tmp_path / "logs", resolve_account=False)

    async def main() -> tuple[bool | None, int]:
        seen, gate_open_at_second = 0, None
        async with aio_client(bedrock_server.url) as client:
            logtap.instrument(client, sink=sink)
            response = await client.converse_stream(modelId=NOVA, messages=MESSAGES)
            async for _event in response["stream"]:
                seen += 1
                if seen == 2:
                    gate_open_at_second = gate.is_set()
                    gate.set()
        return gate_open_at_second, seen

    gate_open_at_second, seen = asyncio.run(main())
    assert gate_open_at_second is False and seen == len(events)
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert "errorCode" not in rec and rec["output"]["outputTokenCount"] == 7
    sink.close(5)
