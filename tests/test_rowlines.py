"""Query lines from worker processes (logtap/rowlines.py) are the lines DuckDB writes, in its order."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_linescan import _corpus

import logtap.engine as engine
from logtap.engine import open_logs
from logtap.rowlines import row_line

COLUMNS = ("requestId", "timestamp", "operation", "modelId", "requestMetadata", "inputTokenCount",
           "outputTokenCount", "accountId", "region", "cacheReadInputTokenCount")


def _lines(root: object, parallel: bool, limit: int | None = None, **kw: object
           ) -> tuple[list[str], dict[str, object]]:
    logs = open_logs(str(root), **kw)  # type: ignore[arg-type]
    logs.selective_reader = parallel
    lines = list(logs.json_lines(COLUMNS, limit=limit))
    rep = logs.report
    logs.close()
    with open_logs(str(root), **kw) as again:  # type: ignore[arg-type]
        again.selective_reader = parallel
        assert list(again.rows(COLUMNS, limit=limit)) == [json.loads(line) for line in lines]
    return lines, {"scanned": rep.scanned, "matched": rep.matched, "malformed": rep.malformed,
                   "skipped": rep.skipped, "problems": sorted((p.file, p.line, p.reason) for p in rep.problems)}


@pytest.mark.parametrize("kw", [{"where": ["project=alpha"]}, {"where": ["project=alpha"], "limit": 7},
                                {"filter": {"orAll": [{"equals": {"project": "alpha"}},
                                                      {"equals": {"project": "gamma"}}]}}])
def test_worker_lines_equal_duckdb_lines(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                         kw: dict[str, object]) -> None:
    _corpus(tmp_path)  # type: ignore[arg-type]
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    calls = []
    real = engine.LogSet._parallel_lines

    def spy(self: engine.LogSet, *a: object) -> object:
        calls.append(len(a[0]))  # type: ignore[arg-type]
        return real(self, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.LogSet, "_parallel_lines", spy)
    fast, fast_rep = _lines(tmp_path, True, **kw)
    assert calls == [2, 2]  # two worker processes read the corpus (json_lines, then rows)
    duck, duck_rep = _lines(tmp_path, False, **kw)
    assert len(calls) == 2  # (DuckDB's path: no workers)
    assert fast == duck and len(fast) == (7 if "limit" in kw else len(fast)) and fast
    if "limit" not in kw:  # (DuckDB's bad rows come before the first line, the workers' with it)
        assert fast_rep == duck_rep


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(rid=_TEXT, value=_TEXT, n=st.one_of(st.none(), st.integers(0, 2**62)))
def test_row_line_is_duckdbs_json_object(rid: str, value: str, n: int | None) -> None:
    assume(rid != "k")  # a map with the key twice is not a JSON object DuckDB would read from a log
    rec = {"requestId": rid, "timestamp": "2025-06-01T10:00:00Z", "operation": "Converse", "modelId": value,
           "requestMetadata": {"k": value, rid: "x"}, "input": {"inputTokenCount": n}}
    cols = ("requestId", "timestamp", "operation", "modelId", "requestMetadata", "inputTokenCount")
    expected = duckdb.execute(
        "SELECT json_object('requestId', ?::VARCHAR, 'timestamp', ?::VARCHAR, 'operation', ?::VARCHAR, "
        "'modelId', ?::VARCHAR, 'requestMetadata', map_from_entries([('k', ?), (?, 'x')])::MAP(VARCHAR, VARCHAR), "
        "'inputTokenCount', ?::BIGINT)::VARCHAR",
        [rid, rec["timestamp"], "Converse", value, value, rid, n]).fetchone()
    assert expected is not None
    assert row_line(rec, cols).decode() == expected[0]
