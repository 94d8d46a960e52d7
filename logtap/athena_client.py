"""Run logtap's compiled Trino SQL on Athena through boto3: start, poll, page, cancel, UNLOAD.

``open_athena_logs(...)`` mirrors ``logtap.open_logs``: an object with ``.records()``,
``.count()``, ``.stats(by)`` and ``.sql()``, plus ``.unload(s3_uri)`` for export. Every query runs
with ``ExecutionParameters`` (nothing the user typed is in the SQL text), in the caller's
workgroup and output location, and its cost (bytes scanned) is kept in ``.runs``. Ctrl-C while a
query runs stops it with ``StopQueryExecution`` before the interrupt propagates.

Credentials are boto3's business: pass a ``session`` or an ``athena`` client.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from logtap.athena_sql import (
    Compiled,
    Selection,
    qualified,
    select_count,
    select_records,
    select_stats,
    stats_column_names,
    unload_records,
)
from logtap.engine import ScanReport
from logtap.errors import DataError, LogtapError, SourceError
from logtap.sources import split_s3

log = logging.getLogger("logtap.athena")

#: Athena's list price for SQL queries (USD per TB scanned, 10 MB minimum per query), for the
#: cost estimate shown to users. Source: https://aws.amazon.com/athena/pricing/ (us-east-1).
USD_PER_TB_SCANNED = 5.0
MIN_BILLED_BYTES = 10 * 1024 * 1024

_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
_INT_TYPES = {"tinyint", "smallint", "integer", "bigint"}
_FLOAT_TYPES = {"double", "float", "real", "decimal"}


@dataclass
class QueryRun:
    """One finished Athena query: its ID, state and what it cost."""

    query_execution_id: str
    state: str
    workgroup: str | None = None
    output_location: str | None = None
    data_scanned_bytes: int = 0
    engine_ms: int = 0
    reason: str | None = None

    @property
    def estimated_cost_usd(self) -> float:
        """Bytes scanned at the list price (10 MB minimum), an estimate only."""
        billed = max(self.data_scanned_bytes, MIN_BILLED_BYTES) if self.state == "SUCCEEDED" else 0
        return billed / 1024**4 * USD_PER_TB_SCANNED

    def summary(self) -> str:
        mb = self.data_scanned_bytes / 1024**2
        return (
            f"Athena query {self.query_execution_id} {self.state} in workgroup {self.workgroup or 'primary'}: "
            f"{mb:,.1f} MB scanned (~${self.estimated_cost_usd:.4f}), {self.engine_ms} ms; "
            f"results in {self.output_location or '(workgroup default)'}"
        )


class AthenaRunner:
    """Starts one statement, waits for it and pages through its results."""

    def __init__(
        self,
        client: Any,
        *,
        database: str | None = None,
        catalog: str | None = None,
        workgroup: str | None = None,
        output_location: str | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.database = database
        self.catalog = catalog
        self.workgroup = workgroup
        self.output_location = output_location
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._sleep = sleep
        self._progress = on_progress

    def start_params(self, statement: Compiled) -> dict[str, Any]:
        """The ``StartQueryExecution`` request for ``statement``."""
        params: dict[str, Any] = {"QueryString": statement.sql}
        context: dict[str, str] = {}
        if self.database:
            context["Database"] = self.database
        if self.catalog:
            context["Catalog"] = self.catalog
        if context:
            params["QueryExecutionContext"] = context
        if self.workgroup:
            params["WorkGroup"] = self.workgroup
        if self.output_location:
            params["ResultConfiguration"] = {"OutputLocation": self.output_location}
        if statement.params:
            params["ExecutionParameters"] = statement.execution_parameters()
        return params

    def run(self, statement: Compiled) -> QueryRun:
        """Run ``statement`` to completion. Raises ``DataError`` if it fails or is cancelled;
        on ``KeyboardInterrupt`` stops the query and re-raises."""
        started = self.client.start_query_execution(**self.start_params(statement))
        qid = started["QueryExecutionId"]
        log.debug("started Athena query %s", qid)
        if self._progress:
            self._progress(f"Athena query {qid} started")
        delay = self.poll_interval
        try:
            while True:
                run = self._describe(qid)
                if run.state in _TERMINAL:
                    break
                self._sleep(delay)
                delay = min(delay * 2, self.max_poll_interval)
        except KeyboardInterrupt:
            self.client.stop_query_execution(QueryExecutionId=qid)
            if self._progress:
                self._progress(f"Athena query {qid} cancelled")
            raise
        if self._progress:
            self._progress(run.summary())
        if run.state != "SUCCEEDED":
            raise DataError(f"Athena query {qid} {run.state}: {run.reason or 'no reason given'}")
        return run

    def _describe(self, qid: str) -> QueryRun:
        execution = self.client.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        status = execution.get("Status", {})
        stats = execution.get("Statistics", {})
        return QueryRun(
            query_execution_id=qid,
            state=status.get("State", "QUEUED"),
            workgroup=execution.get("WorkGroup"),
            output_location=execution.get("ResultConfiguration", {}).get("OutputLocation"),
            data_scanned_bytes=int(stats.get("DataScannedInBytes", 0)),
            engine_ms=int(stats.get("EngineExecutionTimeInMillis", 0)),
            reason=status.get("StateChangeReason"),
        )

    def rows(self, run: QueryRun, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """The result rows as dicts, typed from the result metadata, across every page."""
        token: str | None = None
        columns: list[tuple[str, str]] | None = None
        first = True
        while True:
            kwargs: dict[str, Any] = {"QueryExecutionId": run.query_execution_id, "MaxResults": page_size}
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_query_results(**kwargs)
            result = page["ResultSet"]
            if columns is None:
                columns = [
                    (c["Name"], c.get("Type", "varchar")) for c in result["ResultSetMetadata"]["ColumnInfo"]
                ]
            data = result.get("Rows", [])
            if first and data:
                data = data[1:]  # the first row of the first page repeats the column names
            first = False
            for row in data:
                cells = row.get("Data", [])
                yield {
                    name: _convert(cells[i].get("VarCharValue") if i < len(cells) else None, typ)
                    for i, (name, typ) in enumerate(columns)
                }
            token = page.get("NextToken")
            if not token:
                return


def _convert(value: str | None, typ: str) -> Any:
    if value is None:
        return None
    typ = typ.lower()
    if typ in _INT_TYPES:
        return int(value)
    if typ in _FLOAT_TYPES:
        return float(value)
    if typ == "boolean":
        return value == "true"
    if typ == "json":
        return json.loads(value)
    return value


#: Lower-case column names (as the SerDe and UNLOAD write them) -> Bedrock's field names.
_FIELD_NAMES = {
    name.lower(): name
    for name in (
        "schemaType", "schemaVersion", "timestamp", "accountId", "region", "inferenceRegion", "requestId",
        "operation", "modelId", "errorCode", "identity", "arn", "requestMetadata", "input", "output",
        "inputContentType", "inputBodyJson", "inputBodyS3Path", "inputTokenCount", "cacheReadInputTokenCount",
        "cacheWriteInputTokenCount", "outputContentType", "outputBodyJson", "outputBodyS3Path",
        "outputTokenCount",
    )
}
_BODY_FIELDS = {"inputBodyJson", "outputBodyJson"}


def record_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """An UNLOADed row turned back into a Bedrock log record: field names restored, NULLs dropped,
    JSON-text bodies parsed (a body that is not valid JSON stays text)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None:
            continue
        name = _FIELD_NAMES.get(key, key)
        if name in ("identity", "input", "output") and isinstance(value, dict):
            out[name] = {
                _FIELD_NAMES.get(k, k): v for k, v in value.items() if v is not None
            }
            for body in _BODY_FIELDS & out[name].keys():
                text = out[name][body]
                if isinstance(text, str):
                    try:
                        out[name][body] = json.loads(text)
                    except ValueError:
                        pass
        else:
            out[name] = value
    return out


