"""The Athena API flow against botocore's real ``athena`` service model (``Stubber`` validates every
request; ``expected_params`` pins it), and UNLOAD output read back from moto's S3 server."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from logtap.athena_client import AthenaRunner, open_athena_logs, read_unloaded, record_from_row
from logtap.athena_sql import Compiled, Selection, select_records, unload_records
from logtap.errors import DataError, LogtapError
from logtap.filters import Equals, NotEquals, OrAll

QID = "0e7c8f44-1111-2222-3333-444455556666"
OUT = "s3://athena-results-bucket/logtap/"


@pytest.fixture
def athena() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.Session(region_name="us-east-1").client("athena")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _execution(state: str, scanned: int = 0, reason: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    return {"QueryExecution": {
        "QueryExecutionId": QID, "Status": status, "WorkGroup": "analytics",
        "ResultConfiguration": {"OutputLocation": OUT + QID + ".csv"},
        "Statistics": {"DataScannedInBytes": scanned, "EngineExecutionTimeInMillis": 1234},
    }}


def _col(name: str, typ: str) -> dict[str, Any]:
    return {"Name": name, "Label": name, "Type": typ}


ROW_COLUMNS = ("requestId", "timestamp", "operation", "modelId", "requestMetadata", "inputTokenCount",
               "outputTokenCount")
RECORD_COLS = [_col("requestId", "varchar"), _col("timestamp", "varchar"), _col("accountId", "varchar"),
               _col("region", "varchar"), _col("operation", "varchar"), _col("modelId", "varchar"),
               _col("requestMetadata", "varchar"), _col("inputTokenCount", "bigint"),
               _col("outputTokenCount", "bigint")]


def _row(*values: str | None) -> dict[str, Any]:
    return {"Data": [{"VarCharValue": v} if v is not None else {} for v in values]}


def _open(client: Any, **kw: Any) -> Any:
    return open_athena_logs("bedrock_invocation_logs", "bedrock", client=client, workgroup="analytics",
                            output_location=OUT, poll_interval=0, sleep=lambda s: None, **kw)


def test_records_flow_binds_parameters_polls_and_pages(athena: tuple[Any, Stubber]) -> None:
    client, stub = athena
    f = OrAll((Equals("project", "support"), NotEquals("env", "it's")))
    logs = _open(client, filter=f, since=datetime(2025, 3, 1, tzinfo=timezone.utc),
                 models=["us.amazon.nova-lite-v1:0"])
    statement = logs.statement(columns=ROW_COLUMNS)
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, expected_params={
        "QueryString": statement.sql,
        "QueryExecutionContext": {"Database": "bedrock"},
        "WorkGroup": "analytics",
        "ResultConfiguration": {"OutputLocation": OUT},
        "ExecutionParameters": ["'2025/02/28/23'", "'2025-03-01T00:00:00Z'", "'amazon.nova-lite-v1:0'",
                                "'project'", "'support'", "'env'", "'it''s'"],
    })
    stub.add_response("get_query_execution", _execution("QUEUED"), {"QueryExecutionId": QID})
    stub.add_response("get_query_execution", _execution("RUNNING"), {"QueryExecutionId": QID})
    stub.add_response("get_query_execution", _execution("SUCCEEDED", scanned=3 * 1024**3),
                      {"QueryExecutionId": QID})
    header = _row(*[c["Name"] for c in RECORD_COLS])
    r1 = _row("req-1", "2025-03-01T10:00:00Z", "111122223333", "us-east-1", "Converse",
              "us.amazon.nova-lite-v1:0", '{"project":"support"}', "12", "34")
    r2 = _row("req-2", "2025-03-01T11:00:00Z", "111122223333", "us-east-1", "InvokeModel",
              "amazon.nova-lite-v1:0", None, "5", None)
    stub.add_response("get_query_results", {
        "ResultSet": {"Rows": [header, r1], "ResultSetMetadata": {"ColumnInfo": RECORD_COLS}}, "NextToken": "p2",
    }, {"QueryExecutionId": QID, "MaxResults": 1000})
    stub.add_response("get_query_results", {
        "ResultSet": {"Rows": [r2], "ResultSetMetadata": {"ColumnInfo": RECORD_COLS}},
    }, {"QueryExecutionId": QID, "MaxResults": 1000, "NextToken": "p2"})

    rows = list(logs.rows())

    assert [r["requestId"] for r in rows] == ["req-1", "req-2"]
    assert rows[0]["requestMetadata"] == {"project": "support"}
    assert rows[0]["inputTokenCount"] == 12 and rows[0]["outputTokenCount"] == 34
    assert rows[1]["requestMetadata"] is None and rows[1]["outputTokenCount"] is None
    assert logs.report.queries == [QID]
    assert logs.report.data_scanned_bytes == 3 * 1024**3
    assert logs.report.estimated_cost_usd == pytest.approx(3 / 1024 * 5.0, abs=1e-6)
    assert logs.report.matched == 2
    summary = logs.runs[0].summary()
    assert "3,072.0 MB scanned" in summary and "in workgroup analytics" in summary
    assert f"results in {OUT}{QID}.csv" in summary


def test_ctrl_c_while_polling_stops_the_query(athena: tuple[Any, Stubber]) -> None:
    client, stub = athena

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    runner = AthenaRunner(client, workgroup="analytics", sleep=interrupted)
    stub.add_response("start_query_execution", {"QueryExecutionId": QID},
                      {"QueryString": "SELECT 1", "WorkGroup": "analytics"})
    stub.add_response("get_query_execution", _execution("RUNNING"), {"QueryExecutionId": QID})
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": QID})
    with pytest.raises(KeyboardInterrupt):
        runner.run(Compiled("SELECT 1"))


def test_failed_query_is_a_data_error_with_the_reason(athena: tuple[Any, Stubber]) -> None:
    client, stub = athena
    logs = _open(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, {
        "QueryString": ANY, "QueryExecutionContext": {"Database": "bedrock"}, "WorkGroup": "analytics",
        "ResultConfiguration": {"OutputLocation": OUT},
    })
    stub.add_response("get_query_execution",
                      _execution("FAILED", reason="TABLE_NOT_FOUND: line 1:1: Table does not exist"),
                      {"QueryExecutionId": QID})
    with pytest.raises(DataError, match=f"{QID} FAILED: TABLE_NOT_FOUND"):
        logs.count()


def test_count_and_stats(athena: tuple[Any, Stubber]) -> None:
    client, stub = athena
    logs = _open(client, filter=Equals("team", "search"))
    for cols, rows in (
        ([_col("count", "bigint")], [_row("count"), _row("42")]),
        ([_col("group_0", "varchar"), _col("group_1", "varchar"), _col("records", "bigint"),
          _col("inputTokens", "bigint"), _col("outputTokens", "bigint")],
         [_row("group_0", "group_1", "records", "inputTokens", "outputTokens"),
          _row("amazon.nova-lite-v1:0", None, "2", "10", "20"),
          _row("amazon.nova-lite-v1:0", "prod", "40", "1000", "2000")]),
    ):
        stub.add_response("start_query_execution", {"QueryExecutionId": QID}, {
            "QueryString": ANY, "QueryExecutionContext": {"Database": "bedrock"}, "WorkGroup": "analytics",
            "ResultConfiguration": {"OutputLocation": OUT}, "ExecutionParameters": ANY,
        })
        stub.add_response("get_query_execution", _execution("SUCCEEDED", 100), {"QueryExecutionId": QID})
        stub.add_response("get_query_results",
                          {"ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": cols}}},
                          {"QueryExecutionId": QID, "MaxResults": 1000})
    assert logs.count() == 42
    assert logs.stats(["model", "tag:env"]) == [
        {"model": "amazon.nova-lite-v1:0", "tag:env": "prod", "records": 40, "inputTokens": 1000,
         "outputTokens": 2000},
        {"model": "amazon.nova-lite-v1:0", "tag:env": None, "records": 2, "inputTokens": 10, "outputTokens": 20},
    ]  # largest group first, as the DuckDB engine orders them
    assert len(logs.runs) == 2


def test_start_request_is_valid_for_the_service_model() -> None:
    """Without expected_params: only botocore's own validation of the real model."""
    client = boto3.Session(region_name="us-east-1").client("athena")
    runner = AthenaRunner(client, database="bedrock", catalog="AwsDataCatalog", workgroup="wg",
                          output_location=OUT)
    stmt = select_records('"bedrock"."t"', Selection(filter=Equals("a", "b")))
    with Stubber(client) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": QID})
        client.start_query_execution(**runner.start_params(stmt))


