"""`logtap query | stats | sql | filter` through click: output formats, exit codes, stderr reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from logtap.cli import cli
from support import records as R


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    R.write_logs(tmp_path, [R.converse(request_id="a", timestamp="2025-06-01T10:00:00Z", tags={"project": "x"}),
                            R.invoke_llama(request_id="b", timestamp="2025-06-01T11:00:00Z", tags={"project": "y"}),
                            R.stream_anthropic_messages(request_id="c", timestamp="2025-06-01T09:00:00Z")])
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_query_jsonl_is_ordered_and_has_the_contract_fields(logs_dir: Path) -> None:
    code, out, _ = run("query", str(logs_dir), "--format", "jsonl", "--where", "project!=y")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["requestId"] for r in rows] == ["c", "a"]
    assert set(rows[1]) >= {"requestId", "timestamp", "operation", "modelId", "requestMetadata",
                            "inputTokenCount", "outputTokenCount"} and rows[1]["requestMetadata"] == {"project": "x"}


def test_query_formats_limit_and_filters(logs_dir: Path) -> None:
    code, out, _ = run("query", str(logs_dir), "--format", "csv", "--limit", "1", "--since", "2025-06-01T10:00:00Z")
    assert code == 0 and out.splitlines()[1].startswith("a,2025-06-01T10:00:00Z,Converse")
    code, out, _ = run("query", str(logs_dir), "--format", "json", "--model", "meta.llama3-1-70b-instruct-v1:0")
    assert code == 0 and [r["requestId"] for r in json.loads(out)] == ["b"]
    code, out, _ = run("query", str(logs_dir), "--operation", "InvokeModelWithResponseStream")
    assert code == 0 and "requestId" in out.splitlines()[0] and " c " in f" {out.splitlines()[2]} "


def test_stats_and_sql(logs_dir: Path) -> None:
    code, out, _ = run("stats", str(logs_dir), "--by", "operation", "--format", "json")
    assert code == 0 and {r["operation"]: r["records"] for r in json.loads(out)} == {
        "Converse": 1, "InvokeModel": 1, "InvokeModelWithResponseStream": 1}
    code, out, _ = run("sql", str(logs_dir), "SELECT count(*) AS n FROM logs", "--where", "project=x",
                       "--format", "jsonl")
    assert code == 0 and json.loads(out) == {"n": 1}


def test_filter_command(tmp_path: Path) -> None:
    code, out, _ = run("filter", "--where", "project=x", "--where", "env!=dev")
    assert code == 0 and json.loads(out) == {"andAll": [{"equals": {"project": "x"}}, {"notEquals": {"env": "dev"}}]}
    code, _, err = run("filter", "--filter", '{"orAll": [{"equals": {"a": "1"}}]}', "--where", "b=2")
    assert code == 1 and "cannot express andAll containing orAll" in err
    code, _, err = run("filter", "--where", "a=1", "--model", "amazon.nova-pro-v1:0")
    assert code == 1 and "cannot select by model" in err
    code, _, err = run("filter", "--filter", '{"equals": {"a": "1", "b": "2"}}')
    assert code == 1 and "exactly one" in err


def test_errors_and_usage(logs_dir: Path) -> None:
    code, _, err = run("query", str(logs_dir / "missing"))
    assert code == 1 and "does not exist" in err
    code, _, err = run("query", str(logs_dir), "--since", "soon")
    assert code == 2 and "not a time" in err
    code, _, _ = run("query")
    assert code == 2
    code, _, err = run("stats", str(logs_dir), "--by", "colour")
    assert code == 2 and "not a grouping" in err


def test_bad_lines_are_named_on_stderr(logs_dir: Path) -> None:
    folder = R.hour_dir(logs_dir, "2025-06-01T10:00:00Z")
    (folder / "broken.jsonl").write_text('{"requestId": "z"\n')
    code, out, err = run("query", str(logs_dir), "--format", "jsonl", "-q")
    assert code == 0 and len(out.splitlines()) == 3
    assert "broken.jsonl:1: not valid JSON" in err and "1 malformed" in err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def test_filter_and_where_are_and_ed_and_bad_filters_are_one_line_errors(logs_dir: Path) -> None:
    code, out, _ = run("query", str(logs_dir), "--format", "jsonl", "-q", "--where", "project!=y",
                       "--filter", '{"orAll": [{"equals": {"project": "x"}}, {"equals": {"project": "y"}}]}')
    assert code == 0 and [json.loads(line)["requestId"] for line in out.splitlines()] == ["a"]
    for cmd in (["query", str(logs_dir)], ["stats", str(logs_dir)], ["sql", str(logs_dir), "SELECT 1"],
                ["filter"]):
        code, _, err = run(*cmd, "--filter", '{"andAll": [{"equals": {"a": "1"}}, {"orAll": []}]}')
        assert code == 1 and "(at $.andAll[1])" in _one_line_error(err)
    code, _, err = run("filter", "--filter", '{"equals": {"a": "1"}, "equals": {"b": "2"}}')
    assert code == 1 and "'equals' appears twice" in _one_line_error(err) and "andAll" in err
    code, _, err = run("query", str(logs_dir), "--where", "project")
    assert code == 1 and "KEY=VALUE" in _one_line_error(err)


def test_sql_and_stats_take_the_filters(logs_dir: Path) -> None:
    code, out, _ = run("sql", str(logs_dir), "SELECT requestId FROM logs ORDER BY 1", "--since",
                       "2025-06-01T09:30:00Z", "--until", "2025-06-01T11:00:00Z", "--format", "csv")
    assert code == 0 and out.splitlines() == ["requestId", "a"]
    code, out, _ = run("stats", str(logs_dir), "--by", "tag:project", "--by", "model", "--format", "jsonl",
                       "--operation", "Converse", "--operation", "InvokeModel")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted((r["tag:project"], r["records"]) for r in rows) == [("x", 1), ("y", 1)]
    assert {"records", "inputTokens", "outputTokens", "model"} <= set(rows[0])


def test_s3_errors_are_one_line_with_the_fix(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run("query", "s3://no-such-bucket-cli/AWSLogs")
    assert code == 1 and "does not exist" in _one_line_error(err)
    code, _, err = run("stats", "s3://no-such-bucket-cli/", "--profile", "nope")
    assert code == 1 and "profile 'nope' not found" in _one_line_error(err)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = run("query", "s3://no-such-bucket-cli/AWSLogs")
    assert code == 1 and "aws sso login" in _one_line_error(err)


def test_profile_from_the_aws_config_reads_s3(s3_client: object, s3_bucket: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    R.write_s3_logs(s3_client, s3_bucket, [R.converse(request_id="p1", tags={"project": "x"})])
    creds = tmp_path / "credentials"
    creds.write_text("[audit]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, err = run("query", f"s3://{s3_bucket}/AWSLogs", "--profile", "audit", "--region", "us-east-1",
                         "--format", "jsonl")
    assert code == 0 and [json.loads(line)["requestId"] for line in out.splitlines()] == ["p1"], err
    code, _, err = run("query", f"s3://{s3_bucket}/AWSLogs")
    assert code == 1 and "no AWS credentials" in err
