"""Converse*: tags spliced into the serialized JSON body (no ``requestMetadata`` parameter), over the wire.

The local server records the exact bytes and headers; each test re-checks the SigV4 signature of
the recorded request, so a body changed after signing (or a wrong Content-Length) would show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import io
import json
import logging
from typing import Any
from urllib.parse import quote

import pytest

import logtap
from logtap import middleware
from support.bedrock_fixtures import FAKE_CREDENTIALS, client_config
from support.bedrock_server import BedrockServer, RecordedRequest

MODEL = "amazon.nova-lite-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi \"requestMetadata\": {} there"}]}]
STATIC = {"project": "CustomerService", "env": "prod"}
CONTEXT = {"intent": "BestPractices", "env": "test"}
MERGED = {"intent": "BestPractices", "env": "test", "project": "CustomerService"}  # inner first
NEEDLE = b'"requestMetadata"'


def assert_signature_valid(request: RecordedRequest) -> None:
    """Recompute SigV4 over the bytes the server received; must equal the Authorization header."""
    auth = request.header("authorization") or ""
    assert auth.startswith("AWS4-HMAC-SHA256 "), auth
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    access_key, day, region, service, _ = parts["Credential"].split("/")
    signed = parts["SignedHeaders"].split(";")
    amz_date = request.header("x-amz-date") or ""
    path, _, query = request.path.partition("?")
    canonical = "\n".join([
        request.method,
        quote(path, safe="/~"),  # non-S3 SigV4 encodes the (already encoded) path once more
        query,
        "".join(f"{name}:{' '.join((request.header(name) or '').split())}\n" for name in signed),
        ";".join(signed),
        hashlib.sha256(request.body).hexdigest(),
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + FAKE_CREDENTIALS["aws_secret_access_key"]).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert access_key == FAKE_CREDENTIALS["aws_access_key_id"]
    assert parts["Signature"] == hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert int(request.header("content-length") or -1) == len(request.body)


def seen_metadata(client: Any) -> list[Any]:
    """What a later hook (the sink's way) finds in context["logtap_request_metadata"] per call."""
    seen: list[Any] = []
    client.meta.events.register("after-call.bedrock-runtime",
                                lambda context, **_: seen.append(context.get(middleware.CONTEXT_KEY)))
    return seen


def call(client: Any, operation: str, **kw: Any) -> Any:
    if operation == "Converse":
        response = client.converse(modelId=MODEL, **kw)
        return response["output"]
    return list(client.converse_stream(modelId=MODEL, **kw)["stream"])


@pytest.mark.parametrize("operation", ["Converse", "ConverseStream"])
def test_spliced_body_is_byte_identical_to_botocores_own(
    bedrock_server: BedrockServer, make_runtime_client: Any, operation: str
) -> None:
    raw = make_runtime_client()
    expected_result = call(raw, operation, messages=MESSAGES, requestMetadata=dict(MERGED))
    by_hand = bedrock_server.last
    tagged = logtap.instrument(make_runtime_client(), tags=STATIC)
    seen = seen_metadata(tagged)
    kwargs: dict[str, Any] = {"messages": MESSAGES}
    with logtap.tags(**CONTEXT):
        assert call(tagged, operation, **kwargs) == expected_result
    assert kwargs == {"messages": MESSAGES}  # the caller's arguments are untouched
    sent = bedrock_server.last
    assert sent.operation == operation
    assert sent.body == by_hand.body  # exactly what botocore sends for requestMetadata passed last
    assert sent.body.count(NEEDLE) == 1  # the prompt's escaped text does not count
    assert json.loads(sent.body)["requestMetadata"] == MERGED
    assert json.loads(sent.body)["messages"] == MESSAGES
    assert_signature_valid(sent)
    assert_signature_valid(by_hand)
    assert seen == [MERGED]


def test_minimal_body_gets_the_field(bedrock_server: BedrockServer, make_runtime_client: Any) -> None:
    raw = make_runtime_client()
    raw.converse(modelId=MODEL)
    assert bedrock_server.last.body == b"{}"  # botocore's empty rest-json body
    tagged = logtap.instrument(make_runtime_client(), tags={"p": "1"})
    seen = seen_metadata(tagged)
    tagged.converse(modelId=MODEL)
    assert bedrock_server.last.body == b'{"requestMetadata": {"p": "1"}}'
    assert_signature_valid(bedrock_server.last)
    for tampered in (b'{"requestMetadata": {"p": "2"}}', b"{}"):  # the check itself can fail
        with pytest.raises(AssertionError):
            assert_signature_valid(dataclasses.replace(bedrock_server.last, body=tampered))
    raw.converse(modelId=MODEL, requestMetadata={"p": "1"})
    assert bedrock_server.last.body == b'{"requestMetadata": {"p": "1"}}'
    assert seen == [{"p": "1"}]


@pytest.mark.parametrize(("body", "expected"), [
    (b"{}", b'{"requestMetadata": {"k": "v"}}'),
    (b"{ }", b'{"requestMetadata": {"k": "v"}}'),
    (b" {\n}\n", b' {"requestMetadata": {"k": "v"}}'),
    (b'{"a": 1}', b'{"a": 1, "requestMetadata": {"k": "v"}}'),
    (b'{"a": {"b": []} }\r\n', b'{"a": {"b": []}, "requestMetadata": {"k": "v"}}'),
    (bytearray(b'{"a": 1}'), b'{"a": 1, "requestMetadata": {"k": "v"}}'),
    (b"", None), (b"   ", None), (b"{", None), (b"}", None), (b"[1]", None), (b'"{}"', None),
    ('{"a": 1}', None), (None, None), (io.BytesIO(b"{}"), None),
])
def test_splice_bodies(body: Any, expected: bytes | None) -> None:
    member = b'"requestMetadata": {"k": "v"}}'
    got = middleware._splice(body, member)
    assert got == expected
    if got is not None:
        assert json.loads(got)["requestMetadata"] == {"k": "v"}
        assert got.count(NEEDLE) == 1


def test_callers_own_metadata_takes_the_param_path(
    bedrock_server: BedrockServer, make_runtime_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spliced: list[int] = []
    real = middleware._splice
    monkeypatch.setattr(middleware, "_splice", lambda body, member: spliced.append(1) or real(body, member))
    tagged = logtap.instrument(make_runtime_client(), tags=STATIC)
    seen = seen_metadata(tagged)
    callers = {"case": "c1", "env": "caller"}
    with logtap.tags(**CONTEXT):
        tagged.converse(modelId=MODEL, messages=MESSAGES, requestMetadata=callers)
        assert spliced == []  # merged through the parameter, botocore serialized it
        assert callers == {"case": "c1", "env": "caller"}
        body = bedrock_server.last.body
        assert body.count(NEEDLE) == 1
        assert json.loads(body)["requestMetadata"] == {**MERGED, **callers}
        assert_signature_valid(bedrock_server.last)
        tagged.converse(modelId=MODEL, messages=MESSAGES)
        assert spliced == [1]
        assert json.loads(bedrock_server.last.body)["requestMetadata"] == MERGED
    assert seen == [{**MERGED, **callers}, MERGED]


def test_metadata_set_by_a_later_hook_is_not_duplicated(
    bedrock_server: BedrockServer, make_runtime_client: Any
) -> None:
    tagged = logtap.instrument(make_runtime_client(), tags=STATIC)

    def theirs(params: dict[str, Any], **_: Any) -> None:
        params["requestMetadata"] = {"other": "1"}

    tagged.meta.events.register("before-parameter-build.bedrock-runtime.Converse", theirs)  # runs after logtap
    seen = seen_metadata(tagged)
    tagged.converse(modelId=MODEL, messages=MESSAGES)
    assert bedrock_server.last.body.count(NEEDLE) == 1
    assert json.loads(bedrock_server.last.body)["requestMetadata"] == {"other": "1"}
    assert seen == [{"other": "1"}]  # the context names what was really sent


@pytest.mark.parametrize("internal", ["_splice", "_body_member"])
def test_splice_failure_sends_the_untagged_body(
    bedrock_server: BedrockServer, make_runtime_client: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, internal: str,
) -> None:
    raw = make_runtime_client()
    expected = raw.converse(modelId=MODEL, messages=MESSAGES)["output"]
    untagged = bedrock_server.last.body
    tagged = logtap.instrument(make_runtime_client(), tags=STATIC)
    seen = seen_metadata(tagged)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("logtap internal failure (test)")

    monkeypatch.setattr(middleware, internal, broken)
    with caplog.at_level(logging.WARNING, logger="logtap"), logtap.tags(**CONTEXT):
        assert tagged.converse(modelId=MODEL, messages=MESSAGES)["output"] == expected
    assert bedrock_server.last.body == untagged
    assert_signature_valid(bedrock_server.last)
    hook = "on_before_call_body" if internal == "_splice" else "on_converse_params"
    assert [r.getMessage() for r in caplog.records] == [
        f"logtap: internal error in hook {hook}; the call proceeds without logtap's changes"]
    assert seen == [None]  # no tags were sent, so none are reported


def test_body_that_is_not_a_json_object_is_left_alone(
    bedrock_server: BedrockServer, make_runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tagged = logtap.instrument(make_runtime_client(), tags=STATIC)
    stream_body = b'{"messages": []}'

    def to_file(params: dict[str, Any], **_: Any) -> None:
        params["body"] = io.BytesIO(stream_body)

    tagged.meta.events.register_first("before-call.bedrock-runtime.Converse", to_file)
    seen = seen_metadata(tagged)
    with caplog.at_level(logging.WARNING, logger="logtap"):
        tagged.converse(modelId=MODEL, messages=MESSAGES)
    assert bedrock_server.last.body == stream_body
    assert_signature_valid(bedrock_server.last)
    assert [r.getMessage() for r in caplog.records] == [
        "logtap: the Converse request body is not a JSON object; this call is sent without logtap's tags"]
    assert seen == [None]


def test_aiobotocore_splice(bedrock_server: BedrockServer) -> None:
    aiobotocore_session = pytest.importorskip("aiobotocore.session")

    async def main() -> list[Any]:
        session = aiobotocore_session.get_session()
        kwargs = dict(endpoint_url=bedrock_server.url, region_name="us-east-1", config=client_config(),
                      **FAKE_CREDENTIALS)
        async with session.create_client("bedrock-runtime", **kwargs) as raw, \
                session.create_client("bedrock-runtime", **kwargs) as client:
            await raw.converse(modelId=MODEL, messages=MESSAGES, requestMetadata=dict(MERGED))
            logtap.instrument(client, tags=STATIC)
            seen = seen_metadata(client)
            async with logtap.tags(**CONTEXT):
                await client.converse(modelId=MODEL, messages=MESSAGES)
                await client.converse(modelId=MODEL, messages=MESSAGES, requestMetadata={"c": "1"})
            return seen

    seen = asyncio.run(main())
    by_hand, spliced, param = bedrock_server.requests[-3:]
    assert spliced.body == by_hand.body
    assert spliced.body.count(NEEDLE) == 1 and param.body.count(NEEDLE) == 1
    assert json.loads(param.body)["requestMetadata"] == {**MERGED, "c": "1"}
    for request in (by_hand, spliced, param):
        assert_signature_valid(request)
    assert seen == [MERGED, {**MERGED, "c": "1"}]