# --------------------------------------------------------------------------- UNLOAD

def test_records_unload_then_read_back_as_bedrock_records(
    athena: tuple[Any, Stubber], s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    client, stub = athena
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=1))
    logs = _open(client, filter=Equals("project", "support"), unload_location=f"s3://{s3_bucket}/unload",
                 s3_client=s3_client)
    dest = f"s3://{s3_bucket}/unload/logtap-{uuid.UUID(int=1).hex}/"
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, {
        "QueryString": unload_records(logs.table, logs.selection, dest).sql,
        "QueryExecutionContext": {"Database": "bedrock"}, "WorkGroup": "analytics",
        "ResultConfiguration": {"OutputLocation": OUT}, "ExecutionParameters": ["'project'", "'support'"],
    })
    stub.add_response("get_query_execution", _execution("SUCCEEDED", 2048), {"QueryExecutionId": QID})

    # What Athena's UNLOAD (format JSON, GZIP) writes: lower-case columns, bodies as JSON text,
    # several files in no particular order.
    rows = [
        {"timestamp": "2025-03-01T10:00:01Z", "requestid": "req-2", "operation": "InvokeModel",
         "modelid": "m", "input": {"inputbodyjson": "not json"}},
        {"timestamp": "2025-03-01T10:00:00Z", "requestid": "req-1", "operation": "Converse",
         "modelid": "amazon.nova-lite-v1:0", "requestmetadata": {"project": "support"},
         "identity": {"arn": "arn:aws:iam::111122223333:user/u"}, "errorcode": None,
         "input": {"inputcontenttype": "application/json",
                   "inputbodyjson": '{"messages":[{"role":"user","content":[{"text":"hi"}]}]}',
                   "inputtokencount": 3, "inputbodys3path": None},
         "output": {"outputbodyjson": '[{"chunk":1}]', "outputtokencount": 2}},
    ]
    key = dest.split("/", 3)[3]
    s3_client.put_object(Bucket=s3_bucket, Key=key + "part-a.gz", Body=gzip.compress(json.dumps(rows[0]).encode()))
    s3_client.put_object(Bucket=s3_bucket, Key=key + "part-b.gz", Body=gzip.compress(json.dumps(rows[1]).encode()))

    first, second = list(logs.records())
    assert first["requestId"] == "req-1" and first["modelId"] == "amazon.nova-lite-v1:0"
    assert first["requestMetadata"] == {"project": "support"}
    assert first["identity"] == {"arn": "arn:aws:iam::111122223333:user/u"}
    assert first["input"]["inputBodyJson"]["messages"][0]["content"][0]["text"] == "hi"
    assert first["input"]["inputTokenCount"] == 3 and "inputBodyS3Path" not in first["input"]
    assert first["output"]["outputBodyJson"] == [{"chunk": 1}]
    assert "errorCode" not in first
    assert second["input"]["inputBodyJson"] == "not json"
    assert logs.report.matched == 2


