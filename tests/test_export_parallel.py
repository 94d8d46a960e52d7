"""Export in worker processes (``LogSet.split`` + ``logtap.converters.export._parallel``) gives the same
bytes and manifest as the in-process scan, bad inputs included; the output size cap; named spill runs.
Real DuckDB, real files, real worker processes."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from logtap.converters import export as export_mod
from logtap.converters import validate
from logtap.converters.export import export
from logtap.engine import open_logs
from logtap.spill import SortedSpill, merge_runs
from support import records as R


def _logs(src: Path, n: int = 900, seed: int = 3) -> dict[str, Any]:
    """``n`` records in ~30 files over several hours, exact duplicates across files, and bad input:
    a non-JSON line, a record without requestId, a non-object line, a corrupt gzip file."""
    rnd = random.Random(seed)
    recs = []
    for i in range(n):
        ts = f"2025-06-01T{10 + rnd.randrange(4):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}Z"
        recs.append(R.converse(request_id=f"r{rnd.randrange(10**6):06d}-{i}", timestamp=ts,
                               prompt=f"question {i % 400}", tags={"project": "a" if i % 4 else "b"}))
    recs += [json.loads(json.dumps(r)) for r in recs[:40]]  # the same records again, in other files
    files = []
    for k, start in enumerate(range(0, len(recs), 31)):
        chunk = recs[start:start + 31]
        folder = R.hour_dir(src, chunk[0]["timestamp"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{k:03d}.json.gz"
        path.write_bytes(R.gz_lines(chunk))
        files.append(path)
    bad = files[len(files) // 2]
    lines = gzip.decompress(bad.read_bytes()).decode().splitlines()
    broken = {k: v for k, v in json.loads(lines[2]).items() if k != "requestId"}
    lines[1:3] = ["not json at all", json.dumps(broken), "[1, 2]"]
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    (files[-1].parent / "corrupt.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    return {"recs": recs, "bad": bad.name}


def _run(src: Path, out_dir: Path, **kw: Any) -> tuple[bytes, dict[str, Any]]:
    out_dir.mkdir()
    out, man = out_dir / "train.jsonl", out_dir / "manifest.json"
    export([str(src)], output=str(out), manifest=str(man), mode="prompt-response", **kw)
    manifest = json.loads(man.read_text())
    for o in manifest["outputs"]:
        o["path"] = Path(o["path"]).name
    return out.read_bytes(), manifest


def test_parallel_export_matches_in_process_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "logs"
    info = _logs(src)
    calls: list[int] = []
    real = export_mod._parallel

    def spy(logs: Any, parts: Any, options: Any, tally: Any) -> Any:
        calls.append(len(parts))
        return real(logs, parts, options, tally)

    monkeypatch.setattr(export_mod, "_parallel", spy)
    monkeypatch.setattr(export_mod, "PARALLEL_MIN_BYTES", 1 << 40)
    serial, m1 = _run(src, tmp_path / "serial", where=["project=a"], max_records=250)
    assert calls == []
    monkeypatch.setattr(export_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(export_mod, "PARALLEL_WORKERS", 2)
    parallel, m2 = _run(src, tmp_path / "parallel", where=["project=a"], max_records=250)
    assert calls == [2]
    assert parallel == serial and m2 == m1
    c = m2["counts"]
    assert c["matched"] == c["written"] + sum(c["skipped"].values())
    assert c["written"] == 250 and c["skipped"]["over-max-records"] > 0 and c["skipped"]["duplicate"] > 0
    named = {(Path(p["file"]).name, p["line"]) for p in m2["problems"]}
    assert {(info["bad"], 2), (info["bad"], 3), (info["bad"], 4)} <= named
    assert any(name == "corrupt.json.gz" for name, _ in named)
    assert c["malformed"] == 4 and c["scanned"] == len(info["recs"]) - 1  # 2 bad lines replaced 2 records
    written = [json.loads(x) for x in parallel.splitlines()]
    assert len(written) == len(m2["requestIds"]) == 250


def test_split_covers_every_file_once_in_order_balanced(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    _logs(src)
    with open_logs([str(src)]) as logs:
        parts = logs.split(2)
        assert parts is not None and len(parts) == 2
        order = {f.path: i for i, f in enumerate(logs.files)}
        got = [f.path for p in parts for f in p.files]
        assert sorted(got) == sorted(order)
        for p in parts:
            idx = [order[f.path] for f in p.files]
            assert idx == sorted(idx)
        sizes = [sum(f.size for f in p.files) for p in parts]
        assert abs(sizes[0] - sizes[1]) <= max(f.size for f in logs.files)
    with open_logs([str(src)], progress=True) as logs:  # progress on a terminal: the parent says it
        assert logs.split(2) is not None


def test_shared_parts_read_every_file_once_whoever_claims_it(tmp_path: Path) -> None:
    """With a selective filter the parts share the file list and claim chunks as they go: two parts
    read alternately (one record each in turn, like two processes) give exactly the in-process
    records and report, and a part that runs alone takes whatever chunks are left."""
    src = tmp_path / "logs"
    _logs(src)
    with open_logs([str(src)], where=["project=a"]) as logs:
        expected = sorted(key for key, _ in logs.records_unordered())
        whole = logs.report
    for lead in (0, 1, 3):  # the second part starts after the first read `lead` records
        with open_logs([str(src)], where=["project=a"]) as logs:
            parts = logs.split(2)
            assert parts is not None and len(parts) == 2
            assert all(p.claims == parts[0].claims and len(p.files) == len(logs.files) for p in parts)
            opened = [p.open() for p in parts]
            streams = [o.records_unordered() for o in opened]
            got: list[list[Any]] = [[], []]
            for _ in range(lead):
                got[0].append(next(streams[0])[0])
            live = [0, 1]
            while live:
                for k in list(live):
                    item = next(streams[k], None)
                    if item is None:
                        live.remove(k)
                    else:
                        got[k].append(item[0])
            assert sorted(got[0] + got[1]) == expected
            assert got[0] and got[1]  # both did part of the work
            rep = logs.absorb([o.report for o in opened])
            assert (rep.scanned, rep.matched, rep.malformed) == (whole.scanned, whole.matched, whole.malformed)
            assert [str(p) for p in rep.problems] == [str(p) for p in whole.problems]
            for o in opened:
                o.close()


def test_claims_give_each_chunk_to_exactly_one_process(tmp_path: Path) -> None:
    from logtap.engine import Claims

    rnd = random.Random(7)
    sizes = [rnd.randrange(1, 500) for _ in range(200)]
    a, b = Claims(str(tmp_path), 1000), Claims(str(tmp_path), 1000)
    taken_a = [a.take(n) for n in sizes[:37]]  # a runs ahead, then they take turns going first
    taken_b = [b.take(n) for n in sizes[:37]]
    for i, n in enumerate(sizes[37:]):
        if i % 3:
            taken_a.append(a.take(n))
            taken_b.append(b.take(n))
        else:
            taken_b.append(b.take(n))
            taken_a.append(a.take(n))
    assert all(x != y for x, y in zip(taken_a, taken_b, strict=True))  # every file exactly once
    assert any(taken_b) and all(taken_a[:37])
    chunks = len(list(tmp_path.iterdir()))
    assert sum(sizes) // 1500 <= chunks <= sum(sizes) // 1000 + 1  # chunks of 1000-1499 bytes


def test_distill_plan_in_workers_matches_the_in_process_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``plan_logs`` with worker processes (facts in sorted runs) gives the plan and report that
    ``plan_distillation`` over ``records()`` gives: duplicates, bad lines and a corrupt file included."""
    from logtap import engine
    from logtap.distill import plan_distillation, plan_logs

    src = tmp_path / "logs"
    _logs(src)
    pair = {"teacher": "anthropic.claude-3-5-sonnet-20240620-v1:0", "student": "amazon.nova-lite-v1:0:300k",
            "region": "us-east-1"}
    with open_logs([str(src)], where=["project=a"]) as logs:
        serial = plan_distillation(logs.records(lines=False), filter=logs.filter, **pair).to_json()
        serial_report = logs.report
    calls: list[int] = []
    real = engine.LogSet.in_workers

    def spy(self: Any, parts: Any, target: str, *args: Any) -> Any:
        calls.append(len(parts))
        return real(self, parts, target, *args)

    monkeypatch.setattr(engine.LogSet, "in_workers", spy)
    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "PARALLEL_WORKERS", 2)
    with open_logs([str(src)], where=["project=a"]) as logs:
        parallel = plan_logs(logs, **pair).to_json()
        report = logs.report
    assert calls == [2]
    assert parallel == serial
    assert parallel["modes"]["prompt-response"]["usable"] > 0
    assert parallel["modes"]["prompt-response"]["skipped"].get("duplicate")  # the copied records
    assert (report.scanned, report.matched, report.malformed) == (serial_report.scanned, serial_report.matched,
                                                                  serial_report.malformed)
    assert [str(p) for p in report.problems] == [str(p) for p in serial_report.problems]


