"""Bedrock invocation logs on Athena: the table DDL and the filter tree compiled to Trino SQL.

Pure string building, no AWS calls (those live in ``logtap.athena_client``). Every user value —
tag keys and values, model IDs, operations, time bounds — becomes a positional ``?`` parameter in
a ``WHERE`` clause (the only place Athena accepts them) and travels in ``ExecutionParameters``;
the SQL text holds only identifiers and constants chosen here.

Semantics mirror the DuckDB engine exactly:

* ``equals {k: v}`` is ``coalesce(element_at(requestmetadata, k) = v, false)``: true only when the
  record has key ``k`` with value exactly ``v``; a missing key or a record without
  ``requestMetadata`` gives false, never NULL;
* ``notEquals {k: v}`` is ``NOT`` of that, so records without ``k`` match it and the two always
  split the records between them;
* ``--since`` is inclusive, ``--until`` exclusive, on the record ``timestamp``; the projected
  ``datehour`` partition is pruned to the range padded by one hour on each side, because Bedrock can
  deliver a record into the next hour's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from logtap.errors import FilterError, LogtapError
from logtap.models import PROFILE_PREFIXES, normalize_model_id

#: Partition column holding the ``YYYY/MM/DD/HH`` folder of each log file.
DATEHOUR = "datehour"
#: Projected partition columns used when the table spans accounts and Regions.
ACCOUNT_PARTITION = "log_account"
REGION_PARTITION = "log_region"
#: Format of ``datehour`` values (Java ``DateTimeFormatter`` pattern, as Athena projection uses it).
DATEHOUR_FORMAT = "yyyy/MM/dd/HH"
_DATEHOUR_STRFTIME = "%Y/%m/%d/%H"

#: Columns of the raw-log table, in DDL (Hive) types. Names are Bedrock's field names lower-cased,
#: which is how the OpenX JSON SerDe maps them. Bodies stay JSON text.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("schematype", "string"),
    ("schemaversion", "string"),
    ("timestamp", "string"),
    ("accountid", "string"),
    ("region", "string"),
    ("inferenceregion", "string"),
    ("requestid", "string"),
    ("operation", "string"),
    ("modelid", "string"),
    ("errorcode", "string"),
    ("identity", "struct<arn:string>"),
    ("requestmetadata", "map<string,string>"),
    (
        "input",
        "struct<inputcontenttype:string,inputbodyjson:string,inputbodys3path:string,"
        "inputtokencount:bigint,cachereadinputtokencount:bigint,cachewriteinputtokencount:bigint>",
    ),
    (
        "output",
        "struct<outputcontenttype:string,outputbodyjson:string,outputbodys3path:string,outputtokencount:bigint>",
    ),
)

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,254}$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*=+@:,/-]*)?$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")
_PROJECTION_START = re.compile(r"^[0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}$")

# Model-ID normalization in portable SQL (Trino regexp_replace/regexp_like, no back-references),
# the same three steps as ``logtap.models.normalize_model_id``.
_ARN_RE = r"^arn:aws[a-z-]*:bedrock:[^:]*:[0-9]*:(foundation-model|inference-profile)/"
_PROFILE_RE = r"^(" + "|".join(re.escape(p) for p in PROFILE_PREFIXES) + r")\.[a-z0-9-]+\."
_SUFFIX_RE = r":[0-9]+k$"

#: ``stats --by`` dimensions that are plain expressions (tag:KEY is handled separately).
GROUP_EXPRESSIONS: dict[str, str] = {
    "operation": "operation",
    "region": "region",
    "day": "substr(\"timestamp\", 1, 10)",
    "hour": "substr(\"timestamp\", 1, 13) || ':00Z'",
}


def _sql_string(value: str) -> str:
    """A Trino string literal for a constant chosen by logtap (never for user input)."""
    return "'" + value.replace("'", "''") + "'"


def normalized_model_sql(column: str = "modelid") -> str:
    """Trino SQL computing ``normalize_model_id(column)``; ``column`` is a trusted identifier."""
    no_arn = f"regexp_replace({column}, {_sql_string(_ARN_RE)}, '')"
    no_profile = (
        f"(CASE WHEN regexp_like({no_arn}, {_sql_string(_PROFILE_RE)}) "
        f"THEN substr({no_arn}, strpos({no_arn}, '.') + 1) ELSE {no_arn} END)"
    )
    return f"regexp_replace({no_profile}, {_sql_string(_SUFFIX_RE)}, '')"


def execution_parameter(value: str) -> str:
    """``value`` as one Athena execution parameter.

    Athena reads each ``ExecutionParameters`` item as a SQL literal, so strings travel single-quoted
    with embedded quotes doubled: the value stays one string literal whatever it contains.
    """
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Compiled:
    """A SQL fragment or statement and its positional parameters (plain Python strings)."""

    sql: str
    params: tuple[str, ...] = ()

    def execution_parameters(self) -> list[str]:
        """The parameters as Athena ``ExecutionParameters`` (quoted SQL literals)."""
        return [execution_parameter(p) for p in self.params]


def _filter_document(filter_: Any) -> Mapping[str, Any] | None:
    if filter_ is None:
        return None
    if isinstance(filter_, Mapping):
        return filter_
    to_json = getattr(filter_, "to_json", None)
    if callable(to_json):
        doc = to_json()
        if isinstance(doc, str):
            import json

            doc = json.loads(doc)
        if isinstance(doc, Mapping):
            return doc
    raise FilterError(f"expected a filter document or logtap.Filter, got {type(filter_).__name__}")


def _single_pair(node: Any, path: str) -> tuple[str, str]:
    if not isinstance(node, Mapping) or len(node) != 1:
        raise FilterError("equals/notEquals takes exactly one {key: value} entry", path)
    ((key, value),) = node.items()
    if not isinstance(key, str) or not isinstance(value, str):
        raise FilterError("filter keys and values must be strings", path)
    return key, value


def compile_filter(filter_: Any, *, column: str = "requestmetadata") -> Compiled:
    """The filter tree (a Bedrock ``requestMetadataFilters`` document or a ``logtap.Filter``) as a
    Trino boolean expression that is never NULL, with its parameters in order.

    ``andAll``/``orAll`` may nest deeper than Bedrock allows (local trees); the compiler does not
    care. ``None`` compiles to ``TRUE``.
    """
    doc = _filter_document(filter_)
    if doc is None:
        return Compiled("TRUE")
    return _compile_node(doc, "$", column)


def _compile_node(node: Any, path: str, column: str) -> Compiled:
    if not isinstance(node, Mapping) or len(node) != 1:
        raise FilterError("a filter object holds exactly one of equals, notEquals, andAll, orAll", path)
    ((op, arg),) = node.items()
    if op in ("equals", "notEquals"):
        key, value = _single_pair(arg, f"{path}.{op}")
        sql = f"coalesce(element_at({column}, ?) = ?, false)"
        if op == "notEquals":
            sql = f"(NOT {sql})"
        return Compiled(sql, (key, value))
    if op in ("andAll", "orAll"):
        if not isinstance(arg, Sequence) or isinstance(arg, str):
            raise FilterError(f"{op} takes a list of filters", f"{path}.{op}")
        if not arg:  # only local trees can be empty: the neutral element, as in logtap.filters
            return Compiled("TRUE" if op == "andAll" else "FALSE")
        parts = [_compile_node(item, f"{path}.{op}[{i}]", column) for i, item in enumerate(arg)]
        joiner = " AND " if op == "andAll" else " OR "
        params: tuple[str, ...] = ()
        for part in parts:
            params += part.params
        return Compiled("(" + joiner.join(p.sql for p in parts) + ")", params)
    raise FilterError(f"unknown filter operator {op!r}; use equals, notEquals, andAll or orAll", path)


# --------------------------------------------------------------------------- time pruning

def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso_utc(value: datetime) -> str:
    """``value`` as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC), the form the time parameters take."""
    text = _utc(value).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{_utc(value).microsecond:06d}"
    return text + "Z"


def datehour_range(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    """The first and last ``datehour`` folder to read: the range padded by one hour each side."""
    low = high = None
    if since is not None:
        start = _utc(since).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        low = start.strftime(_DATEHOUR_STRFTIME)
    if until is not None:
        # until is exclusive: the last instant inside the range is until - 1 microsecond.
        end = (_utc(until) - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
        high = (end + timedelta(hours=1)).strftime(_DATEHOUR_STRFTIME)
    return low, high


# --------------------------------------------------------------------------- WHERE clause

@dataclass(frozen=True)
class Selection:
    """Everything that narrows the records: the filter tree plus the CLI's other filters."""

    filter: Any = None
    since: datetime | None = None
    until: datetime | None = None
    models: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    #: Prune on the projected ``datehour`` partition (off for tables without it).
    partitioned: bool = True
    extra: tuple[Compiled, ...] = field(default_factory=tuple)


