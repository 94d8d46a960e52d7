"""``logtap athena ddl`` and the ``--engine athena`` options shared with query/stats/export.

Wiring for a command that reads logs (``query``, ``stats``, ``export``)::

    @engine_options                      # --engine, --database, --table, --workgroup, ...
    def query(..., **kwargs):
        with open_engine_from_cli(kwargs) as logs:   # LogSet or AthenaLogSet, same methods
            ...

With ``--engine athena`` the SOURCE is the table, ``[DATABASE.]TABLE`` (made by ``logtap athena
ddl``); the filter options are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from logtap.cli.options import apply_options

F = TypeVar("F", bound=Callable[..., Any])

#: Keyword names ``engine_options`` adds; ``open_engine_from_cli`` pops exactly these.
ATHENA_KWARGS = ("engine", "workgroup", "athena_output", "athena_unload", "athena_catalog")


@click.group()
def athena() -> None:
    """Query Bedrock invocation logs with Amazon Athena (logs too large for one machine)."""


@athena.command()
@click.option("--location", required=True, metavar="s3://BUCKET/PREFIX",
              help="The logs: .../BedrockModelInvocationLogs/<region>/, or the prefix above AWSLogs/ "
                   "(then --account and --log-region).")
@click.option("--database", metavar="NAME", help="Glue database for the table (default: the query's database).")
@click.option("--table", default="bedrock_invocation_logs", show_default=True, metavar="NAME")
@click.option("--account", "accounts", multiple=True, metavar="ID",
              help="Account to project when --location spans accounts; repeatable.")
@click.option("--log-region", "regions", multiple=True, metavar="REGION",
              help="Region to project when --location spans Regions; repeatable.")
@click.option("--start", default="2023/01/01/00", show_default=True, metavar="YYYY/MM/DD/HH",
              help="First hour folder the partition projection covers.")
@click.option("--view/--no-view", default=True, show_default=True,
              help="Also print a <table>_records view that drops Bedrock's data/ objects.")
def ddl(location: str, database: str | None, table: str, accounts: tuple[str, ...], regions: tuple[str, ...],
        start: str, view: bool) -> None:
    """Print CREATE EXTERNAL TABLE for Bedrock's raw logs, with partition projection.

    The table reads the gzipped JSON lines where Bedrock writes them, projects the YYYY/MM/DD/HH
    folders (and accounts and Regions) so no crawler or MSCK REPAIR is needed, and keeps request
    and response bodies as JSON text. Run the output in the Athena console or with
    `aws athena start-query-execution`.

    \b
    Examples:
      logtap athena ddl --location s3://my-logs/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/
      logtap athena ddl --location s3://my-logs/ --account 111122223333 --account 444455556666 \\
          --log-region us-east-1 --log-region us-west-2 --database bedrock
    """
    from logtap.athena_sql import create_table_ddl, create_view_ddl, table_layout

    layout = table_layout(location, accounts=accounts, regions=regions)
    click.echo(create_table_ddl(layout, table=table, database=database, start=start))
    if view:
        click.echo()
        click.echo(create_view_ddl(table=table, database=database))


def engine_options(f: F) -> F:
    """--engine duckdb|athena and the Athena settings (used only with --engine athena)."""
    options = [
        click.option("--engine", type=click.Choice(["duckdb", "athena"]), default="duckdb", show_default=True,
                     help="duckdb reads the log files here; athena runs the same filters as Trino SQL on a "
                          "table made by `logtap athena ddl` (SOURCE is then [DATABASE.]TABLE)."),
        click.option("--workgroup", metavar="NAME", help="Athena workgroup (default: the account's primary)."),
        click.option("--athena-output", metavar="s3://BUCKET/PREFIX/",
                     help="Athena query result location (if the workgroup does not set one)."),
        click.option("--athena-unload", metavar="s3://BUCKET/PREFIX/",
                     help="Empty S3 prefix where export's UNLOAD writes the full records."),
        click.option("--athena-catalog", metavar="NAME", help="Data catalog (default: AwsDataCatalog)."),
    ]
    return apply_options(f, options)


def open_engine_from_cli(kwargs: dict[str, Any]) -> Any:
    """The LogSet for ``--engine duckdb`` (``options.open_from_cli``), or an ``AthenaLogSet``."""
    settings = {k: kwargs.pop(k, None) for k in ATHENA_KWARGS}
    if settings["engine"] != "athena":
        from logtap.cli.options import open_from_cli

        return open_from_cli(kwargs)
    return open_athena_from_cli(kwargs, **settings)


def open_athena_from_cli(kwargs: dict[str, Any], *, engine: str | None = "athena", workgroup: str | None = None,
                         athena_output: str | None = None, athena_unload: str | None = None,
                         athena_catalog: str | None = None) -> Any:
    """Pop the shared source/filter/AWS options out of ``kwargs`` and open the Athena table."""
    import boto3

    from logtap.athena_client import open_athena_logs
    from logtap.cli.options import ENGINE_KWARGS, build_filter

    opts = {k: kwargs.pop(k, None) for k in ENGINE_KWARGS}
    sources = list(opts["sources"] or ())
    if len(sources) != 1:
        raise click.UsageError("with --engine athena give one SOURCE: the table, as [DATABASE.]TABLE")
    database, _, table = sources[0].rpartition(".")
    session = boto3.Session(profile_name=opts["profile"], region_name=opts["region"])
    quiet = bool(opts["quiet"])
    return open_athena_logs(
        table, database or "default", session=session, workgroup=workgroup, output_location=athena_output,
        unload_location=athena_unload, catalog=athena_catalog,
        filter=build_filter(opts["filter_"], opts["where"] or ()), since=opts["since"], until=opts["until"],
        models=opts["model"] or (), operations=opts["operation"] or (),
        on_progress=None if quiet else (lambda msg: click.echo(f"logtap: {msg}", err=True)),
    )
