"""``logtap distill plan|submit|status``: parse options, call ``logtap.distill``, render."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from logtap.cli.options import (
    apply_options,
    aws_options,
    build_filter,
    filter_options,
    open_from_cli,
    quiet_option,
    report_problems,
    source_args,
)

F = TypeVar("F", bound=Callable[..., Any])
MODE = click.Choice(["prompt-only", "prompt-response"])
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="Human table, or JSON for scripts.")


def job_options(f: F) -> F:
    """The job's names, role, output location and teacher response length."""
    options = [
        click.option("--teacher", required=True, metavar="MODEL_ID", help="Teacher model (ID, profile ID or ARN)."),
        click.option("--student", required=True, metavar="MODEL_ID",
                     help="Student model, e.g. amazon.nova-lite-v1:0:300k."),
        click.option("--job-name", metavar="NAME", help="Name of the customization job."),
        click.option("--model-name", metavar="NAME", help="Name of the distilled custom model."),
        click.option("--role-arn", metavar="ARN", help="IAM role Bedrock assumes to read the data and write output."),
        click.option("--output", "output_uri", metavar="s3://BUCKET/PREFIX/", help="Where the job writes its output."),
        click.option("--max-response-length", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="maxResponseLengthForInference: token limit when the job invokes the teacher."),
        click.option("--kms-key-id", metavar="KEY", help="KMS key for the custom model."),
    ]
    return apply_options(f, options)


def _job_spec(kwargs: dict[str, Any]) -> Any:
    from logtap.distill import JobSpec

    return JobSpec(job_name=kwargs.pop("job_name"), model_name=kwargs.pop("model_name"),
                   role_arn=kwargs.pop("role_arn"), output_uri=kwargs.pop("output_uri"),
                   max_response_length=kwargs.pop("max_response_length"), kms_key_id=kwargs.pop("kms_key_id"))


def _session(profile: str | None, region: str | None) -> Any:
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


def _echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=str))


@click.group()
def distill() -> None:
    """Plan, submit and follow Bedrock Model Distillation jobs built from invocation logs."""


@distill.command()
@source_args
@filter_options
@job_options
@click.option("--mode", type=MODE,
              help="Mode of the request shown. Default: prompt-response when any record is usable for it.")
@FORMAT
@aws_options
@quiet_option
def plan(teacher: str, student: str, mode: str | None, fmt: str, **kwargs: Any) -> None:
    """Dry run: what a distillation job would select from the logs, and the exact request.

    Reports records matched per model and operation; per mode how many are usable and why the
    others are not; the 100 / 15,000 record checks; token lengths against the student's context;
    tags Bedrock's filters cannot match; whether the pair is supported; and the
    CreateModelCustomizationJob request. Nothing is created.

    \b
    Example:
      logtap distill plan s3://my-logs/AWSLogs --where project=support \\
          --teacher amazon.nova-pro-v1:0 --student amazon.nova-lite-v1:0:300k \\
          --role-arn arn:aws:iam::123456789012:role/Distill --output s3://my-bucket/distill/ \\
          --job-name support-1 --model-name support-lite
    """
    from logtap.distill import plan_logs

    job = _job_spec(kwargs)
    sources = list(kwargs["sources"])
    local_only = [f"--{k}" for k in ("since", "until", "model", "operation") if kwargs.get(k)]
    region = kwargs["region"] or _session(kwargs["profile"], None).region_name
    logs_uri = sources[0] if len(sources) == 1 and sources[0].startswith("s3://") else None
    with open_from_cli(kwargs) as logs:
        result = plan_logs(logs, teacher=teacher, student=student, region=region, logs_uri=logs_uri, job=job,
                           request_mode=mode, local_only=local_only)
        result.malformed = logs.report.malformed
        report_problems(logs.report, counts=False)
    if fmt == "json":
        _echo_json(result.to_json())
    else:
        click.echo(plan_table(result.to_json()))