def compile_where(selection: Selection) -> Compiled:
    """The full ``WHERE`` condition: only log records (no ``data/`` bodies, no marker objects),
    time pruning and exact time bounds, models, operations and the filter tree."""
    parts: list[Compiled] = [
        Compiled("\"$path\" NOT LIKE '%/data/%'"),
    ]
    low, high = datehour_range(selection.since, selection.until)
    if selection.partitioned and low is not None:
        parts.append(Compiled(f"{DATEHOUR} >= ?", (low,)))
    if selection.partitioned and high is not None:
        parts.append(Compiled(f"{DATEHOUR} <= ?", (high,)))
    if selection.since is not None:
        parts.append(
            Compiled("try(from_iso8601_timestamp(\"timestamp\")) >= from_iso8601_timestamp(?)", (iso_utc(selection.since),))
        )
    if selection.until is not None:
        parts.append(
            Compiled("try(from_iso8601_timestamp(\"timestamp\")) < from_iso8601_timestamp(?)", (iso_utc(selection.until),))
        )
    if selection.models:
        marks = ", ".join("?" for _ in selection.models)
        parts.append(
            Compiled(
                f"coalesce({normalized_model_sql()} IN ({marks}), false)",
                tuple(normalize_model_id(m) for m in selection.models),
            )
        )
    if selection.operations:
        marks = ", ".join("?" for _ in selection.operations)
        parts.append(Compiled(f"coalesce(operation IN ({marks}), false)", tuple(selection.operations)))
    tree = compile_filter(selection.filter)
    if tree.sql != "TRUE":
        parts.append(tree)
    parts.extend(selection.extra)
    params: tuple[str, ...] = ()
    for part in parts:
        params += part.params
    return Compiled(" AND ".join(p.sql for p in parts), params)


