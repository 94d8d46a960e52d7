"""Distillation plan, request and job flow: real converters and engine, botocore's real ``bedrock``
service model (``Stubber`` validates every request), logs on moto's S3 server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import logtap
from logtap.distill import (
    JobSpec,
    build_request,
    check_pair,
    context_tokens,
    job_status,
    load_pairs,
    plan_distillation,
    submit_job,
    validate_request,
    wait_for_job,
)
from logtap.errors import DataError, LogtapError
from logtap.filters import AndAll, Equals, OrAll
from support import records

TEACHER = "amazon.nova-pro-v1:0"
NOVA_STUDENT = "amazon.nova-lite-v1:0:300k"
LLAMA_STUDENT = "meta.llama3-1-8b-instruct-v1:0:128k"
JOB = JobSpec(job_name="support-distill-1", model_name="support-lite", output_uri="s3://out-bucket/distill/",
              role_arn="arn:aws:iam::123456789012:role/BedrockDistill", max_response_length=2048)
JOB_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/amazon.nova-lite-v1:0:300k/abc123"


def _multi_turn(rec: dict[str, Any]) -> dict[str, Any]:
    msgs = rec["input"]["inputBodyJson"]["messages"]
    msgs[:0] = [{"role": "user", "content": [{"text": "earlier question"}]},
                {"role": "assistant", "content": [{"text": "earlier answer"}]}]
    return rec


def _with_image(rec: dict[str, Any]) -> dict[str, Any]:
    rec["input"]["inputBodyJson"]["messages"][0]["content"].append(
        {"image": {"format": "png", "source": {"s3Uri": "s3://b/data/x_input_media_00.png"}}})
    return rec


def _no_response(rec: dict[str, Any]) -> dict[str, Any]:
    del rec["output"]["outputBodyJson"]
    return rec


def mixed_records() -> list[dict[str, Any]]:
    """A known mix: 4 usable teacher records, 1 other-model, 1 multi-turn, 1 image, 1 no response,
    1 duplicate prompt of a teacher record."""
    tags = {"project": "support"}
    out = [records.converse(request_id=f"t{i}", model_id=f"us.{TEACHER}" if i == 0 else TEACHER,
                            prompt=f"question {i}", tags=tags, timestamp=f"2025-06-01T10:0{i}:00Z")
           for i in range(4)]
    out.append(records.converse(request_id="other", model_id="amazon.nova-micro-v1:0", prompt="other", tags=tags,
                                timestamp="2025-06-01T10:10:00Z"))
    out.append(_multi_turn(records.converse(request_id="multi", model_id=TEACHER, prompt="multi", tags=tags,
                                            timestamp="2025-06-01T10:11:00Z")))
    out.append(_with_image(records.converse(request_id="image", model_id=TEACHER, prompt="image", tags=tags,
                                            timestamp="2025-06-01T10:12:00Z")))
    out.append(_no_response(records.converse(request_id="noresp", model_id=TEACHER, prompt="noresp", tags=tags,
                                             timestamp="2025-06-01T10:13:00Z")))
    out.append(records.converse(request_id="dup", model_id=TEACHER, prompt="question 1", tags=tags,
                                timestamp="2025-06-01T10:14:00Z"))
    return out


# --------------------------------------------------------------------------- pairs

def test_pairs_table_names_its_source_and_date() -> None:
    table = load_pairs()
    assert table["source"].startswith("https://docs.aws.amazon.com/bedrock/")
    assert len(table["as_of"]) == 10 and table["as_of"][4] == "-"
    assert all({"teacher", "students", "regions", "available"} <= set(p) for p in table["pairs"])


def test_supported_pair_in_its_region() -> None:
    pair = check_pair(f"arn:aws:bedrock:us-east-1::foundation-model/{TEACHER}", "amazon.nova-lite-v1:0:300k",
                      "us-east-1")
    assert pair.supported and pair.student_id == NOVA_STUDENT and pair.context_tokens == 300_000
    assert pair.messages == ()


@pytest.mark.parametrize("teacher, student, region, supported, message", [
    (TEACHER, "amazon.nova-lite-v1:0:300k", "us-west-2", False, "runs in us-east-1, not us-west-2"),
    (TEACHER, "amazon.nova-lite-v1:0", None, True, "--student amazon.nova-lite-v1:0:300k"),
    (TEACHER, LLAMA_STUDENT, None, False, "is a teacher for amazon.nova-lite-v1:0:300k"),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0:200k", None, False,
     "not currently available"),
    ("amazon.nova-premier-v1:0", NOVA_STUDENT, None, True, "only through a (system) inference profile"),
    ("mistral.mistral-large-2407-v1:0", NOVA_STUDENT, None, False, "is not a distillation teacher"),
])
def test_pair_problems_are_explained(teacher: str, student: str, region: str | None, supported: bool,
                                     message: str) -> None:
    pair = check_pair(teacher, student, region)
    assert pair.supported is supported
    assert any(message in m for m in pair.messages), pair.messages


def test_context_tokens_from_the_id_suffix() -> None:
    assert context_tokens("amazon.nova-micro-v1:0:128k") == 128_000
    assert context_tokens("amazon.nova-micro-v1:0") is None


# --------------------------------------------------------------------------- plan

def test_plan_counts_and_skip_reasons_per_mode() -> None:
    plan = plan_distillation(mixed_records(), teacher=TEACHER, student=LLAMA_STUDENT,
                             filter=Equals("project", "support"), logs_uri="s3://logs-bucket/AWSLogs/")
    assert plan.matched == 9
    assert plan.by_model == {TEACHER: 8, "amazon.nova-micro-v1:0": 1}
    assert plan.by_operation == {"Converse": 9}
    po, pr = plan.modes["prompt-only"], plan.modes["prompt-response"]
    # prompt-only: any model's prompt counts
    assert po.usable == 5
    assert dict(po.skipped) == {"multi-turn": 1, "non-text-content": 1, "no-response": 1, "duplicate": 1}
    # prompt-response: only the teacher's responses (the inference-profile form counts as the teacher)
    assert pr.usable == 4
    assert dict(pr.skipped) == {"teacher-mismatch": 1, "multi-turn": 1, "non-text-content": 1, "no-response": 1,
                                "duplicate": 1}
    for mp in (po, pr):
        assert mp.usable + sum(mp.skipped.values()) == plan.matched
        assert any("at least 100" in c for c in mp.checks())
    assert plan.filter == {"equals": {"project": "support"}}
    assert not plan.pair.supported  # Nova Pro does not teach Llama
    assert plan.request is not None
    assert plan.request["trainingDataConfig"]["invocationLogsConfig"]["usePromptResponse"] is True


def test_plan_agrees_with_export_on_the_same_records(tmp_path: Any) -> None:
    from logtap.converters.export import ExportOptions, export_records
    from logtap.converters.shaping import Shaping

    root = tmp_path / "logs"
    records.write_logs(root, mixed_records())
    plan = plan_distillation(logtap.open_logs(str(root)).records(), teacher=TEACHER, student=NOVA_STUDENT)
    for mode in ("prompt-only", "prompt-response"):
        shaping = Shaping.for_student(NOVA_STUDENT, mode=mode, teacher=TEACHER)
        result = export_records(logtap.open_logs(str(root)), ExportOptions(output=str(tmp_path / f"{mode}.jsonl"),
                                                                          shaping=shaping))
        assert plan.modes[mode].usable == result.counts["written"]
        assert dict(plan.modes[mode].skipped) == result.counts["skipped"]


def test_nova_student_keeps_multi_turn() -> None:
    plan = plan_distillation(mixed_records(), teacher=TEACHER, student=NOVA_STUDENT)
    assert "multi-turn" not in plan.modes["prompt-only"].skipped
    assert plan.modes["prompt-only"].usable == 6


def test_minimum_and_maximum_checks() -> None:
    many = [records.converse(request_id=f"r{i}", model_id=TEACHER, prompt=f"p{i}") for i in range(101)]
    plan = plan_distillation(many, teacher=TEACHER, student=NOVA_STUDENT)
    assert plan.modes["prompt-response"].usable == 101
    assert plan.modes["prompt-response"].checks() == []
    at_min = plan_distillation(many[:100], teacher=TEACHER, student=NOVA_STUDENT)
    assert at_min.modes["prompt-only"].checks() == []
    below = plan_distillation(many[:99], teacher=TEACHER, student=NOVA_STUDENT)
    assert below.modes["prompt-only"].checks() == ["only 99 usable records: Bedrock recommends at least 100"]


def test_maximum_check_counts_usable_records() -> None:
    """15,000 usable records pass, 15,001 do not. A minimal record and a key-per-record classifier
    keep this fast; the counting, duplicate detection and checks are the plan's own."""
    def classify(rec: Any, mode: str) -> tuple[str | None, bytes | None]:
        return None, rec["requestId"].encode()

    def recs(n: int) -> Iterator[dict[str, Any]]:
        return ({"requestId": f"r{i}", "modelId": TEACHER, "operation": "Converse"} for i in range(n))

    at_max = plan_distillation(recs(15_000), teacher=TEACHER, student=NOVA_STUDENT, classify=classify)
    assert at_max.modes["prompt-only"].checks() == []
    over = plan_distillation(recs(15_001), teacher=TEACHER, student=NOVA_STUDENT, classify=classify)
    assert over.modes["prompt-only"].usable == 15_001
    assert over.modes["prompt-only"].checks() == ["15001 usable records: a distillation job takes at most 15,000"]
    assert any("above 15,000" in n for n in over.notes)


