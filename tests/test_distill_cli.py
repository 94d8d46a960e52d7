"""``logtap distill plan|submit|status`` through click: real engine and converters over local and
moto-S3 logs; Bedrock calls through a real ``bedrock`` client under ``Stubber`` (moto's Bedrock
rejects DISTILLATION requests, so no local endpoint can take them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from logtap.cli import cli
from support import records

TEACHER = "amazon.nova-pro-v1:0"
STUDENT = "amazon.nova-lite-v1:0:300k"
ROLE = "arn:aws:iam::123456789012:role/Distill"
JOB_ARGS = ["--job-name", "support-1", "--model-name", "support-lite", "--role-arn", ROLE,
            "--output", "s3://out-bucket/distill/"]
JOB_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova-lite-v1:0:300k/abc"


def _logs() -> list[dict[str, Any]]:
    recs = [records.converse(request_id=f"r{i}", model_id=TEACHER, prompt=f"question {i}",
                             tags={"project": "support", "ticket": f"T#{i}"}, timestamp=f"2025-06-01T10:{i:02d}:00Z")
            for i in range(5)]
    recs.append(records.converse(request_id="other", model_id="amazon.nova-micro-v1:0", prompt="x",
                                 tags={"project": "support"}, timestamp="2025-06-01T11:00:00Z"))
    recs.append(records.converse(request_id="elsewhere", model_id=TEACHER, prompt="y",
                                 tags={"project": "search"}, timestamp="2025-06-01T11:01:00Z"))
    return recs


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_plan_json_over_local_logs(tmp_path: Path) -> None:
    records.write_logs(tmp_path, _logs())
    result = run("distill", "plan", str(tmp_path), "--where", "project=support", "--teacher", TEACHER,
                 "--student", STUDENT, "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["matched"] == 6
    assert doc["byModel"] == {TEACHER: 5, "amazon.nova-micro-v1:0": 1}
    assert doc["modes"]["prompt-only"]["usable"] == 6
    assert doc["modes"]["prompt-response"]["usable"] == 5
    assert doc["modes"]["prompt-response"]["skipped"] == {"teacher-mismatch": 1}
    assert doc["unfilterableTags"] == {"ticket": 5}
    assert doc["filter"] == {"equals": {"project": "support"}}
    assert doc["pair"]["supported"] is True
    assert doc["request"] is None  # a local folder cannot be a job's source
    assert any("s3:// SOURCE" in p for p in doc["requestProblems"])
    assert doc["ok"] is False


def test_plan_table_over_s3_logs_shows_the_request(s3_client: Any, s3_bucket: str) -> None:
    records.write_s3_logs(s3_client, s3_bucket, _logs())
    source = f"s3://{s3_bucket}/AWSLogs/"
    result = run("distill", "plan", source, "--filter", '{"equals": {"project": "support"}}', "--since",
                 "2025-06-01", "--teacher", TEACHER, "--student", "amazon.nova-lite-v1:0", *JOB_ARGS,
                 "--region", "us-east-1", "-q")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "pair: supported (Regions us-east-1" in out
    assert "records matched: 6" in out
    assert "prompt-response (usePromptResponse=true): 5 usable" in out
    assert "skipped teacher-mismatch" in out
    assert "only 5 usable records: Bedrock recommends at least 100" in out
    assert "--since narrowed this report" in out
    assert f'"s3Uri": "{source}"' in out
    assert '"baseModelIdentifier": "amazon.nova-lite-v1:0:300k"' in out
    assert "ready to submit" in out and "not ready" not in out


def test_plan_with_a_filter_bedrock_rejects_is_an_error(tmp_path: Path) -> None:
    records.write_logs(tmp_path, _logs())
    result = CliRunner().invoke(cli, ["distill", "plan", str(tmp_path), "--filter", '{"equals": {"a#": "b"}}',
                                      "--teacher", TEACHER, "--student", STUDENT])
    assert result.exit_code == 1
    assert "Error:" in result.output and "'a#'" in result.output


@pytest.fixture
def stubbed_bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The CLI's boto3 session hands out one real ``bedrock`` client, under a Stubber."""
    session = boto3.Session(region_name="us-east-1")
    client = session.client("bedrock")

    class OneClientSession:
        region_name = "us-east-1"

        def client(self, name: str, **kw: Any) -> Any:
            assert name == "bedrock"
            return client

    monkeypatch.setattr("logtap.cli.distill._session", lambda profile, region: OneClientSession())
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _expected_request(**data: Any) -> dict[str, Any]:
    return {
        "jobName": "support-1", "customModelName": "support-lite", "roleArn": ROLE,
        "baseModelIdentifier": STUDENT, "customizationType": "DISTILLATION", "trainingDataConfig": data,
        "outputDataConfig": {"s3Uri": "s3://out-bucket/distill/"},
        "customizationConfig": {"distillationConfig": {"teacherModelConfig": {
            "teacherModelIdentifier": TEACHER, "maxResponseLengthForInference": 1000}}},
    }


def test_submit_from_logs(stubbed_bedrock: Stubber) -> None:
    expected = _expected_request(invocationLogsConfig={
        "usePromptResponse": True, "invocationLogSource": {"s3Uri": "s3://logs-bucket/AWSLogs/"},
        "requestMetadataFilters": {"andAll": [{"equals": {"project": "support"}}, {"notEquals": {"env": "dev"}}]},
    })
    stubbed_bedrock.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, expected)
    result = run("distill", "submit", "s3://logs-bucket/AWSLogs/", "--where", "project=support", "--where",
                 "env!=dev", "--mode", "prompt-response", "--teacher", TEACHER, "--student", STUDENT, *JOB_ARGS)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == JOB_ARN