def plan_table(doc: dict[str, Any]) -> str:
    """The plan as text for people."""
    lines = [f"Distillation plan: {doc['teacher']} -> {doc['student']}"]
    pair = doc["pair"]
    state = "supported" if pair["supported"] else "NOT supported"
    lines.append(f"  pair: {state} (Regions {', '.join(pair['regions']) or '-'}; table as of {pair['asOf']}, "
                 f"{pair['source']})")
    lines += [f"    ! {m}" for m in pair["messages"]]
    lines.append(f"  records matched: {doc['matched']}" + (f" ({doc['malformed']} malformed)" if doc["malformed"] else ""))
    for title, counts in (("by model", doc["byModel"]), ("by operation", doc["byOperation"])):
        lines.append(f"  {title}:")
        lines += [f"    {k:<50} {v:>8}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    for mode in doc["modes"].values():
        lines.append(f"  {mode['mode']} (usePromptResponse={str(mode['usePromptResponse']).lower()}): "
                     f"{mode['usable']} usable")
        lines += [f"    skipped {k:<40} {v:>8}" for k, v in mode["skipped"].items()]
        for name in ("input", "output"):
            t = mode["tokens"][name]
            if t:
                lines.append(f"    {name} tokens: min {t['min']}, p50 {t['p50']}, p95 {t['p95']}, max {t['max']}")
        if mode["tokens"]["overStudentContext"]:
            lines.append(f"    ! {mode['tokens']['overStudentContext']} records may exceed the student's context")
        lines += [f"    ! {c}" for c in mode["checks"]]
    if doc["unfilterableTags"]:
        lines.append("  tags Bedrock's filters cannot match (characters outside [a-zA-Z0-9 ._:/=+$@-]):")
        lines += [f"    {k:<50} {v:>8} records" for k, v in doc["unfilterableTags"].items()]
    if doc["filterProblem"]:
        lines.append(f"  ! filter: {doc['filterProblem']}")
    lines += [f"  note: {n}" for n in doc["notes"]]
    if doc["request"] is not None:
        lines.append("  CreateModelCustomizationJob request:")
        lines += ["    " + line for line in json.dumps(doc["request"], indent=2).splitlines()]
    lines += [f"  ! request: {p}" for p in doc["requestProblems"]]
    lines.append("  ready to submit" if doc["ok"] else "  not ready to submit")
    return "\n".join(lines)


@distill.command()
@click.argument("source", required=False, metavar="[SOURCE]")
@click.option("--training-data", metavar="s3://BUCKET/KEY.jsonl",
              help="Train on a file `logtap export` wrote to S3 instead of reading the logs.")
@click.option("--filter", "filter_", metavar="JSON|@FILE", help="Bedrock requestMetadataFilters document.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Tag equals / not-equals (KEY!=VALUE); AND-ed.")
@click.option("--mode", type=MODE, default="prompt-only", show_default=True,
              help="From logs: prompt-only (teacher answers again) or prompt-response (usePromptResponse).")
@job_options
@click.option("--dry-run", is_flag=True, help="Print the request and stop.")
@click.option("--wait", is_flag=True, help="Follow the job until it completes, fails or stops.")
@click.option("--poll-seconds", type=click.FloatRange(min=1), default=60, show_default=True)
@click.option("--allow-unlisted-pair", is_flag=True,
              help="Submit even if the pair is not in logtap's table of supported pairs.")
@aws_options
def submit(source: str | None, training_data: str | None, filter_: str | None, where: tuple[str, ...], mode: str,
           teacher: str, student: str, dry_run: bool, wait: bool, poll_seconds: float, allow_unlisted_pair: bool,
           profile: str | None, region: str | None, **kwargs: Any) -> None:
    """Create the distillation job (CreateModelCustomizationJob, customizationType DISTILLATION).

    \b
    Examples:
      logtap distill submit s3://my-logs/AWSLogs --where project=support --mode prompt-response \\
          --teacher amazon.nova-pro-v1:0 --student amazon.nova-lite-v1:0:300k --job-name support-1 \\
          --model-name support-lite --role-arn arn:aws:iam::123456789012:role/Distill \\
          --output s3://my-bucket/distill/ --dry-run
      logtap distill submit --training-data s3://my-bucket/train.jsonl --teacher amazon.nova-pro-v1:0 \\
          --student amazon.nova-lite-v1:0:300k --job-name support-2 --model-name support-lite-2 \\
          --role-arn arn:aws:iam::123456789012:role/Distill --output s3://my-bucket/distill/ --wait
    """
    from logtap.distill import build_request, check_pair, submit_job, validate_request
    from logtap.errors import DataError
    from logtap.filters import to_bedrock

    if (source is None) == (training_data is None):
        raise click.UsageError("give either SOURCE (s3:// logs) or --training-data s3://..., not both")
    if training_data and (filter_ or where):
        raise click.UsageError("--filter/--where apply to logs; the --training-data file is used as it is")
    job = _job_spec(kwargs)
    session = _session(profile, region)
    pair = check_pair(teacher, student, session.region_name)
    if not pair.supported and not allow_unlisted_pair and not dry_run:
        raise DataError(f"{teacher} -> {student}: " + "; ".join(pair.messages)
                        + " (pass --allow-unlisted-pair if the table is out of date)")
    tree = build_filter(filter_, where)
    request = build_request(teacher=teacher, student=pair.student_id or student, job=job, logs_uri=source,
                            filter=to_bedrock(tree) if tree is not None else None, mode=mode,  # type: ignore[arg-type]
                            training_data_uri=training_data)
    if dry_run:
        _echo_json(request)
        if not pair.supported:
            click.echo(f"logtap: warning: {teacher} -> {student}: " + "; ".join(pair.messages), err=True)
        for problem in validate_request(request):
            click.echo(f"logtap: warning: {problem}", err=True)
        return
    arn = submit_job(request, session=session)
    click.echo(arn)
    if wait:
        _follow(arn, session, poll_seconds)


@distill.command()
@click.argument("job")
@click.option("--wait", is_flag=True, help="Follow the job until it completes, fails or stops.")
@click.option("--poll-seconds", type=click.FloatRange(min=1), default=60, show_default=True)
@FORMAT
@aws_options
def status(job: str, wait: bool, poll_seconds: float, fmt: str, profile: str | None, region: str | None) -> None:
    """Show a distillation job's status (JOB is its name or ARN); --wait follows it to the end.

    Exits 1 if the job failed or was stopped.

    \b
    Example:
      logtap distill status support-1 --wait
    """
    from logtap.distill import job_status

    session = _session(profile, region)
    result = _follow(job, session, poll_seconds) if wait else job_status(job, session=session)
    if fmt == "json":
        _echo_json(result)
    else:
        for key, value in result.items():
            click.echo(f"{key:<18} {json.dumps(value, default=str) if isinstance(value, dict) else value}")
    if result.get("status") in ("Failed", "Stopped"):
        raise SystemExit(1)


def _follow(job: str, session: Any, poll_seconds: float) -> dict[str, Any]:
    from logtap.distill import wait_for_job

    def update(s: dict[str, Any]) -> None:
        click.echo(f"logtap: {s.get('jobName', job)}: {s.get('status')}", err=True)

    return wait_for_job(job, session=session, poll_seconds=poll_seconds, on_update=update)
