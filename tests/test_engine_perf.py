"""records() / export at scale: unknown fields, line numbers, batched unordered scan + on-disk sort,
corrupt gzip, file:// offloaded bodies (folder sink). Real DuckDB, real files."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from logtap import engine
from logtap.converters.export import export
from logtap.engine import open_logs
from logtap.sink.writer import FolderDestination
from logtap.spill import SortedSpill
from support import records as R


def _many(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = f"2025-06-01T{10 + rnd.randrange(3):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z"
        rec = R.converse(request_id=f"id{rnd.randrange(10**6):06d}-{i}", timestamp=ts,
                         prompt=f"question {i % 40}", tags={"project": "a" if i % 3 else "b"})
        out.append(rec)
    return out


def test_unknown_top_level_fields_are_kept_and_every_record_has_its_line(tmp_path: Path) -> None:
    recs = [{**R.converse(request_id=f"u{i}", timestamp=f"2025-06-01T10:00:{i:02d}Z"),
             "newTopLevel": {"x": i}, "anotherOne": [i, "y"]} for i in range(5)]
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    (folder / "a.json.gz").write_bytes(R.gz_lines(recs[:2]))
    (folder / "b.json.gz").write_bytes(R.gz_lines(recs[2:]))
    got = list(open_logs(tmp_path).records())
    assert [r["requestId"] for r in got] == [f"u{i}" for i in range(5)]
    for i, rec in enumerate(got):
        assert rec["newTopLevel"] == {"x": i} and rec["anotherOne"] == [i, "y"]
        want = ("a.json.gz", i + 1) if i < 2 else ("b.json.gz", i - 1)
        assert (Path(rec["_source"]["file"]).name, rec["_source"]["line"]) == want
    # without line numbering the lines of clean files are not computed, records are the same
    fast = list(open_logs(tmp_path).records(lines=False))
    assert [r["_source"]["line"] for r in fast] == [None] * 5
    assert [{k: v for k, v in r.items() if k != "_source"} for r in fast] == \
        [{k: v for k, v in r.items() if k != "_source"} for r in got]


def test_bad_rows_are_located_even_without_line_numbering(tmp_path: Path) -> None:
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    lines = [R.converse(request_id="ok1"), {"timestamp": "2025-06-01T10:00:00Z", "operation": "Converse"},
             {**R.converse(request_id="w"), "requestMetadata": "oops"}, R.converse(request_id="ok2")]
    (folder / "x.json.gz").write_bytes(R.gz_lines(lines))
    logs = open_logs(tmp_path)
    ids = sorted(rid for _, rec in logs.records_unordered(lines=False) for rid in [rec["requestId"]])
    assert ids == ["ok1", "ok2"]
    where = {(Path(p.file).name, p.line) for p in logs.report.problems}
    assert where == {("x.json.gz", 2), ("x.json.gz", 3)} and logs.report.malformed == 2


def test_bad_rows_in_a_later_gzip_member_are_located(tmp_path: Path) -> None:
    """Bedrock-style files can hold several gzip members; line numbers run across all of them."""
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    first = [R.converse(request_id="a"), R.converse(request_id="b")]
    second = [R.converse(request_id="c"), {**R.converse(request_id="w"), "requestMetadata": "oops"}]
    (folder / "x.json.gz").write_bytes(R.gz_lines(first) + R.gz_lines(second))
    logs = open_logs(tmp_path)
    assert sorted(rec["requestId"] for _, rec in logs.records_unordered(lines=False)) == ["a", "b", "c"]
    assert [(Path(p.file).name, p.line) for p in logs.report.problems] == [("x.json.gz", 4)]


def test_sorted_spill_merges_runs_written_to_disk(tmp_path: Path) -> None:
    rnd = random.Random(3)
    items = [(rnd.randrange(1000), f"k{i}") for i in range(5000)]
    spill = SortedSpill(str(tmp_path), run_bytes=4096)
    for key, payload in items:
        spill.add((key, payload), payload.encode(), len(payload))
    assert spill.runs > 10  # really spilled
    got = [k for k, _ in spill]
    assert got == sorted((k, p) for k, p in items)


def test_batched_scan_and_spilled_sort_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = _many(600)
    recs += [json.loads(json.dumps(r)) for r in recs[:50]]  # exact duplicates in other files
    for r in recs[600:]:
        r["requestId"] = r["requestId"] + "-dup"
    src = tmp_path / "logs"
    for n in range(0, len(recs), 40):  # many small files in the same hours
        folder = R.hour_dir(src, recs[n]["timestamp"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{n:04d}.json.gz").write_bytes(R.gz_lines(recs[n:n + 40]))

    def run(name: str) -> tuple[bytes, dict[str, Any]]:
        out, man = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
        export([str(src)], output=str(out), manifest=str(man), mode="prompt-response", max_records=500,
               where=["project=a"])
        return out.read_bytes(), json.loads(man.read_text())

    one_batch, m1 = run("one")
    monkeypatch.setattr(engine, "BATCH_BYTES", 1)  # every few files a batch
    monkeypatch.setattr(SortedSpill.__init__, "__defaults__", (None, 2048))  # spill every few records
    many, m2 = run("many")
    assert many == one_batch and m1["requestIds"] == m2["requestIds"] and m1["counts"] == m2["counts"]
    expected = sorted((r for r in recs if r["requestMetadata"]["project"] == "a"),
                      key=lambda r: (r["timestamp"], r["requestId"]))
    kept, seen = [], set()
    for r in expected:  # dedupe on the prompt keeps the earliest; then the cap
        key = r["input"]["inputBodyJson"]["messages"][0]["content"][0]["text"]
        if key not in seen:
            seen.add(key)
            kept.append(r["requestId"])
    assert m1["requestIds"] == kept[:500]
    c = m1["counts"]
    assert c["matched"] == len(expected) and c["matched"] == c["written"] + sum(c["skipped"].values())


def test_corrupt_gzip_is_quarantined_and_reported(tmp_path: Path) -> None:
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    (folder / "good.json.gz").write_bytes(R.gz_lines([R.converse(request_id="g")]))
    (folder / "corrupt.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (folder / "empty.json.gz").write_bytes(gzip.compress(b""))
    logs = open_logs(tmp_path)
    assert [r["requestId"] for r in logs.records()] == ["g"]
    assert [Path(p.file).name for p in logs.report.problems] == ["corrupt.json.gz"]
    assert logs.report.malformed == 1
    logs = open_logs(tmp_path)
    assert logs.count() == 1 and logs.report.malformed == 1


def test_junk_after_a_complete_gzip_member_is_quarantined_and_reported(tmp_path: Path) -> None:
    """DuckDB fails the whole query on this ("not a GZIP stream") without naming the file."""
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    (folder / "good.json.gz").write_bytes(R.gz_lines([R.converse(request_id="g")]))
    big = [R.converse(request_id=f"j{i}", timestamp="2025-06-01T10:00:01Z", prompt="x" * 400) for i in range(20)]
    (folder / "junk.json.gz").write_bytes(R.gz_lines(big) + b"trailing junk that is not gzip" * 20)
    for run in ("records", "count"):
        logs = open_logs(tmp_path)
        if run == "records":
            assert sorted(r["requestId"] for r in logs.records()) == sorted(["g", *(f"j{i}" for i in range(20))])
        else:
            assert logs.count() == 21
        assert [Path(p.file).name for p in logs.report.problems] == ["junk.json.gz"]
        assert logs.report.malformed == 1


def test_body_offloaded_to_a_file_uri_by_the_folder_sink(tmp_path: Path) -> None:
    root = tmp_path / "sink"
    dest = FolderDestination(root)
    rec = R.converse(request_id="big", prompt="a long prompt")
    key = f"{R.hour_key(rec['timestamp'])}/data/big_input.json.gz"
    (root / key).parent.mkdir(parents=True)
    (root / key).write_bytes(gzip.compress(json.dumps(rec["input"].pop("inputBodyJson")).encode()))
    rec["input"]["inputBodyS3Path"] = dest.uri_for(key)
    assert rec["input"]["inputBodyS3Path"].startswith("file://")
    missing = R.converse(request_id="gone", timestamp="2025-06-01T10:00:01Z")
    missing["input"].pop("inputBodyJson")
    missing["input"]["inputBodyS3Path"] = dest.uri_for("nowhere/gone_input.json.gz")
    R.write_logs(root, [rec, missing])
    logs = open_logs(root)
    got = {r["requestId"]: r for r in logs.records()}
    assert got["big"]["input"]["inputBodyJson"]["messages"][0]["content"][0]["text"] == "a long prompt"
    assert logs.report.missing_bodies == 1
    out, man = tmp_path / "o.jsonl", tmp_path / "m.json"
    export([str(root)], output=str(out), manifest=str(man), mode="prompt-only")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["messages"][0]["content"][0]["text"] for x in lines] == ["a long prompt"]
    assert json.loads(man.read_text())["counts"]["skipped"] == {"body-unavailable": 1}


def test_sql_view_numbers_source_lines_when_asked(tmp_path: Path) -> None:
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True)
    (folder / "a.json.gz").write_bytes(R.gz_lines([R.converse(request_id=f"a{i}") for i in range(3)]))
    (folder / "b.json.gz").write_bytes(R.gz_lines([R.converse(request_id=f"b{i}") for i in range(2)]))
    (folder / "c.json.gz").write_bytes(gzip.compress(
        (json.dumps(R.converse(request_id="c0")) + "\nnot json\n" + json.dumps(R.converse(request_id="c2"))
         + "\n").encode()))
    logs = open_logs(tmp_path)
    cols, rows = logs.sql("SELECT requestId, sourceFile, sourceLine FROM logs ORDER BY requestId")
    got = {rid: (Path(f).name, line) for rid, f, line in rows}
    assert got == {"a0": ("a.json.gz", 1), "a1": ("a.json.gz", 2), "a2": ("a.json.gz", 3),
                   "b0": ("b.json.gz", 1), "b1": ("b.json.gz", 2), "c0": ("c.json.gz", 1), "c2": ("c.json.gz", 3)}
    assert logs.report.malformed == 1
    # a query that does not ask for lines keeps the cheaper scan
    assert logs.sql("SELECT count(*) FROM logs")[1] == [(7,)]