def read_unloaded(destination: str, *, s3_client: Any) -> Iterator[dict[str, Any]]:
    """Bedrock log records from the gzipped JSON-lines files an ``unload`` wrote under
    ``destination``, file by file in key order. A line that is not JSON raises ``DataError``
    naming the object and line."""
    bucket, prefix = split_s3(destination)
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    for key in sorted(keys):
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        for lineno, line in enumerate(body.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"s3://{bucket}/{key} line {lineno}: not JSON ({exc})") from exc
            yield record_from_row(row)


@dataclass
class AthenaReport(ScanReport):
    """What the Athena queries so far read and cost: the engine's ``ScanReport`` counters (Athena
    does not report unreadable lines: the table's SerDe ignores malformed JSON, so ``malformed``
    stays 0 and ``scanned`` is the number of rows returned), plus the queries and their cost."""

    queries: list[str] = field(default_factory=list)
    data_scanned_bytes: int = 0
    estimated_cost_usd: float = 0.0

    def add(self, run: QueryRun) -> None:
        self.queries.append(run.query_execution_id)
        self.data_scanned_bytes += run.data_scanned_bytes
        self.bytes = self.data_scanned_bytes
        self.estimated_cost_usd = round(self.estimated_cost_usd + run.estimated_cost_usd, 6)

    def to_json(self) -> dict[str, Any]:
        return {"engine": "athena", "queries": list(self.queries), "dataScannedBytes": self.data_scanned_bytes,
                "estimatedCostUsd": self.estimated_cost_usd, "matched": self.matched}