# --------------------------------------------------------------------------- statements

def qualified(table: str, database: str | None = None) -> str:
    """``"database"."table"`` after checking both are plain identifiers."""
    names = [database, table] if database else [table]
    for name in names:
        assert name is not None
        if not _IDENT.match(name):
            raise LogtapError(
                f"{name!r} is not a valid Athena table or database name: use lower-case letters, digits and _"
            )
    return ".".join(f'"{n}"' for n in names)


#: Columns every ``records`` row has (the engine's row contract), in order.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("requestId", "requestid"),
    ("timestamp", "\"timestamp\""),
    ("accountId", "accountid"),
    ("region", "region"),
    ("operation", "operation"),
    ("modelId", "modelid"),
    ("requestMetadata", "json_format(CAST(requestmetadata AS JSON))"),
    ("inputTokenCount", "\"input\".inputtokencount"),
    ("outputTokenCount", "\"output\".outputtokencount"),
    ("cacheReadInputTokenCount", "\"input\".cachereadinputtokencount"),
    ("cacheWriteInputTokenCount", "\"input\".cachewriteinputtokencount"),
)


def select_records(
    table: str, selection: Selection, *, limit: int | None = None, columns: Sequence[str] | None = None
) -> Compiled:
    """One row per matching record, ordered by ``timestamp`` then ``requestId``; ``columns`` picks
    from ``RECORD_COLUMNS`` (default: all)."""
    known = dict(RECORD_COLUMNS)
    names = list(columns) if columns is not None else list(known)
    for name in names:
        if name not in known:
            raise LogtapError(f"unknown column {name!r}; choose from {', '.join(known)}")
    cols = ", ".join(f'{known[name]} AS "{name}"' for name in names)
    where = compile_where(selection)
    sql = (
        f"SELECT {cols} FROM {table} WHERE {where.sql} "  # noqa: S608 - checked identifiers, values bound
        "ORDER BY try(from_iso8601_timestamp(\"timestamp\")), requestid"
    )
    if limit is not None:
        if limit < 0:
            raise LogtapError(f"--limit must be 0 or more, got {limit}")
        if limit:
            sql += f" LIMIT {int(limit)}"
    return Compiled(sql, where.params)


def select_count(table: str, selection: Selection) -> Compiled:
    where = compile_where(selection)
    return Compiled(f'SELECT count(*) AS "count" FROM {table} WHERE {where.sql}', where.params)  # noqa: S608 - checked identifiers, values bound