def test_token_statistics_against_the_student_context() -> None:
    recs = [records.converse(request_id=f"r{i}", model_id=TEACHER, prompt=f"p{i}", in_tokens=n, out_tokens=10)
            for i, n in enumerate([100, 200, 300, 127_500])]
    plan = plan_distillation(recs, teacher=TEACHER, student="amazon.nova-micro-v1:0:128k",
                             job=JobSpec(max_response_length=1000))
    po, pr = plan.modes["prompt-only"], plan.modes["prompt-response"]
    assert pr.to_json()["tokens"]["input"] == {"min": 100, "p50": 300, "p95": 127_500, "max": 127_500, "count": 4}
    assert pr.over_context == 0          # 127,500 + the logged 10 fits in 128k
    assert po.over_context == 1          # 127,500 + up to 1,000 teacher tokens may not


def test_tags_bedrock_filters_cannot_match_are_counted_by_key() -> None:
    recs = [records.converse(request_id="a", tags={"ticket": "A#1", "team": "x"}),
            records.converse(request_id="b", tags={"ticket": "B,2"}),
            records.converse(request_id="c", tags={"team": "y"})]
    plan = plan_distillation(recs, teacher=TEACHER, student=NOVA_STUDENT)
    assert plan.unfilterable_tags == {"ticket": 2}
    assert "A#1" not in str(plan.to_json())  # values are never echoed