class AthenaLogSet:
    """The Athena twin of the engine's ``LogSet``: the same filters and methods, run on a table
    made by ``logtap athena ddl``. Each method runs one Athena query."""

    def __init__(self, runner: AthenaRunner, table: str, selection: Selection, *,
                 unload_location: str | None = None, s3_client: Any = None) -> None:
        self.runner = runner
        self.table = table
        self.selection = selection
        self.filter = selection.filter
        self.unload_location = unload_location
        self.s3_client = s3_client
        self.runs: list[QueryRun] = []
        self.report = AthenaReport()

    def __enter__(self) -> AthenaLogSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (kept for parity with ``LogSet``)."""

    def statement(self, *, limit: int | None = None, columns: Sequence[str] | None = None) -> Compiled:
        """The rows query (SQL text and its positional parameters), without running it."""
        return select_records(self.table, self.selection, limit=limit, columns=columns)

    def _run(self, statement: Compiled) -> QueryRun:
        run = self.runner.run(statement)
        self.runs.append(run)
        self.report.add(run)
        return run

    def rows(self, columns: Sequence[str] = ("requestId", "timestamp", "operation", "modelId", "requestMetadata",
                                             "inputTokenCount", "outputTokenCount"),
             limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Envelope rows, ordered by ``timestamp`` then ``requestId``; ``requestMetadata`` is a dict
        (or None). Columns: ``athena_sql.RECORD_COLUMNS``."""
        run = self._run(self.statement(limit=limit, columns=columns))
        for row in self.runner.rows(run):
            if "requestMetadata" in row:
                meta = row["requestMetadata"]
                row["requestMetadata"] = json.loads(meta) if isinstance(meta, str) else meta
            self.report.matched += 1
            self.report.scanned += 1
            yield row

    def json_lines(self, columns: Sequence[str] = ("requestId", "timestamp", "operation", "modelId",
                                                   "requestMetadata", "inputTokenCount", "outputTokenCount"),
                   limit: int | None = None) -> Iterator[str]:
        """Like ``rows`` but each row as a compact JSON object string (the engine's ``json_lines``)."""
        for row in self.rows(columns, limit):
            yield orjson.dumps(row, default=str).decode()

    def records(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Full Bedrock log records (bodies included), ordered by ``timestamp`` then ``requestId``:
        ``UNLOAD`` to a fresh folder under ``unload_location``, then read back. Offloaded bodies
        (``inputBodyS3Path``) are not fetched here."""
        if not self.unload_location:
            raise LogtapError("full records from Athena are written by UNLOAD: give an empty S3 prefix as "
                              "unload_location (--athena-unload s3://bucket/prefix/)")
        if self.s3_client is None:
            raise LogtapError("reading UNLOAD output needs an S3 client (s3_client=...)")
        import uuid

        dest = self.unload_location.rstrip("/") + f"/logtap-{uuid.uuid4().hex}/"
        self.unload(dest)
        rows = sorted(read_unloaded(dest, s3_client=self.s3_client),
                      key=lambda r: (str(r.get("timestamp") or ""), str(r.get("requestId") or "")))
        for n, rec in enumerate(rows):
            if limit is not None and n >= limit:
                return
            self.report.matched += 1
            self.report.scanned += 1
            yield rec

    def count(self) -> int:
        run = self._run(select_count(self.table, self.selection))
        for row in self.runner.rows(run):
            self.report.matched = int(row["count"])
            return int(row["count"])
        return 0

    def stats(self, by: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Record counts and token sums per group (``model``, ``operation``, ``day``, ``hour``,
        ``region``, ``tag:KEY``), largest group first, as the engine orders them; a record without
        the tag falls in the ``None`` group."""
        run = self._run(select_stats(self.table, self.selection, by))
        names = stats_column_names(by)
        out = [{names.get(k, k): v for k, v in row.items()} for row in self.runner.rows(run)]
        out.sort(key=lambda d: (-int(d["records"]), *(str(d[name]) for name in by)))
        self.report.matched = sum(int(d["records"]) for d in out)
        return out

    def unload(self, destination: str) -> QueryRun:
        """Write every matching full record under ``destination`` (an empty S3 prefix) as gzipped
        JSON lines; read them back with ``read_unloaded``."""
        return self._run(unload_records(self.table, self.selection, destination))


def open_athena_logs(
    table: str = "bedrock_invocation_logs",
    database: str = "default",
    *,
    workgroup: str | None = None,
    output_location: str | None = None,
    unload_location: str | None = None,
    catalog: str | None = None,
    session: Any = None,
    client: Any = None,
    s3_client: Any = None,
    filter: Any = None,
    where: Sequence[str] = (),
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    models: Sequence[str] = (),
    operations: Sequence[str] = (),
    partitioned: bool = True,
    poll_interval: float = 1.0,
    on_progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AthenaLogSet:
    """Bedrock invocation logs in an Athena table made by ``logtap athena ddl``, with the same
    selection arguments as ``logtap.open_logs``.

    ``filter`` is a ``logtap.Filter`` or a Bedrock ``requestMetadataFilters`` document; ``where``
    items (``KEY=VALUE`` / ``KEY!=VALUE``) are AND-ed with it; ``since`` inclusive, ``until``
    exclusive (ISO 8601 or ``30m``/``12h``/``7d``). ``client`` (an ``athena`` client) wins over
    ``session``; without either, boto3's default session is used. ``unload_location`` (an S3
    prefix) is needed only by ``records()``.
    """
    from logtap.filters import Filter, combine, parse_where
    from logtap.timerange import TimeRange

    if filter is not None and not isinstance(filter, Filter):
        filter = Filter.from_json(dict(filter))
    combined = combine(filter, parse_where(where))
    rng = TimeRange.parse(since, until)
    if client is None or (unload_location and s3_client is None):
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - boto3 is a core dependency
            raise SourceError("the Athena engine needs boto3: pip install boto3") from exc
        session = session or boto3.Session()
        client = client or session.client("athena")
        if unload_location and s3_client is None:
            s3_client = session.client("s3")
    runner = AthenaRunner(
        client,
        database=database,
        catalog=catalog,
        workgroup=workgroup,
        output_location=output_location,
        poll_interval=poll_interval,
        sleep=sleep,
        on_progress=on_progress,
    )
    selection = Selection(
        filter=combined,
        since=rng.since,
        until=rng.until,
        models=tuple(models),
        operations=tuple(operations),
        partitioned=partitioned,
    )
    return AthenaLogSet(runner, qualified(table, database), selection, unload_location=unload_location,
                        s3_client=s3_client)