def select_stats(table: str, selection: Selection, by: Sequence[str]) -> Compiled:
    """Record counts and token sums per group. ``by`` items: model, operation, day, hour, region,
    ``tag:KEY``.

    A ``tag:KEY`` group unnests the record's tag keys plus one sentinel, the empty key (Bedrock keys
    are never empty), and keeps per record its ``KEY`` or — when it has none — the sentinel, whose
    value is NULL. The key is a ``WHERE`` parameter, so nothing the user typed
    reaches the SQL text.
    """
    joins: list[str] = []
    groups: list[tuple[str, str]] = []
    extra: list[Compiled] = []
    for i, dim in enumerate(by):
        if dim == "model":
            groups.append((dim, normalized_model_sql()))
        elif dim in GROUP_EXPRESSIONS:
            groups.append((dim, GROUP_EXPRESSIONS[dim]))
        elif dim.startswith("tag:") and len(dim) > 4:
            alias = f"t{i}"
            joins.append(
                "CROSS JOIN UNNEST(concat(coalesce(map_keys(requestmetadata), CAST(ARRAY[] AS array(varchar))), "
                f"ARRAY[''])) AS {alias}(k)"
            )
            groups.append((dim, f"element_at(requestmetadata, {alias}.k)"))
            extra.append(
                Compiled(
                    f"({alias}.k = ? OR ({alias}.k = '' AND NOT coalesce(contains(map_keys(requestmetadata), ?), false)))",
                    (dim[4:], dim[4:]),
                )
            )
        else:
            raise LogtapError(f"cannot group by {dim!r}: use model, operation, day, hour, region or tag:KEY")
    selection = Selection(
        filter=selection.filter,
        since=selection.since,
        until=selection.until,
        models=selection.models,
        operations=selection.operations,
        partitioned=selection.partitioned,
        extra=selection.extra + tuple(extra),
    )
    where = compile_where(selection)
    # Group columns are aliased group_0, group_1, ...: a tag key never becomes SQL text, even
    # quoted. ``stats_column_names`` maps them back.
    select = [f'{expr} AS "group_{i}"' for i, (_, expr) in enumerate(groups)]
    select += [
        'count(*) AS "records"',
        'coalesce(sum("input".inputtokencount), 0) AS "inputTokens"',
        'coalesce(sum("output".outputtokencount), 0) AS "outputTokens"',
    ]
    sql = f"SELECT {', '.join(select)} FROM {table} {' '.join(joins)} WHERE {where.sql}"  # noqa: S608 - checked identifiers, values bound
    if groups:
        positions = ", ".join(str(i + 1) for i in range(len(groups)))
        sql += f" GROUP BY {positions} ORDER BY {positions}"
    return Compiled(" ".join(sql.split()), where.params)


def stats_column_names(by: Sequence[str]) -> dict[str, str]:
    """Result column -> ``--by`` name for a ``select_stats`` query."""
    return {f"group_{i}": dim for i, dim in enumerate(by)}


def unload_records(table: str, selection: Selection, destination: str) -> Compiled:
    """``UNLOAD`` every matching full record to ``destination`` as gzipped JSON lines.

    Bodies come out as JSON text (``inputbodyjson``/``outputbodyjson`` strings);
    ``logtap.athena_client.read_unloaded`` turns the rows back into Bedrock log records.
    ``destination`` must be an empty S3 prefix (Athena refuses to write into a non-empty one).
    Athena writes several files in parallel, so the rows come in no particular order: sort after
    reading (by ``timestamp`` then ``requestId``) where order matters.
    """
    if not _S3_URI.match(destination):
        raise LogtapError(f"UNLOAD destination must be an s3://bucket/prefix/ URI, got {destination!r}")
    if "'" in destination:
        raise LogtapError("UNLOAD destination must not contain a quote")
    cols = ", ".join(f'"{name}"' for name, _ in COLUMNS)
    where = compile_where(selection)
    sql = (
        f"UNLOAD (SELECT {cols} FROM {table} WHERE {where.sql}) "  # noqa: S608 - checked identifiers, values bound
        f"TO {_sql_string(destination.rstrip('/') + '/')} WITH (format = 'JSON', compression = 'GZIP')"
    )
    return Compiled(sql, where.params)


# --------------------------------------------------------------------------- DDL

@dataclass(frozen=True)
class TableLayout:
    """Where the logs are and which partitions the table projects."""

    location: str  # s3:// URI ending in "/"
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def spans_accounts(self) -> bool:
        return bool(self.accounts)


