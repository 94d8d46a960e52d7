"""The filter tree: Bedrock JSON round trip and rules, SQL (real DuckDB) vs Python agreement."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtap.errors import FilterError
from logtap.filters import (
    AndAll,
    Equals,
    Filter,
    NotEquals,
    combine,
    parse_filter_arg,
    parse_where,
    to_bedrock,
)
from support import filter_strategies as fs

# One generator for every property test of filters (the Athena equivalence test draws from it too).
KEYS = fs.keys
VALUES = fs.values
BEDROCK = fs.filters()
TREES = fs.filters(nested=True)
METADATA = fs.request_metadata()


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def sql_select(con: duckdb.DuckDBPyConnection, f: Filter, rows: list[dict[str, str] | None]) -> list[int]:
    con.execute("CREATE OR REPLACE TEMP TABLE t (i INTEGER, md MAP(VARCHAR, VARCHAR))")
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?)", [[i, md] for i, md in enumerate(rows)])
    where, params = f.to_sql("md")
    return [r[0] for r in con.execute(f"SELECT i FROM t WHERE {where} ORDER BY i", params).fetchall()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=TREES, rows=st.lists(METADATA, max_size=12))
def test_sql_and_python_agree(con: duckdb.DuckDBPyConnection, f: Filter, rows: list[dict[str, str] | None]) -> None:
    assert sql_select(con, f, rows) == [i for i, md in enumerate(rows) if f.evaluate(md)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, value=VALUES, rows=st.lists(METADATA, max_size=12))
def test_equals_and_not_equals_split_every_record_set(con: duckdb.DuckDBPyConnection, key: str, value: str,
                                                      rows: list[dict[str, str] | None]) -> None:
    eq = set(sql_select(con, Equals(key, value), rows))
    ne = set(sql_select(con, NotEquals(key, value), rows))
    assert eq.isdisjoint(ne) and eq | ne == set(range(len(rows)))


@settings(deadline=None)
@given(f=BEDROCK)
def test_bedrock_documents_round_trip_exactly(f: Filter) -> None:
    doc = f.to_json()
    text = json.dumps(doc)
    again = Filter.from_json(json.loads(text))
    assert again == f and json.dumps(again.to_json()) == text and to_bedrock(again) == doc


def test_values_are_bound_never_interpolated() -> None:
    sql, params = Equals("k'; DROP TABLE x; --", "v'").to_sql("md")
    assert "DROP" not in sql and "'" not in sql and params == ["k'; DROP TABLE x; --", "v'"]


def test_not_equals_matches_records_without_metadata_or_key() -> None:
    f = NotEquals("project", "a")
    assert f.evaluate(None) and f.evaluate({}) and f.evaluate({"project": "b"}) and not f.evaluate({"project": "a"})


@pytest.mark.parametrize("doc, path, words", [
    ({}, "$", "exactly one"),
    ({"equals": {"a": "b"}, "notEquals": {"c": "d"}}, "$", "exactly one"),
    ({"equal": {"a": "b"}}, "$", "unknown member 'equal'"),
    ({"equals": {}}, "$.equals", "exactly one key"),
    ({"equals": {"a": "b", "c": "d"}}, "$.equals", "exactly one key"),
    ({"andAll": []}, "$.andAll", "1-16"),
    ({"orAll": [{"equals": {"a": "b"}}] * 17}, "$.orAll", "1-16"),
    ({"andAll": [{"equals": {"a": "b"}}, {"orAll": [{"equals": {"c": "d"}}]}]}, "$.andAll[1]", "cannot nest"),
    ({"equals": {"a#b": "c"}}, "$.equals.a#b", "no '#'"),
    ({"notEquals": {"a": "x,y"}}, "$.notEquals.a", "no '#' or ','"),
    ({"equals": {"a": 3}}, "$.equals.a", "must be a string"),
    ({"equals": {"k" * 257: "v"}}, "$.equals", "1-256"),
    ([], "$", "JSON object"),
])
def test_rules_point_at_the_offending_node(doc: Any, path: str, words: str) -> None:
    with pytest.raises(FilterError) as err:
        Filter.from_json(doc)
    assert words in str(err.value) and err.value.path.startswith(path)


def test_where_parsing_and_combining() -> None:
    f = parse_where(["project=support", "env!=dev", "k=a=b", "e="])
    assert f == AndAll((Equals("project", "support"), NotEquals("env", "dev"), Equals("k", "a=b"), Equals("e", "")))
    with pytest.raises(FilterError, match="KEY=VALUE"):
        parse_where(["novalue"])
    with pytest.raises(FilterError, match="KEY=VALUE"):
        parse_where(["=v"])
    assert combine(None, None) is None
    assert combine(Equals("a", "b"), None) == Equals("a", "b")


def test_to_bedrock_explains_what_the_service_cannot_express() -> None:
    mixed = combine(parse_filter_arg('{"orAll": [{"equals": {"a": "1"}}, {"equals": {"a": "2"}}]}'),
                    parse_where(["b=3"]))
    assert mixed is not None and mixed.evaluate({"a": "2", "b": "3"}) and not mixed.evaluate({"a": "2"})
    with pytest.raises(FilterError, match="andAll containing orAll"):
        to_bedrock(mixed)
    with pytest.raises(FilterError, match="no '#'"):
        to_bedrock(Equals("a#", "b"))
    with pytest.raises(FilterError, match="1-16"):
        to_bedrock(AndAll(tuple(Equals("k", str(i)) for i in range(17))))


def test_filter_arg_from_file_and_bad_json(tmp_path: Any) -> None:
    p = tmp_path / "f.json"
    p.write_text('{"equals": {"project": "support"}}')
    assert parse_filter_arg(f"@{p}") == Equals("project", "support")
    with pytest.raises(FilterError, match="cannot read filter file"):
        parse_filter_arg(f"@{tmp_path / 'missing.json'}")
    with pytest.raises(FilterError, match="not valid JSON"):
        parse_filter_arg("{equals")


def test_tree_is_immutable_and_compares_by_value() -> None:
    import dataclasses

    f = AndAll([Equals("a", "1"), NotEquals("b", "2")])  # type: ignore[arg-type]  # a list is frozen to a tuple
    assert isinstance(f.items, tuple) and f == AndAll((Equals("a", "1"), NotEquals("b", "2")))
    assert hash(f) == hash(AndAll((Equals("a", "1"), NotEquals("b", "2"))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.items = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Equals("a", "1").value = "2"  # type: ignore[misc]


def test_duplicate_members_in_a_filter_document_are_an_error_not_silently_dropped() -> None:
    # json.loads would keep only the last "equals" (the bug in AWS's own sample notebook)
    for text in ('{"equals": {"a": "1"}, "equals": {"b": "2"}}', '{"equals": {"a": "1", "a": "2"}}',
                 '{"andAll": [{"equals": {"a": "1"}, "equals": {"b": "2"}}]}'):
        with pytest.raises(FilterError, match="appears twice") as err:
            parse_filter_arg(text)
        assert err.value.path == "--filter"


def test_where_splits_at_the_first_equals_sign() -> None:
    assert parse_where(["a!=b=c"]) == NotEquals("a", "b=c")
    assert parse_where(["a!b=c"]) == Equals("a!b", "c")
    assert parse_where(["a=!=b"]) == Equals("a", "!=b")
    with pytest.raises(FilterError, match="KEY=VALUE"):
        parse_where(["!=b"])


def test_patterns_are_the_installed_botocore_models() -> None:
    """The key/value patterns and the item limit come from botocore's own ``bedrock`` model file,
    read without a botocore session: the same values a session gives."""
    import botocore.session

    from logtap import filters

    filters._load_patterns()
    model = botocore.session.get_session().get_service_model("bedrock")
    shape = model.shape_for("RequestMetadataMap")
    assert filters.KEY_PATTERN.pattern == shape.key.metadata["pattern"]
    assert filters.VALUE_PATTERN.pattern == shape.value.metadata["pattern"]
    assert filters.MAX_ITEMS == model.shape_for("RequestMetadataFiltersList").metadata["max"]
