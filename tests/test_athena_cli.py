"""``logtap athena ddl`` and the ``--engine athena`` wiring helpers, through click. The Athena API
calls go over HTTP to moto's server (botocore serializes, signs and parses them)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import click
import pytest
import sqlglot
from click.testing import CliRunner

from logtap.cli import cli
from logtap.cli.athena import engine_options, open_engine_from_cli
from logtap.cli.options import aws_options, filter_options, quiet_option, source_args


def test_ddl_prints_table_and_view() -> None:
    result = CliRunner().invoke(cli, [
        "athena", "ddl", "--location", "s3://my-logs/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/",
        "--database", "bedrock", "--start", "2025/01/01/00"])
    assert result.exit_code == 0, result.output
    table, view = result.stdout.split("\n\n")
    assert table.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `bedrock`.`bedrock_invocation_logs`")
    assert "'projection.datehour.range'='2025/01/01/00,NOW'" in table
    assert "BedrockModelInvocationLogs/us-east-1/${datehour}/" in table
    assert "NOT LIKE '%/data/%'" in view
    sqlglot.parse_one(table.strip().rstrip(";"), read="hive")
    sqlglot.parse_one(view.strip().rstrip(";"), read="trino")


def test_ddl_across_accounts() -> None:
    result = CliRunner().invoke(cli, ["athena", "ddl", "--location", "s3://my-logs/", "--account", "111122223333",
                                      "--log-region", "us-east-1", "--log-region", "eu-west-1", "--no-view"])
    assert result.exit_code == 0, result.output
    assert "'projection.log_region.values'='us-east-1,eu-west-1'" in result.stdout
    assert "CREATE OR REPLACE VIEW" not in result.stdout


def test_ddl_bad_location_is_a_user_error() -> None:
    result = CliRunner().invoke(cli, ["athena", "ddl", "--location", "s3://my-logs/"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "--account" in result.output


# --------------------------------------------------------------------------- --engine athena


@click.command()
@source_args
@filter_options
@engine_options
@aws_options
@quiet_option
def count_cmd(**kwargs: Any) -> None:
    """A stand-in for query/stats: what the lead's wiring does."""
    with open_engine_from_cli(kwargs) as logs:
        click.echo(json.dumps({"count": logs.count(), "type": type(logs).__name__}))


@pytest.fixture
def moto_athena(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", moto_server)
    return moto_server


def _queue_result(server: str, value: str) -> None:
    """moto answers the next query with this one-cell result."""
    col = {"CatalogName": "c", "SchemaName": "s", "TableName": "t", "Name": "count", "Label": "count",
           "Type": "bigint", "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": False}
    body = json.dumps({"account_id": "123456789012", "region": "us-east-1", "results": [
        {"rows": [{"Data": [{"VarCharValue": "count"}]}, {"Data": [{"VarCharValue": value}]}],
         "column_info": [col]}]}).encode()
    req = urllib.request.Request(f"{server}/moto-api/static/athena/query-results", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201


def test_engine_athena_runs_through_the_athena_api(moto_athena: str) -> None:
    _queue_result(moto_athena, "42")
    result = CliRunner().invoke(count_cmd, [
        "bedrock.bedrock_invocation_logs", "--engine", "athena", "--workgroup", "primary",
        "--athena-output", "s3://results-bucket/logtap/", "--where", "project=support", "--since", "2025-06-01",
        "--region", "us-east-1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"count": 42, "type": "AthenaLogSet"}
    assert "SUCCEEDED in workgroup primary" in result.stderr and "MB scanned" in result.stderr
    assert "results in s3://results-bucket/logtap/" in result.stderr


def test_engine_athena_needs_one_table_source() -> None:
    result = CliRunner().invoke(count_cmd, ["a.b", "c.d", "--engine", "athena"])
    assert result.exit_code == 2
    assert "one SOURCE" in result.output


def test_engine_duckdb_is_the_default(tmp_path: Any) -> None:
    from support import records

    records.write_logs(tmp_path, [records.converse(request_id="a", tags={"project": "support"}),
                                  records.converse(request_id="b")])
    result = CliRunner().invoke(count_cmd, [str(tmp_path), "--where", "project=support", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"count": 1, "type": "LogSet"}


def _queue_rows(server: str, header: list[str], rows: list[list[str]], types: dict[str, str]) -> None:
    cols = [{"CatalogName": "c", "SchemaName": "s", "TableName": "t", "Name": n, "Label": n,
             "Type": types.get(n, "varchar"), "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN",
             "CaseSensitive": False} for n in header]
    data = [{"Data": [{"VarCharValue": v} for v in header]}]
    data += [{"Data": [{"VarCharValue": v} for v in row]} for row in rows]
    body = json.dumps({"account_id": "123456789012", "region": "us-east-1",
                       "results": [{"rows": data, "column_info": cols}]}).encode()
    req = urllib.request.Request(f"{server}/moto-api/static/athena/query-results", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201


def test_query_command_with_engine_athena_prints_jsonl(moto_athena: str) -> None:
    header = ["requestId", "timestamp", "operation", "modelId", "requestMetadata", "inputTokenCount",
              "outputTokenCount"]
    _queue_rows(moto_athena, header, [["r1", "2025-06-01T00:00:01Z", "Converse", "amazon.nova-lite-v1:0",
                                       '{"project":"support"}', "12", "34"]],
                {"inputTokenCount": "bigint", "outputTokenCount": "bigint"})
    result = CliRunner().invoke(cli, [
        "query", "bedrock.bedrock_invocation_logs", "--engine", "athena", "--workgroup", "primary",
        "--athena-output", "s3://results-bucket/logtap/", "--where", "project=support", "--format", "jsonl",
        "--region", "us-east-1"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip())
    assert row["requestId"] == "r1" and row["requestMetadata"] == {"project": "support"}
    assert row["inputTokenCount"] == 12


def test_stats_command_with_engine_athena(moto_athena: str) -> None:
    _queue_rows(moto_athena, ["operation", "records", "inputTokens", "outputTokens"],
                [["Converse", "3", "30", "60"]],
                {"records": "bigint", "inputTokens": "bigint", "outputTokens": "bigint"})
    result = CliRunner().invoke(cli, [
        "stats", "bedrock.bedrock_invocation_logs", "--engine", "athena", "--by", "operation",
        "--athena-output", "s3://results-bucket/logtap/", "--format", "json", "--region", "us-east-1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"operation": "Converse", "records": 3, "inputTokens": 30, "outputTokens": 60}]
