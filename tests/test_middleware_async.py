"""The same synchronous hooks under aiobotocore's async event emitter, against the local server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import logtap
from logtap import middleware
from logtap.errors import TagError
from support.bedrock_fixtures import FAKE_CREDENTIALS, client_config
from support.bedrock_server import BedrockServer, anthropic_stream_chunks, converse_stream_reply

aiobotocore_session = pytest.importorskip("aiobotocore.session")

MODEL = "amazon.nova-lite-v1:0"
HEADER = "x-amzn-bedrock-request-metadata"


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def aio_client(session: Any, url: str) -> Any:
    return session.create_client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                                 config=client_config(), **FAKE_CREDENTIALS)


def test_aiobotocore_client_is_tagged(bedrock_server: BedrockServer) -> None:
    async def main() -> list[Any]:
        async with aio_client(aiobotocore_session.get_session(), bedrock_server.url) as client:
            logtap.instrument(client, tags={"p": "aio"})

            async def one(i: int) -> None:
                async with logtap.tags(task=str(i)):
                    await client.converse(modelId=MODEL, messages=messages(f"t{i}"))

            await asyncio.gather(*(one(i) for i in range(3)))
            response = await client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}")
            chunks = [event["chunk"]["bytes"] async for event in response["body"]]
            bedrock_server.enqueue(converse_stream_reply([f"c{i}" for i in range(10)]))
            stream = await client.converse_stream(modelId=MODEL, messages=messages("s"))
            events = [event async for event in stream["stream"]]
            return [chunks, events]

    chunks, events = asyncio.run(main())
    by_text = {r.json()["messages"][0]["content"][0]["text"]: r.json().get("requestMetadata")
               for r in bedrock_server.requests if r.operation == "Converse"}
    assert by_text == {f"t{i}": {"task": str(i), "p": "aio"} for i in range(3)}
    invoke = [r for r in bedrock_server.requests if r.operation == "InvokeModelWithResponseStream"][0]
    assert json.loads(invoke.header(HEADER) or "") == {"p": "aio"}
    assert HEADER in invoke.signed_headers
    assert [json.loads(c) for c in chunks] == anthropic_stream_chunks()
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert texts == [f"c{i}" for i in range(10)]
    assert bedrock_server.last.json()["requestMetadata"] == {"p": "aio"}


def test_aiobotocore_session_instruments_new_clients(bedrock_server: BedrockServer) -> None:
    session = aiobotocore_session.get_session()
    logtap.instrument_session(session, tags={"s": "1"})

    async def main() -> bool:
        async with aio_client(session, bedrock_server.url) as client:
            await client.converse(modelId=MODEL, messages=messages("x"))
            return middleware.is_instrumented(client)

    assert asyncio.run(main())
    assert bedrock_server.last.json()["requestMetadata"] == {"s": "1"}


def test_strict_session_rejects_bad_tags_up_front() -> None:
    session = aiobotocore_session.get_session()
    with pytest.raises(TagError, match="'bad key!'"):
        logtap.instrument_session(session, tags={"bad key!": "v"}, strict=True)
