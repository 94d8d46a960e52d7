"""The Trino compiler and DDL: SQL parses as Trino, and transpiled to DuckDB it selects exactly what
the reference semantics select, over the same records."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings

import logtap
from logtap.athena_sql import (
    Selection,
    compile_filter,
    compile_where,
    create_table_ddl,
    create_view_ddl,
    datehour_range,
    execution_parameter,
    select_count,
    select_records,
    select_stats,
    table_layout,
    unload_records,
)
from logtap.errors import FilterError, LogtapError
from logtap.filters import AndAll, Equals, Filter, NotEquals, OrAll
from logtap.models import normalize_model_id
from support import records
from support.filter_strategies import KEYS, VALUES, filters

MODELS = (
    "amazon.nova-lite-v1:0",
    "us.amazon.nova-lite-v1:0",
    "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
    "us-gov.meta.llama3-3-70b-instruct-v1:0",
    "meta.llama3-3-70b-instruct-v1:0:128k",
    "arn:aws:bedrock:us-east-2:111111111111:application-inference-profile/abc123",
)
OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")
T0 = datetime(2025, 3, 1, 22, 0, tzinfo=timezone.utc)


def _records(n: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        meta: dict[str, str] | None = None
        if rnd.random() > 0.15:
            meta = {rnd.choice(KEYS): rnd.choice(VALUES) for _ in range(rnd.randint(1, 5))}
        ts = T0 + timedelta(seconds=rnd.randint(0, 4 * 3600))
        rec = records.converse(request_id=f"req-{i:04d}", timestamp=ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               model_id=rnd.choice(MODELS), tags=meta, in_tokens=rnd.randint(1, 500),
                               out_tokens=rnd.randint(1, 500))
        rec["operation"] = rnd.choice(OPERATIONS)
        out.append(rec)
    return out


RECORDS = _records()
#: Bedrock may deliver a record into the next hour's folder: these ones are written there.
LATE = {r["requestId"] for r in RECORDS[::5]}


def _folder(rec: dict[str, Any]) -> str:
    ts = datetime.strptime(rec["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    return (ts + timedelta(hours=1 if rec["requestId"] in LATE else 0)).strftime("%Y/%m/%d/%H")


@pytest.fixture(scope="module")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The records in Bedrock's folder layout (late ones an hour late), plus an offloaded body under
    ``data/`` that is not a log file."""
    root = tmp_path_factory.mktemp("athena-equivalence")
    by_folder: dict[str, list[dict[str, Any]]] = {}
    for rec in RECORDS:
        by_folder.setdefault(_folder(rec), []).append(rec)
    base = root / "AWSLogs" / records.ACCOUNT / "BedrockModelInvocationLogs" / records.REGION
    for n, (folder, recs) in enumerate(sorted(by_folder.items())):
        (base / folder).mkdir(parents=True)
        (base / folder / f"part-{n:04d}.json.gz").write_bytes(records.gz_lines(recs))
    data = base / "2025/03/01/22/data"
    data.mkdir(parents=True)
    (data / "x_input.json.gz").write_bytes(records.gz_lines([{"messages": [], "requestId": "data-row"}]))
    return root


@pytest.fixture(scope="module")
def db() -> duckdb.DuckDBPyConnection:
    """A DuckDB table shaped like the Athena table of ``create_table_ddl``, with the same records,
    plus a row read from an offloaded ``data/`` body that no query may return."""
    con = duckdb.connect()
    con.execute(
        'CREATE TABLE logs ("$path" VARCHAR, datehour VARCHAR, requestid VARCHAR, "timestamp" VARCHAR, '
        "accountid VARCHAR, region VARCHAR, operation VARCHAR, modelid VARCHAR, "
        "requestmetadata MAP(VARCHAR, VARCHAR), "
        '"input" STRUCT(inputtokencount BIGINT, cachereadinputtokencount BIGINT, cachewriteinputtokencount BIGINT), '
        '"output" STRUCT(outputtokencount BIGINT))'
    )
    rows = []
    for r in RECORDS:
        rows.append((
            f"s3://b/AWSLogs/{records.ACCOUNT}/BedrockModelInvocationLogs/us-east-1/{_folder(r)}/f.json.gz",
            _folder(r), r["requestId"], r["timestamp"], r["accountId"], r["region"], r["operation"],
            r["modelId"], r.get("requestMetadata"), {"inputtokencount": r["input"]["inputTokenCount"], "cachereadinputtokencount": 0,
             "cachewriteinputtokencount": None},
            {"outputtokencount": r["output"]["outputTokenCount"]},
        ))
    rows.append((
        "s3://b/AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2025/03/01/22/data/x_input.json.gz",
        "2025/03/01/22", "data-row", T0.strftime("%Y-%m-%dT%H:%M:%SZ"), None, None, "Converse",
        MODELS[0], {"project": "support"}, None, None,
    ))
    con.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return con


