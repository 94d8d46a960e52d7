"""S3 sources through moto's server, reached only via AWS_ENDPOINT_URL_S3: boto3 prefetch and DuckDB httpfs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from logtap.engine import open_logs
from logtap.errors import SourceError
from support import records as R


def _put(s3_client: Any, bucket: str) -> list[dict[str, Any]]:
    recs = [R.converse(request_id="s1", timestamp="2025-06-01T09:30:00Z", tags={"project": "support"}),
            R.stream_titan(request_id="s2", timestamp="2025-06-01T10:30:00Z", tags={"project": "sales"}),
            R.invoke_nova(request_id="s3", timestamp="2025-06-01T10:45:00Z", account="222222222222",
                          region="eu-west-1", tags={"project": "support"}),
            R.converse(request_id="s4", timestamp="2025-06-03T10:00:00Z")]
    key, body = R.offload_input(recs[2], bucket, "logs/")
    s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    R.write_s3_logs(s3_client, bucket, recs, prefix="logs/")
    return recs


@pytest.mark.parametrize("mode", ["prefetch", "httpfs"])
def test_records_from_s3_any_layout_level(s3_client: Any, s3_bucket: str, mode: str) -> None:
    recs = _put(s3_client, s3_bucket)
    for uri in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/logs/AWSLogs",
                f"s3://{s3_bucket}/logs/AWSLogs/222222222222/BedrockModelInvocationLogs/eu-west-1"):
        logs = open_logs(uri, s3_mode=mode, where=["project=support"])
        got = list(logs.records())
        expected = ["s1", "s3"] if not uri.endswith("eu-west-1") else ["s3"]
        assert [r["requestId"] for r in got] == expected
        assert logs.report.skipped == {"data-object": 1} or uri.endswith("eu-west-1")
    s3 = next(r for r in got if r["requestId"] == "s3")
    assert s3["input"]["inputBodyJson"] == R.invoke_nova()["input"]["inputBodyJson"]  # offloaded body fetched
    assert s3["_source"]["file"].startswith(f"s3://{s3_bucket}/logs/AWSLogs/222222222222/")
    assert len(recs) == 4


def test_s3_time_pruning_lists_only_hours_in_range(s3_client: Any, s3_bucket: str) -> None:
    _put(s3_client, s3_bucket)
    logs = open_logs(f"s3://{s3_bucket}/", since="2025-06-01T10:00:00Z", until="2025-06-01T11:00:00Z")
    assert all("/2025/06/01/" in f.path for f in logs.files) and len(logs.files) == 3  # 09h (slack), 10h x2
    assert [r["requestId"] for r in logs.rows()] == ["s2", "s3"]


@pytest.mark.parametrize("mode", ["prefetch", "httpfs"])
def test_vanished_object_is_reported_and_the_scan_goes_on(s3_client: Any, s3_bucket: str, mode: str) -> None:
    _put(s3_client, s3_bucket)
    logs = open_logs(f"s3://{s3_bucket}/logs/", s3_mode=mode)
    victim = next(f.path for f in logs.files if "/2025/06/03/" in f.path)
    s3_client.delete_object(Bucket=s3_bucket, Key=victim.split("/", 3)[3])
    assert sorted(r["requestId"] for r in logs.rows()) == ["s1", "s2", "s3"]
    assert logs.report.malformed == 1 and logs.report.problems[0].file == victim


def test_missing_bucket_and_missing_credentials(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_logs("s3://no-such-bucket-xyz/AWSLogs")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SourceError, match="no AWS credentials"):
        open_logs("s3://no-such-bucket-xyz/AWSLogs")


def test_unreachable_endpoint_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    with pytest.raises(SourceError, match="cannot reach S3") as err:
        open_logs("s3://some-bucket/AWSLogs")
    assert "\n" not in str(err.value) and "AWS_ENDPOINT_URL_S3" in str(err.value)


def test_a_key_prefix_called_data_single_objects_and_plain_json(s3_client: Any, s3_bucket: str) -> None:
    recs = [R.converse(request_id="d1", timestamp="2025-06-01T10:00:00Z"),
            R.invoke_llama(request_id="d2", timestamp="2025-06-01T11:00:00Z")]
    keys = R.write_s3_logs(s3_client, s3_bucket, recs, prefix="data/")
    key, body = R.offload_input(R.converse(request_id="d1"), s3_bucket, "data/")
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=body)
    s3_client.put_object(Bucket=s3_bucket, Key="data/plain/x.jsonl",
                         Body=(json.dumps(R.converse(request_id="p", timestamp="2025-06-01T12:00:00Z")) + "\n").encode())
    logs = open_logs(f"s3://{s3_bucket}/data/")
    assert [r["requestId"] for r in logs.rows()] == ["d1", "d2", "p"] and logs.report.skipped == {"data-object": 1}
    ranged = open_logs(f"s3://{s3_bucket}", since="2025-06-01T11:00:00Z", until="2025-06-01T11:30:00Z")
    assert [r["requestId"] for r in ranged.rows()] == ["d2"]
    assert len(ranged.files) == 2  # hours 10 and 11 (12h is slack but empty); found below the "data" prefix
    one = open_logs(f"s3://{s3_bucket}/{keys[1]}")
    assert [f.path for f in one.files] == [f"s3://{s3_bucket}/{keys[1]}"] and one.count() == 1


@pytest.mark.parametrize("mode", ["prefetch", "httpfs"])
def test_generic_aws_endpoint_url_and_a_callers_session(moto_server: str, monkeypatch: pytest.MonkeyPatch,
                                                         mode: str) -> None:
    import boto3

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)  # boto3 and logtap's DuckDB secret both honour it
    client = boto3.client("s3", region_name="us-east-1")
    bucket = f"logtap-generic-{mode}"
    client.create_bucket(Bucket=bucket)
    R.write_s3_logs(client, bucket, [R.converse(request_id="e1"), R.converse_stream(request_id="e2")])
    session = boto3.Session(aws_access_key_id="AKIDFROMSESSION", aws_secret_access_key="x", region_name="us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # only the session given has credentials
    logs = open_logs(f"s3://{bucket}/AWSLogs", session=session, s3_mode=mode)
    assert sorted(r["requestId"] for r in logs.records()) == ["e1", "e2"]
    with pytest.raises(SourceError, match="no AWS credentials"):
        open_logs(f"s3://{bucket}/AWSLogs", s3_mode=mode)
