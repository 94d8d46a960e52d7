"""End to end: instrumented client -> sink (folder, moto S3) -> ``logtap export`` / ``open_logs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import logtap
from logtap.cli import cli
from logtap.sink import Sink
from support.bedrock_server import (
    anthropic_stream_chunks,
    converse_reply,
    converse_stream_reply,
    invoke_reply,
    invoke_stream_reply,
)

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"

CASES = {
    "c1": ("Converse", "What is the capital of France?", "Paris is the capital of France."),
    "c2": ("InvokeModel", "Name a prime number.", "Seven is a prime number."),
    "c3": ("ConverseStream", "Spell cat backwards.", "The word backwards is tac."),
    "c4": ("InvokeModelWithResponseStream", "What colour is the sky?", "The sky is blue on a clear day."),
}


def anthropic_body(prompt: str) -> bytes:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}).encode()


def make_calls(client: Any, server: Any) -> None:
    for case, (operation, prompt, answer) in CASES.items():
        messages = [{"role": "user", "content": [{"text": prompt}]}]
        with logtap.tags(case=case, operation_kind=operation):
            if operation == "Converse":
                server.enqueue(converse_reply(answer))
                assert client.converse(modelId=NOVA, messages=messages)["output"]["message"]["content"][0][
                    "text"] == answer
            elif operation == "ConverseStream":
                words = answer.split(" ")
                server.enqueue(converse_stream_reply([w if i == 0 else " " + w for i, w in enumerate(words)]))
                events = list(client.converse_stream(modelId=NOVA, messages=messages)["stream"])
                assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events
                               if "contentBlockDelta" in e) == answer
            elif operation == "InvokeModel":
                server.enqueue(invoke_reply({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                    "content": [{"type": "text", "text": answer}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 6}}))
                body = client.invoke_model(modelId=CLAUDE, body=anthropic_body(prompt))["body"]
                assert json.loads(body.read())["content"][0]["text"] == answer
            else:
                server.enqueue(invoke_stream_reply(anthropic_stream_chunks([answer[:10], answer[10:]])))
                body = client.invoke_model_with_response_stream(modelId=CLAUDE, body=anthropic_body(prompt))["body"]
                assert len(list(body)) == 7


def export_case(source: str, case: str, tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out, manifest = tmp_path / f"{case}.jsonl", tmp_path / f"{case}.manifest.json"
    result = CliRunner().invoke(cli, ["export", source, "--output", str(out), "--mode", "prompt-response",
                                      "--where", f"case={case}", "--manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows, json.loads(manifest.read_text())


def check_export(source: str, tmp_path: Path) -> None:
    for case, (_operation, prompt, answer) in CASES.items():
        rows, manifest = export_case(source, case, tmp_path)
        assert manifest["counts"]["matched"] == 1 and manifest["counts"]["written"] == 1, manifest
        [row] = rows
        assert row["schemaVersion"] == "bedrock-conversation-2024"
        user, assistant = row["messages"]
        assert user == {"role": "user", "content": [{"text": prompt}]}
        assert assistant == {"role": "assistant", "content": [{"text": answer}]}
    with logtap.open_logs(source) as logs:
        records = list(logs.records())
    assert sorted(r["requestMetadata"]["case"] for r in records) == sorted(CASES)
    for rec in records:
        assert rec["operation"] == CASES[rec["requestMetadata"]["case"]][0]
        assert rec["requestMetadata"]["operation_kind"] == rec["operation"]


def test_export_of_a_sink_folder_gives_back_the_calls(runtime_client: Any, bedrock_server: Any,
                                                       tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", resolve_account=False)
    logtap.instrument(runtime_client, tags={"app": "e2e"}, sink=sink)
    make_calls(runtime_client, bedrock_server)
    assert logtap.flush(10)
    check_export(str(tmp_path / "logs"), tmp_path)
    sink.close(5)


def test_export_of_a_sink_s3_prefix_gives_back_the_calls(runtime_client: Any, bedrock_server: Any,
                                                          s3_bucket: str, s3_client: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          moto_server: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server)  # caller identity from moto's STS
    uri = f"s3://{s3_bucket}/team/bedrock"
    sink = Sink(uri, staging_dir=str(tmp_path / "staging"))
    logtap.instrument(runtime_client, sink=sink)
    make_calls(runtime_client, bedrock_server)
    assert logtap.flush(30)
    assert sink.stats["uploaded"] >= 1 and sink.stats["upload_failures"] == 0
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys and all(k.startswith("team/bedrock/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/")
                        for k in keys)
    check_export(uri, tmp_path)
    with logtap.open_logs(uri) as logs:
        for rec in logs.records():
            assert rec["accountId"] == "123456789012"
            assert rec["identity"]["arn"].startswith("arn:aws:")
    assert not [p for p in (tmp_path / "staging").rglob("*") if p.is_file()]  # uploaded and removed
    sink.close(5)