def test_filter_bedrock_cannot_express_blocks_the_request() -> None:
    nested = AndAll((Equals("a", "b"), OrAll((Equals("c", "d"), Equals("e", "f")))))
    plan = plan_distillation([], teacher=TEACHER, student=NOVA_STUDENT, filter=nested,
                             logs_uri="s3://logs-bucket/AWSLogs/", job=JOB)
    assert plan.filter_problem is not None and "cannot express" in plan.filter_problem
    assert plan.request is None and not plan.ok


def test_local_only_options_and_local_sources_are_explained() -> None:
    plan = plan_distillation([], teacher=TEACHER, student=NOVA_STUDENT, local_only=["--since", "--model"])
    assert any("--since, --model narrowed this report" in n for n in plan.notes)
    assert plan.request is None
    assert any("s3:// SOURCE" in p for p in plan.request_problems)


def test_complete_plan_request_is_accepted_by_the_real_service_model() -> None:
    plan = plan_distillation(mixed_records(), teacher=TEACHER, student="amazon.nova-lite-v1:0",
                             filter=Equals("project", "support"), logs_uri="s3://logs-bucket/AWSLogs/",
                             region="us-east-1", job=JOB)
    assert plan.ok, plan.request_problems
    assert plan.request == {
        "jobName": "support-distill-1",
        "customModelName": "support-lite",
        "roleArn": "arn:aws:iam::123456789012:role/BedrockDistill",
        "baseModelIdentifier": NOVA_STUDENT,  # the suffix the pairs table knows
        "customizationType": "DISTILLATION",
        "trainingDataConfig": {"invocationLogsConfig": {
            "usePromptResponse": True,
            "invocationLogSource": {"s3Uri": "s3://logs-bucket/AWSLogs/"},
            "requestMetadataFilters": {"equals": {"project": "support"}},
        }},
        "outputDataConfig": {"s3Uri": "s3://out-bucket/distill/"},
        "customizationConfig": {"distillationConfig": {"teacherModelConfig": {
            "teacherModelIdentifier": TEACHER, "maxResponseLengthForInference": 2048}}},
    }
    client = boto3.Session(region_name="us-east-1").client("bedrock")
    with Stubber(client) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, expected_params=plan.request)
        assert submit_job(plan.request, client=client) == JOB_ARN
        stub.assert_no_pending_responses()


def test_plan_from_s3_logs_through_the_engine(s3_client: Any, s3_bucket: str) -> None:
    recs = mixed_records()
    recs.append(records.converse(request_id="untagged", model_id=TEACHER, prompt="untagged"))
    records.write_s3_logs(s3_client, s3_bucket, recs, prefix="bedrock/")
    source = f"s3://{s3_bucket}/bedrock/AWSLogs/"
    logs = logtap.open_logs(source, filter=Equals("project", "support"))
    plan = plan_distillation(logs.records(), teacher=TEACHER, student=NOVA_STUDENT,
                             filter=logs.filter, logs_uri=source, job=JOB, region="us-east-1")
    assert plan.matched == 9  # the untagged record is not selected
    assert plan.ok
    assert plan.request is not None
    assert plan.request["trainingDataConfig"]["invocationLogsConfig"]["invocationLogSource"] == {"s3Uri": source}


