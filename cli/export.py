"""``logtap export`` and ``logtap validate``: parse options, call ``logtap.converters``, render."""

from __future__ import annotations

from typing import Any

import click

from logtap.cli.athena import engine_options, open_engine_from_cli
from logtap.cli.options import (
    aws_options,
    filter_options,
    quiet_option,
    report_problems,
    source_args,
)


@click.command()
@source_args
@click.option("--output", "-o", required=True, metavar="PATH|s3://BUCKET/KEY",
              help="Training file to write (written atomically; s3:// uses a multipart upload).")
@click.option("--mode", required=True, type=click.Choice(["prompt-only", "prompt-response"]),
              help="prompt-only: records end with the user turn (the teacher answers again); "
                   "prompt-response: they end with the logged answer.")
@filter_options
@click.option("--teacher", metavar="MODEL_ID",
              help="prompt-response: keep only records made by this model (any ID form).")
@click.option("--student", metavar="MODEL_ID",
              help="Target student model: picks the defaults and rules of its family (Nova, Llama, Claude).")
@click.option("--format", "format_", type=click.Choice(["bedrock", "openai"]), default="bedrock", show_default=True,
              help="bedrock-conversation-2024 JSONL, or OpenAI chat JSONL.")
@click.option("--dedupe/--no-dedupe", default=True, show_default=True,
              help="Drop exact repeats of the normalized prompt, keeping the earliest.")
@click.option("--max-records", type=click.IntRange(min=0), metavar="N",
              help="Write at most the earliest N records (after dedupe). Bedrock takes at most 15,000.")
@click.option("--manifest", metavar="PATH|s3://BUCKET/KEY",
              help="Write a JSON manifest: filter, mode, options, counts, requestIds, output SHA-256.")
@click.option("--multi-turn", type=click.Choice(["keep", "skip"]),
              help="Records with several user turns. Default: skip for single-turn students (Claude, Llama), "
                   "else keep.")
@click.option("--tool-use", type=click.Choice(["keep", "skip"]), help="Records with tool use/results. Default: skip.")
@click.option("--media", type=click.Choice(["keep", "skip"]),
              help="Records with images/documents/video (kept as s3Location references only). Default: skip.")
@click.option("--reasoning", type=click.Choice(["drop", "skip", "keep"]),
              help="Reasoning blocks: drop them, skip the record, or keep them. Default: drop.")
@click.option("--keep-truncated", is_flag=True, default=None,
              help="prompt-response: keep answers cut off by max tokens (skipped by default).")
@aws_options
@engine_options
@quiet_option
def export(**kwargs: Any) -> None:
    """Write selected invocation logs as a training dataset.

    Every matched record is either written or skipped with a named reason; the counts go to
    stderr and, with --manifest, to the manifest.

    \b
    Examples:
      logtap export ./logs --mode prompt-response --where project=support -o train.jsonl
      logtap export s3://my-logs/AWSLogs --mode prompt-only --student amazon.nova-lite-v1:0:300k \\
          --filter @filter.json -o s3://my-bucket/datasets/train.jsonl --manifest manifest.json
    """
    from logtap.converters.export import counts_table, run

    sources = list(kwargs["sources"])
    profile, region, quiet = kwargs["profile"], kwargs["region"], kwargs["quiet"]
    logs = open_engine_from_cli(kwargs)
    with logs:
        result = run(logs, sources=sources, output=kwargs["output"], mode=kwargs["mode"], format=kwargs["format_"],
                     teacher=kwargs["teacher"], student=kwargs["student"], dedupe=kwargs["dedupe"],
                     max_records=kwargs["max_records"], manifest=kwargs["manifest"],
                     multi_turn=kwargs["multi_turn"], tool_use=kwargs["tool_use"], media=kwargs["media"],
                     reasoning=kwargs["reasoning"], keep_truncated=kwargs["keep_truncated"],
                     profile=profile, region=region)
        report_problems(logs.report, counts=False)
    for warning in result.warnings:
        click.echo(f"logtap: warning: {warning}", err=True)
    if not quiet:
        click.echo(counts_table(result.counts), err=True)
        click.echo(f"logtap: wrote {result.counts['written']} records to {kwargs['output']} "
                   f"(sha256 {result.sha256[:16]}...)", err=True)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--student", metavar="MODEL_ID",
              help="Check the rules of this student's family (without it: the rules every student shares).")
def validate(file: str, student: str | None) -> None:
    """Check a bedrock-conversation-2024 JSONL file against Bedrock's rules.

    Prints each problem with its line number and exits 1 if there is any. Fewer than 100 or
    more than 15,000 records is a warning.

    \b
    Example:
      logtap validate train.jsonl --student meta.llama3-1-8b-instruct-v1:0:128k
    """
    from logtap.converters.validate import rules_for, validate_lines

    rules = rules_for(student)
    with click.open_file(file, "rb") as fh:
        report = validate_lines(fh, rules)
    for line, problem in report.problems:
        click.echo(f"{file}:{line}: {problem}" if line else f"{file}: {problem}")
    for warning in report.warnings:
        click.echo(f"logtap: warning: {warning}", err=True)
    summary = (f"{report.records} records, {len(report.problems)} problems "
               f"({rules.name} rules{'' if student is None else ' for ' + student})")
    click.echo(summary, err=True)
    if report.problems:
        raise SystemExit(1)
