"""Lambda decorator, Powertools middleware, logger and EMF metrics, with a real handler function."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

import logtap
import logtap.lambda_handler as lh
from logtap.lambda_handler import instrument_handler
from logtap.sink import Sink
from support.bedrock_fixtures import FAKE_CREDENTIALS, client_config
from support.bedrock_server import error_reply
from support.sink_logs import read_records

NOVA = "amazon.nova-lite-v1:0"
SECRET_PROMPT = "my secret prompt text"
MESSAGES = [{"role": "user", "content": [{"text": SECRET_PROMPT}]}]


def lambda_context(request_id: str) -> LambdaContext:
    context = LambdaContext()
    context._function_name = "support-bot"
    context._function_version = "$LATEST"
    context._aws_request_id = request_id
    context._invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:support-bot"
    context._memory_limit_in_mb = 256
    return context


@pytest.fixture(autouse=True)
def _fresh_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lh, "_cold_start", True)


def sent_metadata(server: Any) -> list[dict[str, str] | None]:
    return [r.json().get("requestMetadata") for r in server.requests]


def test_decorator_tags_each_invocation_and_flushes_the_sink(runtime_client: Any, bedrock_server: Any,
                                                             tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", resolve_account=False)

    @instrument_handler(clients=[runtime_client], tags={"project": "support"}, sink=sink)
    def handler(event: dict[str, Any], context: LambdaContext) -> str:
        reply = runtime_client.converse(modelId=NOVA, messages=event["messages"])
        return str(reply["output"]["message"]["content"][0]["text"])

    assert handler({"messages": MESSAGES}, lambda_context("req-1")) == "Hello from the local Bedrock."
    assert len(read_records(tmp_path / "logs")) == 1  # flushed before the handler returned
    handler({"messages": MESSAGES}, lambda_context("req-2"))
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)  # outside an invocation: no Lambda tags
    first, second, outside = sent_metadata(bedrock_server)
    assert first == {"project": "support", "lambda.function_name": "support-bot",
                     "lambda.function_version": "$LATEST", "lambda.request_id": "req-1",
                     "lambda.cold_start": "true"}
    assert second is not None and second["lambda.request_id"] == "req-2"
    assert second["lambda.cold_start"] == "false"
    assert outside is None
    logtap.flush(10)
    records = sorted(rec["requestMetadata"].get("lambda.request_id", "-") for _, rec in read_records(
        tmp_path / "logs") if "requestMetadata" in rec)
    assert records == ["req-1", "req-2"]
    sink.close(5)


def test_context_tag_names_are_configurable(runtime_client: Any, bedrock_server: Any) -> None:
    @instrument_handler(clients=lambda: [runtime_client],
                        context_tags={"function_name": "fn", "aws_request_id": "rid", "cold_start": None})
    def handler(event: Any, context: Any) -> None:
        runtime_client.converse(modelId=NOVA, messages=MESSAGES)

    handler({}, lambda_context("abc"))
    assert sent_metadata(bedrock_server) == [{"fn": "support-bot", "rid": "abc"}]


def test_handler_errors_propagate_unchanged_and_still_flush(runtime_client: Any, bedrock_server: Any,
                                                           tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", resolve_account=False)

    @instrument_handler(clients=[runtime_client], sink=sink)
    def handler(event: Any, context: Any) -> None:
        runtime_client.converse(modelId=NOVA, messages=MESSAGES)
        raise KeyError("handler bug")

    with pytest.raises(KeyError, match="handler bug"):
        handler({}, lambda_context("r"))
    assert len(read_records(tmp_path / "logs")) == 1
    sink.close(5)


def test_powertools_middleware_with_session_created_clients(bedrock_server: Any, tmp_path: Path) -> None:
    from logtap.lambda_handler import logtap_middleware

    sink = Sink(tmp_path / "logs", resolve_account=False)
    session = boto3.Session(region_name="us-east-1", **FAKE_CREDENTIALS)

    @logtap_middleware(session=session, sink=sink, tags={"team": "search"})
    def handler(event: Any, context: Any) -> int:
        client = session.client("bedrock-runtime", endpoint_url=bedrock_server.url, config=client_config())
        client.converse(modelId=NOVA, messages=MESSAGES)
        return 7

    assert handler({}, lambda_context("mw-1")) == 7
    assert handler({}, lambda_context("mw-2")) == 7
    [first, second] = sent_metadata(bedrock_server)
    assert first is not None and first["team"] == "search" and first["lambda.request_id"] == "mw-1"
    assert first["lambda.cold_start"] == "true"
    assert second is not None and second["lambda.cold_start"] == "false"
    assert len(read_records(tmp_path / "logs")) == 2
    from logtap.middleware import uninstrument_session

    uninstrument_session(session)
    sink.close(5)


def test_logger_line_and_emf_metrics_per_call(runtime_client: Any, bedrock_server: Any,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    logger = Logger(service="support-bot", stream=stream)
    metrics = Metrics(namespace="SupportBot", service="support-bot")
    bedrock_server.enqueue(error_reply("ThrottlingException", "slow down"))

    @instrument_handler(clients=[runtime_client], tags={"customer": "ACME-secret"}, logger=logger,
                        metrics=metrics)
    def handler(event: Any, context: Any) -> None:
        with pytest.raises(Exception, match="slow down"):
            runtime_client.converse(modelId=NOVA, messages=MESSAGES)
        runtime_client.converse(modelId=NOVA, messages=MESSAGES)
        list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])

    handler({}, lambda_context("m-1"))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["bedrock call"] * 3
    failed, ok, streamed = (line["bedrock"] for line in lines)
    assert failed["ok"] is False and failed["error_code"] == "ThrottlingException"
    assert ok["operation"] == "Converse" and ok["model_id"] == NOVA and ok["ok"] is True
    assert ok["input_tokens"] == 12 and ok["output_tokens"] == 7 and ok["latency_ms"] >= 0
    assert streamed["operation"] == "ConverseStream" and streamed["output_tokens"] == 7
    assert "customer" in ok["tag_keys"] and "lambda.request_id" in ok["tag_keys"]
    text = stream.getvalue()
    assert "ACME-secret" not in text and SECRET_PROMPT not in text and "m-1" not in text

    blobs = [{k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in json.loads(line).items()}
             for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(blobs) == 3
    for blob, op in zip(blobs, ["Converse", "Converse", "ConverseStream"], strict=True):
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "SupportBot"
        assert set(directive["Dimensions"][0]) == {"operation", "model", "service"}
        assert blob["operation"] == op and blob["model"] == NOVA and blob["BedrockCalls"] == 1.0
    assert blobs[0]["BedrockErrors"] == 1.0 and "BedrockInputTokens" not in blobs[0]
    assert blobs[1]["BedrockInputTokens"] == 12.0 and blobs[1]["BedrockOutputTokens"] == 7.0
    assert "BedrockLatency" in blobs[2]
