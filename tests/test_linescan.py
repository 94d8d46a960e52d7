"""The selective reader (logtap/linescan.py) gives what the DuckDB reader gives, on awkward input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtap.engine import open_logs
from logtap.filters import Filter
from logtap.linescan import needles, readable_text, survey
from support import records as R

HOUR = "2025-06-01T10:00:00Z"


def _line(rec: dict[str, Any]) -> str:
    return json.dumps(rec)


def _corpus(root: Path) -> None:
    """Files in Bedrock's layout whose lines cover what the two readers must agree on."""
    folder = R.hour_dir(root, HOUR)
    folder.mkdir(parents=True)

    def rec(i: int, **kw: Any) -> dict[str, Any]:
        kw.setdefault("timestamp", f"2025-06-01T10:{i % 60:02d}:{i % 7:02d}Z")
        kw.setdefault("tags", {"project": "alpha" if i % 3 else "beta", "n": str(i % 4)})
        kw.setdefault("request_id", f"req-{i:04d}")
        return R.converse(prompt=f"question {i}", **kw)

    plain = [rec(i) for i in range(60)]
    odd = [
        rec(100, timestamp="2025-06-01T10:20:00.123Z"),
        rec(101, timestamp="2025-06-01T12:20:00+02:00"),  # DuckDB ignores the offset
        rec(102, timestamp="2025-06-01 10:21:00"),
        rec(103, timestamp="2025-06-01T10:22:00.1234567Z"),
        rec(104, timestamp="not-a-time"),
        rec(105, timestamp="2025-06-01T10:23:00Z", model_id="us.anthropic.claude-3-haiku-20240307-v1:0"),
        rec(106, tags={"project": "alpha", "n": 5}),  # a number: MAP(VARCHAR, VARCHAR) holds "5"
        rec(107, tags={"project": "alpha", "n": True}),
        rec(108, tags={"project": "alpha", "n": 1.5}),
        rec(109, tags={"project": "alpha", "n": None}),
        rec(110, tags={"project": "gamma"}),
        rec(115, timestamp="2025-02-30T10:00:00Z"),
        rec(116, timestamp="2025-06-01T10:60:00Z"),
        rec(118, timestamp="2025-06-01T24:00:00Z"),
        rec(119, timestamp="2025-06-01T10:59:59.999999Z"),
    ]
    missing = {k: v for k, v in rec(111, tags={"project": "alpha"}).items() if k != "requestId"}
    other = dict(rec(112, tags={"project": "alpha"}), schemaType="SomethingElse")
    numeric_id = dict(rec(113, tags={"project": "alpha"}), requestId=12345)
    lines = [_line(r) for r in plain + odd] + [_line(missing), _line(other), _line(numeric_id),
                                               '{"requestMetadata": {"project": "alpha"}, oops}',  # not JSON
                                               '[1, 2, "alpha"]', "not json at all",
                                               '{"requestMetadata": {"project": "alpha"}, "x": ',  # cut
                                               ""]
    (folder / "a.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    # blank and padded lines, CRLF, no final newline
    crlf = "\r\n".join(_line(rec(200 + i)) for i in range(6)) + "\r\n\r\n  " + _line(rec(210)) + "  \n\n" \
        + _line(rec(211))
    (folder / "b.json.gz").write_bytes(gzip.compress(crlf.encode()))
    # two gzip members, then a third cut short inside a line
    member = [gzip.compress(("\n".join(_line(rec(300 + 10 * k + i)) for i in range(5)) + "\n").encode())
              for k in range(3)]
    (folder / "c.json.gz").write_bytes(member[0] + member[1] + member[2][: len(member[2]) // 2])
    # garbage after a gzip header, and a plain NDJSON file
    (folder / "d.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (folder / "e.jsonl").write_text("".join(_line(rec(400 + i)) + "\n" for i in range(8)))


def _both(root: Path, **kw: Any) -> list[tuple[list[Any], dict[str, Any]]]:
    out = []
    for selective in (True, False):
        logs = open_logs(str(root), **kw)
        logs.selective_reader = selective
        # line numbers are compared apart: DuckDB numbers records, which differs after a blank line
        got = sorted(((key[:3], dict(rec, _source=rec["_source"]["file"]))
                      for key, rec in logs.records_unordered(lines=True)), key=lambda kr: kr[0])
        rep = logs.report
        out.append((got, {"scanned": rep.scanned, "matched": rep.matched, "malformed": rep.malformed,
                          "skipped": rep.skipped,
                          "problems": sorted((Path(p.file).name, p.line, p.reason) for p in rep.problems)}))
        logs.close()
    return out


FILTERS: list[dict[str, Any]] = [
    {"where": ["project=alpha"]},
    {"filter": {"orAll": [{"equals": {"project": "alpha"}}, {"equals": {"project": "gamma"}}]}},
    {"filter": {"andAll": [{"equals": {"project": "alpha"}}, {"notEquals": {"n": "5"}}]}},
    {"filter": {"andAll": [{"equals": {"project": "alpha"}}, {"equals": {"n": "true"}}]}},
    {"filter": {"andAll": [{"equals": {"project": "alpha"}}, {"equals": {"n": "1.5"}}]}},
    {"where": ["project=alpha"], "since": "2025-06-01T10:20:00Z", "until": "2025-06-01T10:40:00Z"},
    {"where": ["project=alpha"], "models": ["anthropic.claude-3-haiku-20240307-v1:0"]},
    {"where": ["project=alpha"], "operations": ["InvokeModel"]},
]


@pytest.mark.parametrize("kw", FILTERS, ids=[json.dumps(f)[:60] for f in FILTERS])
def test_selective_reader_agrees_with_duckdb(tmp_path: Path, kw: dict[str, Any]) -> None:
    _corpus(tmp_path)
    (fast, fast_rep), (duck, duck_rep) = _both(tmp_path, **kw)
    assert fast == duck
    assert fast_rep == duck_rep
    assert fast_rep["malformed"] > 0  # the corpus's bad lines were seen and named by both


def test_the_corpus_exercises_the_cases(tmp_path: Path) -> None:
    _corpus(tmp_path)
    (rows, rep), _ = _both(tmp_path, where=["project=alpha"])
    reasons = " | ".join(r for _, _, r in rep["problems"])
    assert "not valid JSON" in reasons and "not a JSON object" in reasons and "truncated gzip" in reasons
    assert "missing required field(s): requestId" in reasons
    assert {name for name, _, _ in rep["problems"]} == {"a.json.gz", "c.json.gz", "d.json.gz"}
    assert "'not-a-time' is not an ISO 8601 time" in reasons
    assert rep["skipped"].get("not-a-log-record") == 1
    ids = {rec["requestId"] for _, rec in rows}
    assert {"req-0101", "req-0103", "req-0106", "req-0108", "req-0211", 12345} <= ids
    assert rows[0][0][0] <= rows[-1][0][0]


def test_selective_reader_numbers_physical_lines(tmp_path: Path) -> None:
    _corpus(tmp_path)
    logs = open_logs(str(tmp_path), where=["project=alpha"])
    texts: dict[str, list[bytes]] = {}
    seen = 0
    for _, rec in logs.records_unordered(lines=True):
        path = rec["_source"]["file"]
        if path not in texts:
            data = Path(path).read_bytes()
            texts[path] = (readable_text(data)[0]).split(b"\n")
        assert json.dumps(rec["requestId"]).encode() in texts[path][rec["_source"]["line"] - 1]
        seen += 1
    assert seen > 40 and any(p.endswith("b.json.gz") for p in texts)


def test_needles_only_where_every_match_contains_them() -> None:
    f = Filter.from_json
    assert needles(f({"equals": {"project": "alpha"}})) == {b"alpha"}
    assert needles(f({"notEquals": {"project": "alpha"}})) is None
    assert needles(f({"orAll": [{"equals": {"a": "x1"}}, {"notEquals": {"b": "y"}}]})) is None
    assert needles(f({"orAll": [{"equals": {"a": "x1"}}, {"equals": {"b": "y2"}}]})) == {b"x1", b"y2"}
    assert needles(f({"andAll": [{"notEquals": {"a": "x"}}, {"equals": {"b": "y2"}}]})) == {b"y2"}
    # a '/' may be written as '\\/'; whitespace other than a space is escaped: not searched for
    assert needles(f({"equals": {"project": "a/b"}})) == {b"a/b", b"a\\/b"}
    assert needles(f({"equals": {"project": "a\tb"}})) is None


def test_a_filter_on_an_escapable_value_uses_duckdb_and_still_matches(tmp_path: Path) -> None:
    folder = R.hour_dir(tmp_path, HOUR)
    folder.mkdir(parents=True)
    recs = [R.converse(tags={"team": "a\tb"}), R.converse(tags={"team": "other"})]
    (folder / "a.json.gz").write_bytes(R.gz_lines(recs))  # the tab is written as \t
    logs = open_logs(str(tmp_path), filter={"equals": {"team": "a\tb"}})
    assert [r["requestMetadata"]["team"] for _, r in logs.records_unordered()] == ["a\tb"]


def test_survey_counts_lines_as_duckdb_and_finds_odd_ones() -> None:
    assert survey(b"") == (0, [])
    assert survey(b'{"a":1}\n{"b":2}\n') == (2, [])
    assert survey(b'{"a":1}\n{"b":2}') == (2, [])
    assert survey(b'{"a":1}\n\n{"b":2}\n') == (2, [])
    assert survey(b'{"a":1}\n{"b":\n') == (2, [8])
    assert survey(b'{"a":1}\r\n{"b":2}\r\n') == (2, [])
    assert survey(b'[1]\n{"b":2}\n') == (2, [0])


_PIECES = st.sampled_from([b'{"a":1}', b'{"b":"x}"}', b"", b" ", b"\r", b"}", b"{", b"[1]", b'{"c":', b"x"])


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.lists(_PIECES, max_size=3).map(b"".join), max_size=8), end=st.booleans())
def test_survey_is_the_plain_line_by_line_reading(lines: list[bytes], end: bool) -> None:
    text = b"\n".join(lines) + (b"\n" if end and lines else b"")
    count, odd, pos = 0, [], 0
    for seg in text.split(b"\n"):
        if seg.strip():
            count += 1
            if seg.strip()[:1] != b"{" or seg.strip()[-1:] != b"}":
                odd.append(pos)
        pos += len(seg) + 1
    assert survey(text) == (count, odd)


def test_readable_text_keeps_complete_lines_of_a_cut_file() -> None:
    data = gzip.compress(b'{"a":1}\n{"b":2}\n{"c":')
    text, problems = readable_text(data[: len(data) - 4])  # the member's trailer is missing
    assert text == b'{"a":1}\n{"b":2}\n'
    assert problems == [(3, "truncated gzip member: the last line is incomplete")]


def test_gzip_members_and_junk_are_read_as_the_tolerant_reader_reads_them() -> None:
    one = gzip.compress(b'{"a":1}\n')
    assert readable_text(one) == (b'{"a":1}\n', [])
    assert readable_text(one + one) == (b'{"a":1}\n{"a":1}\n', [])  # identical members: both kept
    assert readable_text(one + gzip.compress(b'{"b":2}\n')) == (b'{"a":1}\n{"b":2}\n', [])
    text, problems = readable_text(one + b"junk after the member")
    assert text == b'{"a":1}\n' and len(problems) == 1 and problems[0][0] is None
    assert "corrupt gzip data" in problems[0][1]
