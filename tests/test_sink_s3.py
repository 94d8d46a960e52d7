"""S3 sink uploads (moto server), retries, and the caller-identity lookup."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path
from typing import Any

import pytest

import logtap
from logtap.sink import Sink, account
from support.sink_logs import FILE_NAME

NOVA = "amazon.nova-lite-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]


def objects(s3_client: Any, bucket: str) -> dict[str, bytes]:
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3_client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_s3_sink_uploads_complete_files_and_offloaded_bodies(runtime_client: Any, s3_bucket: str,
                                                             s3_client: Any, tmp_path: Path) -> None:
    sink = Sink(f"s3://{s3_bucket}/logs/", resolve_account=False, max_inline_bytes=500,
                staging_dir=str(tmp_path / "staging"))
    logtap.instrument(runtime_client, tags={"k": "v"}, sink=sink)
    big = [{"role": "user", "content": [{"text": "long " * 200}]}]
    runtime_client.converse(modelId=NOVA, messages=big)
    assert sink.flush(30)
    stored = objects(s3_client, s3_bucket)
    [log_key] = [k for k in stored if "/data/" not in k]
    [data_key] = [k for k in stored if "/data/" in k]
    assert log_key.startswith("logs/AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/")
    assert FILE_NAME.match(log_key.rsplit("/", 1)[1])
    [record] = [json.loads(line) for line in gzip.decompress(stored[log_key]).splitlines()]
    assert record["input"]["inputBodyS3Path"] == f"s3://{s3_bucket}/{data_key}"
    assert data_key.endswith(f"/data/{record['requestId']}_input.json.gz")
    assert json.loads(gzip.decompress(stored[data_key])) == {"messages": big}
    sink.close(5)


def test_failed_uploads_are_kept_and_retried(runtime_client: Any, s3_endpoint: str, s3_client: Any,
                                             tmp_path: Path) -> None:
    bucket = "logtap-created-later"
    sink = Sink(f"s3://{bucket}/p", resolve_account=False, upload_attempts=2,
                staging_dir=str(tmp_path / "staging"))
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)  # the call works although S3 does not
    assert sink.flush(30)
    assert sink.stats["upload_failures"] == 1 and sink.stats["uploaded"] == 0
    waiting = [p for p in (tmp_path / "staging").rglob("*.json.gz")]
    assert len(waiting) == 1  # kept on disk, complete
    s3_client.create_bucket(Bucket=bucket)
    assert sink.flush(30)
    assert sink.stats["uploaded"] == 1
    assert len(objects(s3_client, bucket)) == 1
    assert not [p for p in (tmp_path / "staging").rglob("*") if p.is_file()]
    sink.close(5)


def test_identity_placeholder_when_sts_is_unreachable(runtime_client: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(account, "_KNOWN", {})  # no answer cached from an earlier test
    sink = Sink(tmp_path / "logs")
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert sink.flush(30)
    [path] = list((tmp_path / "logs").rglob("*.json.gz"))
    [record] = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert record["accountId"] == "000000000000" and "identity" not in record
    sink.close(5)


def test_identity_from_sts_with_the_clients_credentials(runtime_client: Any, tmp_path: Path, moto_server: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server)
    monkeypatch.setattr(account, "_KNOWN", {})
    sink = Sink(tmp_path / "logs")
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert sink.flush(30)
    [path] = list((tmp_path / "logs").rglob("*.json.gz"))
    assert "/AWSLogs/123456789012/" in path.as_posix()
    [record] = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert record["accountId"] == "123456789012"
    assert record["identity"]["arn"] == "arn:aws:sts::123456789012:user/moto"
    sink.close(5)


def test_explicit_account_id_wins(runtime_client: Any, tmp_path: Path) -> None:
    sink = Sink(tmp_path / "logs", account_id="444455556666")
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert sink.flush(30)
    assert [p.relative_to(tmp_path / "logs").parts[1] for p in (tmp_path / "logs").rglob("*.json.gz")] == [
        "444455556666"]
    sink.close(5)


def test_a_hanging_sts_never_holds_up_a_call(runtime_client: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(account, "_KNOWN", {})
        sink = Sink(tmp_path / "logs")
        logtap.instrument(runtime_client, sink=sink)
        lookup = runtime_client._logtap_call_hooks.identity
        for _ in range(3):
            runtime_client.converse(modelId=NOVA, messages=MESSAGES)
        assert not lookup._done.is_set()  # every call returned while GetCallerIdentity was still waiting
        assert sink.flush(30)  # the writer waits for STS at most once, then uses the placeholder
        records = [json.loads(line) for p in (tmp_path / "logs").rglob("*.json.gz")
                   for line in gzip.decompress(p.read_bytes()).splitlines()]
    assert len(records) == 3 and {r["accountId"] for r in records} == {"000000000000"}
    sink.close(5)
