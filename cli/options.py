"""Reusable click options for every command that reads logs (query, stats, sql, export, distill).

Use the decorators and build the engine with ONE call::

    @click.command()
    @source_args
    @filter_options
    @aws_options
    @quiet_option
    def export(**kwargs):
        logs = open_from_cli(**kwargs)   # consumes sources/filter/where/since/until/model/operation/profile/region/quiet
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: The keyword names the decorators below add; ``open_from_cli`` pops exactly these.
ENGINE_KWARGS = ("sources", "filter_", "where", "since", "until", "model", "operation", "profile", "region",
                 "quiet")


def apply_options(f: F, options: Sequence[Callable[[Any], Any]]) -> F:
    """``f`` decorated by ``options`` as if they were stacked in this order above it (first = outermost)."""
    for option in reversed(options):
        f = option(f)
    return f


def source_args(f: F) -> F:
    """``SOURCE...``: folders, log files or s3:// URIs (one or more)."""
    return click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")(f)


def check_time(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A malformed --since/--until is a usage error (exit 2); the engine parses the value again."""
    if value is not None:
        from logtap.timerange import TimeError, parse_time

        try:
            parse_time(value, option=f"--{param.name}")
        except TimeError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def filter_options(f: F) -> F:
    """--filter, --where, --since, --until, --model, --operation."""
    options = [
        click.option("--filter", "filter_", metavar="JSON|@FILE",
                     help="Bedrock requestMetadataFilters document (or @file.json)."),
        click.option("--where", multiple=True, metavar="KEY=VALUE",
                     help="Tag equals (KEY=VALUE) or not-equals (KEY!=VALUE); repeatable, AND-ed."),
        click.option("--since", metavar="TIME", callback=check_time, help="ISO 8601 date/time (UTC unless zoned) or 30m/12h/7d; inclusive."),
        click.option("--until", metavar="TIME", callback=check_time, help="Like --since; exclusive."),
        click.option("--model", multiple=True, metavar="ID",
                     help="Model in any form (base ID, us./eu./global. profile ID, ARN); repeatable."),
        click.option("--operation", multiple=True, metavar="OP",
                     type=click.Choice(["Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"]),
                     help="Operation; repeatable."),
    ]
    return apply_options(f, options)


def aws_options(f: F) -> F:
    """--profile, --region (boto3 configuration; AWS_ENDPOINT_URL_S3 is honoured)."""
    f = click.option("--region", metavar="REGION", help="AWS Region for S3 access.")(f)
    return click.option("--profile", metavar="NAME", help="AWS profile from ~/.aws/config.")(f)


def quiet_option(f: F) -> F:
    return click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")(f)


def build_filter(filter_: str | None, where: tuple[str, ...]) -> Any:
    """The combined Filter (or None) from --filter and --where values."""
    from logtap.filters import combine, parse_filter_arg, parse_where

    return combine(parse_filter_arg(filter_) if filter_ else None, parse_where(where))


def open_from_cli(kwargs: dict[str, Any]) -> Any:
    """Pop the engine options out of a command's ``kwargs`` and open the LogSet."""
    from logtap.engine import open_logs

    opts = {k: kwargs.pop(k, None) for k in ENGINE_KWARGS}
    return open_logs(list(opts["sources"] or ()), filter=build_filter(opts["filter_"], opts["where"] or ()),
                     since=opts["since"], until=opts["until"], models=opts["model"] or (),
                     operations=opts["operation"] or (), profile=opts["profile"], region=opts["region"],
                     progress=not opts["quiet"])


def report_problems(report: Any, limit: int = 20, counts: bool = True) -> None:
    """Name each problem on stderr (the first ``limit``), then a one-line summary."""
    for problem in report.problems[:limit]:
        click.echo(f"logtap: warning: {problem}", err=True)
    if len(report.problems) > limit:
        click.echo(f"logtap: ... and {len(report.problems) - limit} more problems", err=True)
    skipped = ", ".join(f"{n} {k}" for k, n in sorted(report.skipped.items()))
    if counts and (report.malformed or report.problems or skipped):
        click.echo(f"logtap: {report.matched} matched of {report.scanned} records; {report.malformed} malformed"
                   + (f"; skipped {skipped}" if skipped else ""), err=True)