def test_records_that_would_pass_the_size_limit_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "logs"
    _logs(src, n=120)
    full, m_full = _run(src, tmp_path / "full", where=["project=a"])
    lines = full.splitlines(keepends=True)
    limit = sum(len(x) for x in lines[:7]) + 1  # room for 7 records, not 8
    monkeypatch.setattr(validate, "MAX_FILE_BYTES", limit)
    capped, m = _run(src, tmp_path / "capped", where=["project=a"])
    c = m["counts"]
    assert len(capped) <= limit and capped.splitlines(keepends=True)[:7] == lines[:7]
    assert c["written"] + c["skipped"]["over-max-size"] == m_full["counts"]["written"]
    assert c["matched"] == c["written"] + sum(c["skipped"].values())
    assert m["requestIds"] == m_full["requestIds"][:c["written"]]
    assert any("over-max-size" in w for w in m["warnings"])


def test_named_spill_runs_are_handed_over_and_merged(tmp_path: Path) -> None:
    rnd = random.Random(5)
    keys_a = [rnd.randrange(10**6) for _ in range(3000)]
    keys_b = [rnd.randrange(10**6) for _ in range(2000)]
    paths = []
    for keys in (keys_a, keys_b):
        spill = SortedSpill(str(tmp_path), run_bytes=4096, named=True)
        for k in keys:
            spill.add((k,), f"v{k}".encode(), 8)
        got = spill.persist()
        assert len(got) > 1 and all(Path(p).exists() for p in got)
        paths += got
    merged = list(merge_runs(paths))
    assert [k for (k,), _ in merged] == sorted(keys_a + keys_b)
    assert all(v == f"v{k}".encode() for (k,), v in merged)
    assert not any(Path(p).exists() for p in paths)  # merged runs are deleted
    with pytest.raises(ValueError):
        SortedSpill(str(tmp_path)).persist()