def engine_ids(root: Path, selection: Selection) -> list[str]:
    """What the DuckDB engine (``logtap.open_logs``) selects from the log files."""
    logs = logtap.open_logs(str(root), filter=selection.filter, since=selection.since, until=selection.until,
                            models=selection.models, operations=selection.operations)
    return [row["requestId"] for row in logs.rows(columns=("requestId",))]


def run_trino(con: duckdb.DuckDBPyConnection, sql: str, params: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Check ``sql`` parses as Trino, transpile it to DuckDB, run it with the bound parameters."""
    tree = sqlglot.parse_one(sql, read="trino")
    duck = tree.sql(dialect="duckdb")
    assert sql.count("?") == len(params)
    return con.execute(duck, list(params)).fetchall()


def selected(con: duckdb.DuckDBPyConnection, selection: Selection) -> list[str]:
    stmt = select_records("logs", selection)
    return [row[0] for row in run_trino(con, stmt.sql, stmt.params)]


def _expected(pred: Any) -> list[str]:
    rows = sorted((r for r in RECORDS if pred(r)), key=lambda r: (r["timestamp"], r["requestId"]))
    return [r["requestId"] for r in rows]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=filters(nested=True))
def test_trino_filter_selects_what_the_duckdb_engine_selects(
    db: duckdb.DuckDBPyConnection, log_root: Path, f: Filter
) -> None:
    got = selected(db, Selection(filter=f))
    assert got == engine_ids(log_root, Selection(filter=f))
    assert got == _expected(lambda r: f.evaluate(r.get("requestMetadata")))
    assert "data-row" not in got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=filters())
def test_filter_document_and_tree_compile_identically(db: duckdb.DuckDBPyConnection, f: Filter) -> None:
    assert compile_filter(f) == compile_filter(f.to_json())


def test_equals_and_not_equals_split_every_record(db: duckdb.DuckDBPyConnection) -> None:
    eq = set(selected(db, Selection(filter=Equals("project", "support"))))
    ne = set(selected(db, Selection(filter=NotEquals("project", "support"))))
    assert eq and ne and not (eq & ne)
    assert eq | ne == {r["requestId"] for r in RECORDS}
    # records with no requestMetadata at all are on the notEquals side
    bare = {r["requestId"] for r in RECORDS if r.get("requestMetadata") is None}
    assert bare and bare <= ne


@pytest.mark.parametrize("minutes, hours", [(70, 2.5), (0, 1), (179, 0.02)])
def test_time_model_and_operation_selection(
    db: duckdb.DuckDBPyConnection, log_root: Path, minutes: int, hours: float
) -> None:
    since = T0 + timedelta(minutes=minutes, seconds=5)
    until = since + timedelta(hours=hours)
    sel = Selection(
        filter=OrAll((Equals("team", "search"), NotEquals("env", "prod"))),
        since=since, until=until,
        models=("us.amazon.nova-lite-v1:0",), operations=("Converse", "InvokeModel"),
    )
    lo, hi = since.strftime("%Y-%m-%dT%H:%M:%SZ"), until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sel.filter is not None
    want = _expected(lambda r: lo <= r["timestamp"] < hi
                     and normalize_model_id(r["modelId"]) == "amazon.nova-lite-v1:0"
                     and r["operation"] in ("Converse", "InvokeModel")
                     and sel.filter.evaluate(r.get("requestMetadata")))
    assert selected(db, sel) == want == engine_ids(log_root, sel)
    if hours > 1:
        assert want  # the fixture has matches, so the comparison means something


def test_since_inclusive_until_exclusive(db: duckdb.DuckDBPyConnection) -> None:
    r = RECORDS[10]
    at = datetime.strptime(r["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert r["requestId"] in selected(db, Selection(since=at, until=at + timedelta(seconds=1)))
    assert r["requestId"] not in selected(db, Selection(since=at - timedelta(seconds=1), until=at))


def test_late_delivered_record_is_found_through_the_padded_folders(
    db: duckdb.DuckDBPyConnection, log_root: Path
) -> None:
    late = next(r for r in RECORDS if r["requestId"] in LATE)
    at = datetime.strptime(late["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    sel = Selection(since=at, until=at + timedelta(seconds=1))
    assert late["requestId"] in selected(db, sel)
    assert late["requestId"] in engine_ids(log_root, sel)


def test_datehour_range_pads_one_hour_each_side() -> None:
    since = datetime(2025, 3, 1, 10, 30, tzinfo=timezone.utc)
    until = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)  # exclusive: last hour read is 11 + 1
    assert datehour_range(since, until) == ("2025/03/01/09", "2025/03/01/12")
    assert datehour_range(None, None) == (None, None)


def test_count_and_stats_match_python(db: duckdb.DuckDBPyConnection) -> None:
    sel = Selection(filter=NotEquals("env", "dev"))
    stmt = select_count("logs", sel)
    assert sel.filter is not None
    want = [r for r in RECORDS if sel.filter.evaluate(r.get("requestMetadata"))]
    assert run_trino(db, stmt.sql, stmt.params) == [(len(want),)]

    stmt = select_stats("logs", sel, ["model", "operation"])
    got = {(m, o): (n, i, out) for m, o, n, i, out in run_trino(db, stmt.sql, stmt.params)}
    exp: dict[tuple[str, str], list[int]] = {}
    for r in want:
        acc = exp.setdefault((normalize_model_id(r["modelId"]), r["operation"]), [0, 0, 0])
        acc[0] += 1
        acc[1] += r["input"]["inputTokenCount"]
        acc[2] += r["output"]["outputTokenCount"]
    assert got == {k: tuple(v) for k, v in exp.items()}


def test_stats_by_tag_puts_records_without_the_tag_in_a_null_group(db: duckdb.DuckDBPyConnection) -> None:
    stmt = select_stats("logs", Selection(), ["tag:team", "tag:env"])
    assert stmt.params == ("team", "team", "env", "env")  # the keys are bound, not in the SQL text
    assert "'team'" not in stmt.sql and "'env'" not in stmt.sql
    got = {(t, e): (n, i, o) for t, e, n, i, o in run_trino(db, stmt.sql, stmt.params)}
    exp: dict[tuple[str | None, str | None], list[int]] = {}
    for r in RECORDS:
        meta = r.get("requestMetadata") or {}
        acc = exp.setdefault((meta.get("team"), meta.get("env")), [0, 0, 0])
        acc[0] += 1
        acc[1] += r["input"]["inputTokenCount"]
        acc[2] += r["output"]["outputTokenCount"]
    assert (None, None) in exp and any(k[0] is not None for k in exp)
    assert got == {k: tuple(v) for k, v in exp.items()}


def test_no_user_value_reaches_the_sql_text() -> None:
    evil = "x' OR '1'='1"
    sel = Selection(filter=AndAll((Equals(evil, evil), NotEquals("k", evil))), models=(evil,),
                    operations=(evil,))
    for stmt in (select_records("t", sel, limit=5), select_count("t", sel),
                 select_stats("t", sel, ["tag:" + evil]), unload_records("t", sel, "s3://bucket/out/")):
        assert evil not in stmt.sql
        assert "1'='1" not in stmt.sql
        sql = stmt.sql
        if sql.startswith("UNLOAD ("):  # sqlglot has no UNLOAD: parse the query inside it
            sql = sql[len("UNLOAD ("):].rsplit(") TO ", 1)[0]
        sqlglot.parse_one(sql, read="trino")
        assert stmt.sql.count("?") == len(stmt.params)
    assert execution_parameter(evil) == "'x'' OR ''1''=''1'"


def test_execution_parameters_are_quoted_literals() -> None:
    stmt = compile_where(Selection(filter=Equals("team", "it's")))
    assert stmt.execution_parameters() == ["'team'", "'it''s'"]
    for literal in stmt.execution_parameters():
        assert sqlglot.parse_one(literal, read="trino").is_string


def test_bad_filter_documents_are_rejected() -> None:
    with pytest.raises(FilterError, match=r"\$\.andAll\[1\]"):
        compile_filter({"andAll": [{"equals": {"a": "b"}}, {"bogus": {}}]})
    with pytest.raises(FilterError, match="exactly one"):
        compile_filter({"equals": {"a": "b", "c": "d"}})


def test_unload_targets_a_prefix_and_parses() -> None:
    stmt = unload_records('"db"."t"', Selection(filter=Equals("a", "b")), "s3://bucket/out")
    assert "TO 's3://bucket/out/'" in stmt.sql
    assert sqlglot.parse_one(stmt.sql.split("UNLOAD (", 1)[1].rsplit(") TO", 1)[0], read="trino")
    with pytest.raises(LogtapError, match="s3://"):
        unload_records("t", Selection(), "/tmp/out")


# --------------------------------------------------------------------------- DDL

def test_ddl_for_one_account_and_region() -> None:
    layout = table_layout("s3://logs-bucket/pfx/AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1")
    ddl = create_table_ddl(layout, database="bedrock", start="2024/06/01/00")
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `bedrock`.`bedrock_invocation_logs`" in ddl
    assert "PARTITIONED BY (`datehour` string)" in ddl
    assert "'projection.datehour.format'='yyyy/MM/dd/HH'" in ddl
    assert "'projection.datehour.range'='2024/06/01/00,NOW'" in ddl
    assert "'projection.datehour.interval.unit'='HOURS'" in ddl
    assert ("'storage.location.template'='s3://logs-bucket/pfx/AWSLogs/111122223333/"
            "BedrockModelInvocationLogs/us-east-1/${datehour}/'") in ddl
    assert "`requestmetadata` map<string,string>" in ddl
    assert "inputbodyjson:string" in ddl and "outputbodyjson:string" in ddl
    assert "org.openx.data.jsonserde.JsonSerDe" in ddl
    sqlglot.parse_one(ddl.rstrip(";"), read="hive")


def test_ddl_across_accounts_and_regions() -> None:
    layout = table_layout("s3://logs-bucket/pfx", accounts=["111122223333", "444455556666"],
                          regions=["us-east-1", "us-west-2"])
    ddl = create_table_ddl(layout)
    assert "PARTITIONED BY (`log_account` string, `log_region` string, `datehour` string)" in ddl
    assert "'projection.log_account.values'='111122223333,444455556666'" in ddl
    assert "'projection.log_region.values'='us-east-1,us-west-2'" in ddl
    assert ("s3://logs-bucket/pfx/AWSLogs/${log_account}/BedrockModelInvocationLogs/${log_region}/${datehour}/"
            in ddl)


def test_view_excludes_data_objects() -> None:
    view = create_view_ddl(database="bedrock")
    assert "\"$path\" NOT LIKE '%/data/%'" in view
    sqlglot.parse_one(view.rstrip(";"), read="trino")


@pytest.mark.parametrize("location, kwargs, message", [
    ("/local/path", {}, "s3://"),
    ("s3://logs-bucket/AWSLogs/", {}, "--account"),
    ("s3://logs-bucket/x", {"accounts": ["12"], "regions": ["us-east-1"]}, "12-digit"),
    ("s3://logs-bucket/x", {"accounts": ["111122223333"], "regions": ["Mars"]}, "Region"),
    ("s3://logs-bucket/AWSLogs/1/BedrockModelInvocationLogs/us-east-1/2025/01", {}, "hour folder"),
])
def test_ddl_rejects_bad_layouts(location: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(LogtapError, match=message):
        table_layout(location, **kwargs)


@pytest.mark.parametrize("by, f", [
    (["model", "operation"], NotEquals("env", "dev")),
    (["day", "hour"], NotEquals("env", "dev")),
    (["tag:team", "region"], None),
    (["tag:team", "region"], NotEquals("env", "dev")),
    ([], Equals("team", "search")),
])
def test_stats_match_the_duckdb_engine(
    db: duckdb.DuckDBPyConnection, log_root: Path, by: list[str], f: Filter | None
) -> None:
    from logtap.athena_sql import stats_column_names

    sel = Selection(filter=f)
    stmt = select_stats("logs", sel, by)
    names = [*stats_column_names(by).values(), "records", "inputTokens", "outputTokens"]
    got = [dict(zip(names, row, strict=True)) for row in run_trino(db, stmt.sql, stmt.params)]
    got.sort(key=lambda d: (-d["records"], *(str(d[name]) for name in by)))
    want = logtap.open_logs(str(log_root), filter=sel.filter).stats(by)
    assert got == want