def test_submit_from_an_exported_file_and_wait(stubbed_bedrock: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("logtap.distill.time.sleep", lambda s: None)
    stubbed_bedrock.add_response("create_model_customization_job", {"jobArn": JOB_ARN},
                                 _expected_request(s3Uri="s3://out-bucket/train.jsonl"))
    for state in ("InProgress", "Completed"):
        stubbed_bedrock.add_response("get_model_customization_job", _job(state), {"jobIdentifier": JOB_ARN})
    result = run("distill", "submit", "--training-data", "s3://out-bucket/train.jsonl", "--teacher", TEACHER,
                 "--student", STUDENT, *JOB_ARGS, "--wait", "--poll-seconds", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == JOB_ARN
    assert "support-1: InProgress" in result.stderr and "support-1: Completed" in result.stderr


def test_submit_dry_run_prints_the_request_and_sends_nothing(stubbed_bedrock: Stubber) -> None:
    result = run("distill", "submit", "s3://logs-bucket/AWSLogs/", "--teacher", TEACHER, "--student",
                 "amazon.nova-micro-v1:0", "--job-name", "bad name", "--dry-run")
    assert result.exit_code == 0, result.output
    request = json.loads(result.stdout)
    assert request["trainingDataConfig"]["invocationLogsConfig"]["usePromptResponse"] is False
    assert request["baseModelIdentifier"] == "amazon.nova-micro-v1:0:128k"
    assert "requestMetadataFilters" not in request["trainingDataConfig"]["invocationLogsConfig"]
    assert "Missing required parameter in input: \"roleArn\"" in result.stderr
    assert "jobName 'bad name' does not match" in result.stderr


def test_submit_refuses_an_unsupported_pair(stubbed_bedrock: Stubber) -> None:
    result = CliRunner().invoke(cli, ["distill", "submit", "s3://logs-bucket/AWSLogs/", "--teacher", TEACHER,
                                      "--student", "meta.llama3-1-8b-instruct-v1:0:128k", *JOB_ARGS])
    assert result.exit_code == 1
    assert "is a teacher for" in result.output and "--allow-unlisted-pair" in result.output


@pytest.mark.parametrize("args", [
    ["--teacher", TEACHER, "--student", STUDENT],
    ["s3://a/", "--training-data", "s3://b/t.jsonl", "--teacher", TEACHER, "--student", STUDENT],
    ["--training-data", "s3://b/t.jsonl", "--where", "a=b", "--teacher", TEACHER, "--student", STUDENT],
])
def test_submit_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["distill", "submit", *args])
    assert result.exit_code == 2


def _job(status: str) -> dict[str, Any]:
    return {"jobArn": JOB_ARN, "jobName": "support-1", "outputModelName": "support-lite", "roleArn": ROLE,
            "status": status, "creationTime": "2025-06-01T10:00:00Z", "baseModelArn": "arn:aws:bedrock:::m",
            "trainingDataConfig": {"s3Uri": "s3://out-bucket/train.jsonl"},
            "validationDataConfig": {"validators": []}, "outputDataConfig": {"s3Uri": "s3://out-bucket/distill/"},
            **({"failureMessage": "Role cannot read s3://logs-bucket"} if status == "Failed" else {})}


def test_status(stubbed_bedrock: Stubber) -> None:
    stubbed_bedrock.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": "support-1"})
    result = run("distill", "status", "support-1", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "InProgress"


def test_status_of_a_failed_job_exits_1(stubbed_bedrock: Stubber) -> None:
    stubbed_bedrock.add_response("get_model_customization_job", _job("Failed"), {"jobIdentifier": "support-1"})
    result = CliRunner().invoke(cli, ["distill", "status", "support-1"])
    assert result.exit_code == 1
    assert "failureMessage" in result.output and "Role cannot read" in result.output


@pytest.mark.parametrize("mode", ["prompt-only", "prompt-response"])
def test_plan_shows_exactly_the_request_submit_sends(s3_client: Any, s3_bucket: str, stubbed_bedrock: Stubber,
                                                      mode: str) -> None:
    """The request in the plan is the one `submit` with the same options sends (checked by Stubber's
    expected_params against the real service model)."""
    records.write_s3_logs(s3_client, s3_bucket, _logs())
    source = f"s3://{s3_bucket}/AWSLogs/"
    common = [source, "--where", "project=support", "--where", "env!=dev", "--mode", mode, "--teacher", TEACHER,
              "--student", "amazon.nova-lite-v1:0", *JOB_ARGS, "--max-response-length", "1500"]
    planned = run("distill", "plan", *common, "--format", "json", "--region", "us-east-1", "-q")
    assert planned.exit_code == 0, planned.output
    doc = json.loads(planned.stdout)
    assert doc["ok"] is True and doc["requestProblems"] == []
    request = doc["request"]
    assert request["trainingDataConfig"]["invocationLogsConfig"]["usePromptResponse"] is (mode == "prompt-response")
    stubbed_bedrock.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, expected_params=request)
    submitted = run("distill", "submit", *common)
    assert submitted.exit_code == 0, submitted.output
    assert submitted.stdout.strip() == JOB_ARN