def table_layout(location: str, *, accounts: Sequence[str] = (), regions: Sequence[str] = ()) -> TableLayout:
    """Work out the table layout from a log location at any level of Bedrock's layout.

    * ``.../BedrockModelInvocationLogs/<region>/``: one account and Region, only ``datehour``.
    * the bucket root, a key prefix or ``.../AWSLogs/``: ``AWSLogs/<account>/...`` is templated
      from ``accounts`` and ``regions`` (both required, projected as enums).
    """
    if not _S3_URI.match(location) or "'" in location or "$" in location:
        raise LogtapError(f"--location must be an s3://bucket/prefix URI, got {location!r}")
    loc = location.rstrip("/") + "/"
    for account in accounts:
        if not _ACCOUNT.match(account):
            raise LogtapError(f"--account must be a 12-digit AWS account ID, got {account!r}")
    for region in regions:
        if not _REGION.match(region):
            raise LogtapError(f"--log-region must be an AWS Region name such as us-east-1, got {region!r}")
    if "/BedrockModelInvocationLogs/" in loc:
        tail = loc.split("/BedrockModelInvocationLogs/", 1)[1].strip("/")
        if not tail or "/" in tail:
            raise LogtapError(
                f"{location!r}: point --location at .../BedrockModelInvocationLogs/<region>/ "
                "(not at an hour folder), or at the AWSLogs/ prefix with --account and --log-region"
            )
        if accounts or regions:
            raise LogtapError("--account/--log-region apply only when --location is above AWSLogs/<account>/")
        return TableLayout(loc)
    if "/AWSLogs/" in loc and not loc.endswith("/AWSLogs/"):
        raise LogtapError(
            f"{location!r}: point --location at .../AWSLogs/ (with --account and --log-region) "
            "or at .../BedrockModelInvocationLogs/<region>/"
        )
    if not accounts or not regions:
        raise LogtapError(
            f"{location!r} spans accounts and Regions: give every --account ID and every --log-region "
            "to project (or point --location at .../BedrockModelInvocationLogs/<region>/)"
        )
    if not loc.endswith("/AWSLogs/"):
        loc += "AWSLogs/"
    return TableLayout(loc, tuple(dict.fromkeys(accounts)), tuple(dict.fromkeys(regions)))


def create_table_ddl(
    layout: TableLayout,
    *,
    table: str = "bedrock_invocation_logs",
    database: str | None = None,
    start: str = "2023/01/01/00",
) -> str:
    """``CREATE EXTERNAL TABLE`` over the raw gzipped JSON-lines logs, with partition projection.

    ``start`` is the first ``datehour`` folder (``YYYY/MM/DD/HH``) the projection covers.
    """
    if not _PROJECTION_START.match(start):
        raise LogtapError(f"--start must look like 2024/01/31/00 (YYYY/MM/DD/HH), got {start!r}")
    name = qualified(table, database).replace('"', "`")
    cols = ",\n".join(f"  `{c}` {t}" for c, t in COLUMNS)
    partitions = [f"`{DATEHOUR}` string"]
    props = [
        ("projection.enabled", "true"),
        (f"projection.{DATEHOUR}.type", "date"),
        (f"projection.{DATEHOUR}.format", DATEHOUR_FORMAT),
        (f"projection.{DATEHOUR}.range", f"{start},NOW"),
        (f"projection.{DATEHOUR}.interval", "1"),
        (f"projection.{DATEHOUR}.interval.unit", "HOURS"),
    ]
    if layout.spans_accounts:
        partitions = [f"`{ACCOUNT_PARTITION}` string", f"`{REGION_PARTITION}` string", *partitions]
        props += [
            (f"projection.{ACCOUNT_PARTITION}.type", "enum"),
            (f"projection.{ACCOUNT_PARTITION}.values", ",".join(layout.accounts)),
            (f"projection.{REGION_PARTITION}.type", "enum"),
            (f"projection.{REGION_PARTITION}.values", ",".join(layout.regions)),
        ]
        template = (
            f"{layout.location}${{{ACCOUNT_PARTITION}}}/BedrockModelInvocationLogs/"
            f"${{{REGION_PARTITION}}}/${{{DATEHOUR}}}/"
        )
    else:
        template = f"{layout.location}${{{DATEHOUR}}}/"
    props.append(("storage.location.template", template))
    props_sql = ",\n".join(f"  {_sql_string(k)}={_sql_string(v)}" for k, v in props)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n{cols}\n)\n"
        f"PARTITIONED BY ({', '.join(partitions)})\n"
        "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n"
        "WITH SERDEPROPERTIES ('ignore.malformed.json'='true', 'case.insensitive'='true')\n"
        "STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'\n"
        "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
        f"LOCATION {_sql_string(layout.location)}\n"
        f"TBLPROPERTIES (\n{props_sql}\n);"
    )


def create_view_ddl(*, table: str = "bedrock_invocation_logs", database: str | None = None) -> str:
    """A view of only the log records: Athena reads every object under a partition's folder,
    including Bedrock's offloaded ``data/`` bodies, which this drops."""
    view = qualified(f"{table}_records", database)
    return (
        f"CREATE OR REPLACE VIEW {view} AS\n"
        f"SELECT * FROM {qualified(table, database)}\n"
        "WHERE \"$path\" NOT LIKE '%/data/%';"
    )
