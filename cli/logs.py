"""``logtap query | stats | sql | filter``: parse options, call the engine, render."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import islice
from typing import Any

import click

from logtap.cli.athena import engine_options, open_engine_from_cli
from logtap.cli.options import (
    aws_options,
    build_filter,
    filter_options,
    open_from_cli,
    quiet_option,
    report_problems,
    source_args,
)

QUERY_COLUMNS = ("requestId", "timestamp", "operation", "modelId", "requestMetadata", "inputTokenCount",
                 "outputTokenCount")


def _default(value: Any) -> Any:
    from decimal import Decimal  # (only tables, json and csv output come here)

    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_default, ensure_ascii=False)
    return str(value)


def render(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str) -> None:
    out = sys.stdout
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(dict(zip(columns, row, strict=False)), default=_default, ensure_ascii=False) + "\n")
    elif fmt == "json":
        out.write(json.dumps([dict(zip(columns, r, strict=False)) for r in rows], default=_default, ensure_ascii=False, indent=2))
        out.write("\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in r] for r in rows)
    else:
        cells = [[_cell(v) for v in r] for r in rows]
        widths = [min(max([len(c)] + [len(r[i]) for r in cells]), 60) for i, c in enumerate(columns)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=False)))
        click.echo("  ".join("-" * w for w in widths))
        for r in cells:
            click.echo("  ".join(v[:w].ljust(w) for v, w in zip(r, widths, strict=False)))


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]), default="table",
                      show_default=True, help="Output format.")


@click.command()
@source_args
@filter_options
@aws_options
@click.option("--limit", "-n", type=click.IntRange(min=0), help="At most N rows.")
@FORMAT
@engine_options
@quiet_option
def query(limit: int | None, fmt: str, **kwargs: Any) -> None:
    """One row per matching record, ordered by timestamp then requestId.

    \b
    Examples:
      logtap query ./logs --where project=support --since 7d
      logtap query s3://my-logs/AWSLogs --model anthropic.claude-3-haiku-20240307-v1:0 --format jsonl
    """
    with open_engine_from_cli(kwargs) as logs:
        if fmt == "jsonl":
            # one write per batch of lines: stdout may be unbuffered (PYTHONUNBUFFERED: a syscall per write)
            write = sys.stdout.write
            if hasattr(logs, "json_line_batches"):  # the DuckDB engine's LogSet
                batches = logs.json_line_batches(QUERY_COLUMNS, limit=limit)
            else:
                lines = logs.json_lines(QUERY_COLUMNS, limit=limit)
                batches = iter(lambda: list(islice(lines, 8192)), [])
            for batch in batches:
                write("\n".join(batch) + "\n")
        else:
            render(QUERY_COLUMNS, (tuple(r.values()) for r in logs.rows(QUERY_COLUMNS, limit=limit)), fmt)
        report_problems(logs.report)


def _check_by(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """An unknown --by key is a usage error (exit 2)."""
    from logtap.engine import is_grouping

    for key in value:
        if not is_grouping(key):
            raise click.BadParameter(f"{key!r} is not a grouping: use model, operation, day, hour, region or tag:KEY")
    return value


@click.command()
@source_args
@filter_options
@aws_options
@click.option("--by", "by", multiple=True, metavar="KEY", callback=_check_by,
              help="Group by model, operation, day, hour, region or tag:KEY; repeatable.")
@FORMAT
@engine_options
@quiet_option
def stats(by: tuple[str, ...], fmt: str, **kwargs: Any) -> None:
    """Record counts and input/output token sums per group.

    \b
    Example:
      logtap stats ./logs --by model --by tag:project --since 2025-06-01
    """
    with open_engine_from_cli(kwargs) as logs:
        rows = logs.stats(by)
        columns = [*by, "records", "inputTokens", "outputTokens"]
        render(columns, [[r[c] for c in columns] for r in rows], fmt)
        report_problems(logs.report)


@click.command()
@source_args
@click.argument("query_text", metavar="SQL")
@filter_options
@aws_options
@FORMAT
@quiet_option
def sql(query_text: str, fmt: str, **kwargs: Any) -> None:
    """Run DuckDB SQL over the view `logs` (the filtered records). SQL is the last argument.

    \b
    Example:
      logtap sql ./logs "SELECT modelId, count(*) FROM logs GROUP BY ALL" --where project=support
    """
    sources = kwargs["sources"]
    if not sources:
        raise click.UsageError("give at least one SOURCE before the SQL")
    with open_from_cli(kwargs) as logs:
        columns, rows = logs.sql(query_text)
        render(columns, rows, fmt)
        report_problems(logs.report, counts=False)


@click.command(name="filter")
@filter_options
def filter_cmd(filter_: str | None, where: tuple[str, ...], since: str | None, until: str | None,
               model: tuple[str, ...], operation: tuple[str, ...]) -> None:
    """Print the Bedrock requestMetadataFilters JSON for these filters (for CreateModelCustomizationJob).

    Exits 1 with the reason when the service cannot express them.

    \b
    Example:
      logtap filter --where project=support --where env!=dev
    """
    from logtap.errors import FilterError
    from logtap.filters import to_bedrock

    for name, value in (("--since", since), ("--until", until), ("--model", model), ("--operation", operation)):
        if value:
            raise FilterError(f"Bedrock's requestMetadataFilters cannot select by {name[2:]}; it filters on "
                              f"requestMetadata tags only. Drop {name} (use it with query/export instead)", name)
    combined = build_filter(filter_, where)
    if combined is None:
        raise FilterError("no filter given: pass --filter JSON or --where KEY=VALUE", "$")
    click.echo(json.dumps(to_bedrock(combined), indent=2))