# --------------------------------------------------------------------------- request and job

def test_request_from_an_exported_file() -> None:
    request = build_request(teacher=TEACHER, student=NOVA_STUDENT, job=JOB,
                            training_data_uri="s3://out-bucket/train.jsonl")
    assert request["trainingDataConfig"] == {"s3Uri": "s3://out-bucket/train.jsonl"}
    assert validate_request(request) == []


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"logs_uri": "s3://a/", "training_data_uri": "s3://b/x.jsonl"}, "exactly one"),
    ({"logs_uri": "/local/logs"}, "not an s3:// URI"),
    ({"training_data_uri": "train.jsonl"}, "must be an s3:// URI"),
    ({"logs_uri": "s3://a/", "mode": "both"}, "--mode"),
])
def test_bad_request_inputs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LogtapError, match=message):
        build_request(teacher=TEACHER, student=NOVA_STUDENT, job=JOB, **kwargs)


def test_invalid_request_is_refused_before_any_call() -> None:
    bad = copy.deepcopy(build_request(teacher=TEACHER, student=NOVA_STUDENT, job=JOB, logs_uri="s3://a/"))
    bad["jobName"] = "has spaces"
    del bad["roleArn"]
    client = boto3.Session(region_name="us-east-1").client("bedrock")
    with Stubber(client), pytest.raises(DataError) as err:  # no response queued: a call would fail
        submit_job(bad, client=client)
    assert "roleArn" in str(err.value) and "jobName 'has spaces'" in str(err.value)


def test_nested_strings_are_checked_against_the_service_model_patterns() -> None:
    """botocore checks types and required members only; the patterns of nested strings (the teacher,
    the logs' S3 URI) are checked from the same model before anything is sent."""
    request = build_request(teacher="Nova Pro!", student=NOVA_STUDENT, job=JOB, logs_uri="s3://Bad_Bucket/logs/")
    problems = validate_request(request)
    assert any(p.startswith("customizationConfig.distillationConfig.teacherModelConfig.teacherModelIdentifier "
                            "'Nova Pro!' does not match") for p in problems), problems
    assert any(p.startswith("trainingDataConfig.invocationLogsConfig.invocationLogSource.s3Uri") for p in problems)
    good = build_request(teacher=f"us.{TEACHER}", student=NOVA_STUDENT, job=JOB, logs_uri="s3://logs-bucket/AWSLogs/",
                         filter={"andAll": [{"equals": {"project": "support"}}, {"notEquals": {"env": "dev"}}]})
    assert validate_request(good) == []


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.Session(region_name="us-east-1").client("bedrock")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _job(status: str, **extra: Any) -> dict[str, Any]:
    return {"jobArn": JOB_ARN, "jobName": "support-distill-1", "outputModelName": "support-lite",
            "roleArn": JOB.role_arn,
            "status": status, "creationTime": "2025-06-01T10:00:00Z", "baseModelArn": "arn:aws:bedrock:::x",
            "trainingDataConfig": {"s3Uri": "s3://out-bucket/train.jsonl"},
            "validationDataConfig": {"validators": []},
            "outputDataConfig": {"s3Uri": "s3://out-bucket/distill/"}, **extra}


def test_job_status(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": "support-distill-1"})
    status = job_status("support-distill-1", client=client)
    assert status["status"] == "InProgress" and status["jobArn"] == JOB_ARN
    assert "trainingDataConfig" not in status


def test_wait_for_job_follows_until_done(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    for state in ("InProgress", "InProgress", "Completed"):
        stub.add_response("get_model_customization_job", _job(state), {"jobIdentifier": JOB_ARN})
    seen: list[str] = []
    sleeps: list[float] = []
    final = wait_for_job(JOB_ARN, client=client, poll_seconds=30, on_update=lambda s: seen.append(s["status"]),
                         sleep=sleeps.append)
    assert final["status"] == "Completed"
    assert seen == ["InProgress", "Completed"]  # one update per change
    assert sleeps == [30, 30]


def test_wait_for_job_times_out(bedrock: tuple[Any, Stubber]) -> None:
    client, stub = bedrock
    stub.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": JOB_ARN})
    stub.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": JOB_ARN})
    ticks = iter([0.0, 10.0, 20.0])
    with pytest.raises(DataError, match="still InProgress after 15 s"):
        wait_for_job(JOB_ARN, client=client, poll_seconds=10, timeout_seconds=15, sleep=lambda s: None,
                     clock=lambda: next(ticks))