def test_read_unloaded_names_a_broken_line(s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="u/part-1.gz", Body=gzip.compress(b'{"requestid": "a"}\n{broken\n'))
    got = read_unloaded(f"s3://{s3_bucket}/u/", s3_client=s3_client)
    assert next(got) == {"requestId": "a"}
    with pytest.raises(DataError, match=rf"s3://{s3_bucket}/u/part-1.gz line 2"):
        next(got)


def test_records_without_an_unload_location_says_what_to_do(athena: tuple[Any, Stubber]) -> None:
    client, _ = athena
    with pytest.raises(LogtapError, match="--athena-unload"):
        next(_open(client).records())


def test_record_from_row_keeps_unknown_columns() -> None:
    assert record_from_row({"requestid": "r", "newfield": 1}) == {"requestId": "r", "newfield": 1}


def test_export_runs_on_the_athena_log_set(
    athena: tuple[Any, Stubber], s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``converters.export.run`` takes an AthenaLogSet as it takes a LogSet: UNLOADed rows become
    records, are converted and written in (timestamp, requestId) order, and the manifest counts add up."""
    import uuid

    from logtap.converters.export import run
    from support import records

    client, stub = athena
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=2))
    logs = _open(client, unload_location=f"s3://{s3_bucket}/unload/", s3_client=s3_client)
    dest_key = f"unload/logtap-{uuid.UUID(int=2).hex}/"
    stub.add_response("start_query_execution", {"QueryExecutionId": QID}, {
        "QueryString": ANY, "QueryExecutionContext": {"Database": "bedrock"}, "WorkGroup": "analytics",
        "ResultConfiguration": {"OutputLocation": OUT}})
    stub.add_response("get_query_execution", _execution("SUCCEEDED", 4096), {"QueryExecutionId": QID})

    def as_unloaded(rec: dict[str, Any]) -> dict[str, Any]:
        """A Bedrock record as UNLOAD writes it: lower-case names, bodies as JSON text."""
        row = {k.lower(): v for k, v in rec.items() if k not in ("input", "output")}
        for part in ("input", "output"):
            row[part] = {k.lower(): (json.dumps(v) if k.endswith("BodyJson") else v) for k, v in rec[part].items()}
        return row

    recs = [records.converse(request_id=f"r{i}", prompt=f"q{i}", timestamp=f"2025-06-01T10:0{9 - i}:00Z",
                             model_id="amazon.nova-pro-v1:0") for i in range(3)]
    recs.append(records.converse(request_id="dup", prompt="q1", timestamp="2025-06-01T11:00:00Z",
                                 model_id="amazon.nova-pro-v1:0"))
    for n, rec in enumerate(recs):
        s3_client.put_object(Bucket=s3_bucket, Key=f"{dest_key}part-{n}.gz",
                             Body=gzip.compress(json.dumps(as_unloaded(rec)).encode()))
    out = tmp_path / "train.jsonl"
    result = run(logs, sources=["bedrock.bedrock_invocation_logs"], output=str(out), mode="prompt-response",
                 teacher="amazon.nova-pro-v1:0", student="amazon.nova-lite-v1:0:300k")
    assert result.request_ids == ["r2", "r1", "r0"]
    assert result.counts["matched"] == 4 and result.counts["skipped"] == {"duplicate": 1}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["messages"][0]["content"][0]["text"] == "q2"
    assert lines[0]["schemaVersion"] == "bedrock-conversation-2024"
