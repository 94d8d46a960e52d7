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
    assert code == 1 and "not a time" in err
    code, _, _ = run("query")
    assert code == 2
    code, _, err = run("stats", str(logs_dir), "--by", "colour")
    assert code == 1 and "not a grouping" in err


def test_bad_lines_are_named_on_stderr(logs_dir: Path) -> None:
    folder = R.hour_dir(logs_dir, "2025-06-01T10:00:00Z")
    (folder / "broken.jsonl").write_text('{"requestId": "z"\n')
    code, out, err = run("query", str(logs_dir), "--format", "jsonl", "-q")
    assert code == 0 and len(out.splitlines()) == 3
    assert "broken.jsonl:1: not valid JSON" in err and "1 malformed" in err
