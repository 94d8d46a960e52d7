"""The query engine over local folders: real DuckDB, Bedrock layouts, every provider shape, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from logtap.engine import open_logs
from logtap.errors import FilterError, SourceError
from support import records as R


def _recs() -> list[dict[str, Any]]:
    out = []
    for i, (name, build) in enumerate(sorted(R.ALL_SHAPES.items())):
        out.append(build(request_id=f"r{i:02d}", timestamp=f"2025-06-01T{10 + i % 3:02d}:{i:02d}:00Z",
                         tags={"project": "support" if i % 2 else "sales", "shape": name}))
    out.append(R.converse(request_id="r99", timestamp="2025-06-01T10:30:00Z", tags=None))
    return out


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    R.write_logs(tmp_path, _recs())
    return tmp_path


def test_every_provider_shape_round_trips_through_records(logs_dir: Path) -> None:
    src = {r["requestId"]: r for r in _recs()}
    logs = open_logs(logs_dir)
    got = list(logs.records())
    assert [r["requestId"] for r in got] == [r["requestId"] for r in sorted(src.values(),
                                                                           key=lambda r: (r["timestamp"], r["requestId"]))]
    for rec in got:
        source = rec.pop("_source")
        assert source["file"].endswith(".json.gz") and Path(source["file"]).exists()
        assert rec == src[rec["requestId"]]  # bodies (objects and chunk arrays) kept exactly
    assert logs.report.scanned == len(src) and logs.report.matched == len(src) and logs.report.malformed == 0


def test_filters_select_exactly_what_python_evaluates(logs_dir: Path) -> None:
    from logtap.filters import Filter

    doc = {"orAll": [{"equals": {"project": "support"}}, {"notEquals": {"shape": "converse"}}]}
    f = Filter.from_json(doc)
    expected = sorted(r["requestId"] for r in _recs() if f.evaluate(r.get("requestMetadata")))
    logs = open_logs(logs_dir, filter=doc)
    assert sorted(r["requestId"] for r in logs.rows()) == expected
    assert logs.count() == len(expected)
    ne = open_logs(logs_dir, where=["project!=support"]).count()
    eq = open_logs(logs_dir, where=["project=support"]).count()
    support = sum(1 for r in _recs() if (r.get("requestMetadata") or {}).get("project") == "support")
    assert eq + ne == len(_recs()) and eq == support > 0  # records without requestMetadata land in notEquals


def _ids(pred: Any) -> set[str]:
    return {r["requestId"] for r in _recs() if pred(r)}


def test_model_operation_and_time_filters(logs_dir: Path) -> None:
    lite = _ids(lambda r: r["modelId"] in ("amazon.nova-lite-v1:0", "us.amazon.nova-lite-v1:0"))
    assert lite and {r["requestId"] for r in open_logs(logs_dir, models=[
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"]).rows()} == lite
    sonnet = _ids(lambda r: r["modelId"] == "anthropic.claude-3-sonnet-20240229-v1:0")
    assert len(sonnet) == 2 and open_logs(logs_dir, models=["us.anthropic.claude-3-sonnet-20240229-v1:0"]).count() == 2
    # the 2026 record logs an inference-profile ARN; a bare profile ID and the base ID both select it
    opus = _ids(lambda r: r["modelId"].endswith("inference-profile/global.anthropic.claude-opus-4-7"))
    assert len(opus) == 1
    for form in ("anthropic.claude-opus-4-7", "global.anthropic.claude-opus-4-7", "us.anthropic.claude-opus-4-7"):
        assert {r["requestId"] for r in open_logs(logs_dir, models=[form]).rows()} == opus
    two = open_logs(logs_dir, models=["anthropic.claude-opus-4-7", "amazon.nova-lite-v1:0"]).count()
    assert two == len(opus | lite)  # --model is repeatable (OR)
    streams = _ids(lambda r: r["operation"] == "InvokeModelWithResponseStream")
    assert {r["requestId"] for r in open_logs(logs_dir, operations=["InvokeModelWithResponseStream"]).rows()} == streams
    assert open_logs(logs_dir, operations=["InvokeModel", "Converse"]).count() == len(
        _ids(lambda r: r["operation"] in ("InvokeModel", "Converse")))
    logs = open_logs(logs_dir, since="2025-06-01T11:00:00Z", until="2025-06-01T12:00:00Z")
    rows = list(logs.rows())
    assert rows and all(r["timestamp"].startswith("2025-06-01T11:") for r in rows)
    assert logs.report.scanned == len(_recs()) and logs.report.matched == len(rows)  # 10h-12h all in ±1h


def test_time_pruning_reads_only_folders_in_range(tmp_path: Path) -> None:
    recs = [R.converse(request_id=f"h{h:02d}", timestamp=f"2025-06-02T{h:02d}:10:00Z") for h in range(24)]
    R.write_logs(tmp_path, recs)
    logs = open_logs(tmp_path, since="2025-06-02T10:00:00Z", until="2025-06-02T12:00:00Z")
    hours = sorted(Path(f.path).parent.name for f in logs.files)
    assert hours == ["09", "10", "11", "12"]  # range plus one hour of slack each side
    assert [r["requestId"] for r in logs.rows()] == ["h10", "h11"]


def test_late_delivery_into_next_hour_is_found(tmp_path: Path) -> None:
    rec = R.converse(request_id="late", timestamp="2025-06-02T10:59:59Z")
    folder = R.hour_dir(tmp_path, "2025-06-02T11:00:00Z")
    folder.mkdir(parents=True)
    (folder / "x.json.gz").write_bytes(R.gz_lines([rec]))
    assert [r["requestId"] for r in open_logs(tmp_path, since="2025-06-02T10:00:00Z",
                                               until="2025-06-02T11:00:00Z").rows()] == ["late"]


def test_multi_account_multi_region_prefix_and_data_objects_skipped(tmp_path: Path) -> None:
    root = tmp_path / "bucket" / "my-prefix"
    recs = [R.converse(request_id="a", account="111111111111", region="us-east-1"),
            R.converse(request_id="b", account="222222222222", region="eu-west-1"),
            R.invoke_llama(request_id="c", account="222222222222", region="us-west-2")]
    R.write_logs(root, recs)
    data = R.hour_dir(root, recs[0]["timestamp"], "111111111111") / "data"
    data.mkdir()
    (data / "a_input.json.gz").write_bytes(gzip.compress(b'{"messages": []}'))
    (R.hour_dir(root, recs[0]["timestamp"], "111111111111") / "amazon-bedrock-logs-permission-check").write_text("x")
    logs = open_logs(tmp_path / "bucket")
    assert sorted(r["requestId"] for r in logs.rows()) == ["a", "b", "c"]
    assert logs.report.skipped == {"data-object": 1, "not-a-log-record": 1}
    stats = logs.stats(["region"])
    assert {s["region"]: s["records"] for s in stats} == {"us-east-1": 1, "eu-west-1": 1, "us-west-2": 1}


def test_stats_groups_and_token_sums(logs_dir: Path) -> None:
    stats = open_logs(logs_dir).stats(["operation", "tag:project"])
    total = sum(s["records"] for s in stats)
    assert total == len(_recs())
    conv = [s for s in stats if s["operation"] == "Converse"]
    src_conv = [r for r in _recs() if r["operation"] == "Converse"]
    assert sum(s["records"] for s in conv) == len(src_conv) and \
        sum(s["inputTokens"] for s in conv) == sum(r["input"]["inputTokenCount"] for r in src_conv)
    assert sum(s["outputTokens"] for s in stats) == sum(r["output"]["outputTokenCount"] for r in _recs())
    assert any(s["tag:project"] is None for s in stats)


def test_stats_by_model_day_and_hour(tmp_path: Path) -> None:
    recs = [R.converse(request_id="a", timestamp="2025-06-01T10:05:00Z", model_id="us.amazon.nova-pro-v1:0",
                       in_tokens=5, out_tokens=7),
            R.converse(request_id="b", timestamp="2025-06-01T10:55:00Z", model_id="amazon.nova-pro-v1:0",
                       in_tokens=1, out_tokens=2),
            R.converse(request_id="c", timestamp="2025-06-02T03:00:00Z",
                       model_id="arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"),
            R.invoke_llama(request_id="d", timestamp="2025-06-02T03:30:00Z")]
    R.write_logs(tmp_path, recs)
    logs = open_logs(tmp_path)
    by_model = {s["model"]: (s["records"], s["inputTokens"], s["outputTokens"]) for s in logs.stats(["model"])}
    assert by_model == {"amazon.nova-pro-v1:0": (3, 18, 39), "meta.llama3-1-70b-instruct-v1:0": (1, 12, 30)}
    assert {s["day"]: s["records"] for s in logs.stats(["day"])} == {"2025-06-01": 2, "2025-06-02": 2}
    hours = {(s["hour"], s["operation"]): s["records"] for s in logs.stats(by=["hour", "operation"])}
    assert hours == {("2025-06-01T10:00Z", "Converse"): 2, ("2025-06-02T03:00Z", "Converse"): 1,
                     ("2025-06-02T03:00Z", "InvokeModel"): 1}


def test_sql_view_columns_are_typed(logs_dir: Path) -> None:
    cols, rows = open_logs(logs_dir, where=["project=support"]).sql(
        "SELECT typeof(timestamp), typeof(requestMetadata), typeof(inputTokenCount), typeof(outputBodyJson), "
        "sourceFile, sourceLine FROM logs LIMIT 1")
    assert rows[0][:4] == ("TIMESTAMP", "MAP(VARCHAR, VARCHAR)", "BIGINT", "JSON")
    assert rows[0][4].endswith(".json.gz")
    _, n = open_logs(logs_dir, where=["project=support"]).sql("SELECT count(*) FROM logs")
    assert n == [(len(_ids(lambda r: (r.get("requestMetadata") or {}).get("project") == "support")),)]


def _hour(tmp_path: Path) -> Path:
    folder = R.hour_dir(tmp_path, "2025-06-01T10:00:00Z")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_bad_input_is_reported_counted_and_the_scan_goes_on(tmp_path: Path) -> None:
    folder = _hour(tmp_path)
    good = [R.converse(request_id=f"g{i}") for i in range(3)]
    (folder / "good.json.gz").write_bytes(R.gz_lines(good))
    lines = [json.dumps(R.converse(request_id="b1")), "this is not json", "[1, 2]",
             json.dumps({"timestamp": "2025-06-01T10:00:00Z", "operation": "Converse"}),
             json.dumps(R.converse(request_id="b2"))]
    (folder / "bad.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    full = R.gz_lines([R.converse(request_id=f"t{i}", prompt="x" * 2000) for i in range(4)])
    (folder / "trunc.json.gz").write_bytes(full[: len(full) * 2 // 3])
    (folder / "wrongtype.json.gz").write_bytes(R.gz_lines([{**R.converse(request_id="w"), "requestMetadata": "oops"}]))
    (folder / "other.json.gz").write_bytes(R.gz_lines([{**R.converse(request_id="o"), "schemaType": "Other"}]))
    logs = open_logs(tmp_path)
    ids = [r["requestId"] for r in logs.records()]
    rep = logs.report
    assert {"g0", "g1", "g2", "b1", "b2"} <= set(ids) and "w" not in ids and "o" not in ids
    by_file = {(Path(p.file).name, p.line): p.reason for p in rep.problems}
    assert "not valid JSON" in by_file[("bad.json.gz", 2)]
    assert "not a JSON object" in by_file[("bad.json.gz", 3)]
    assert "missing required field(s): requestId, modelId" in by_file[("bad.json.gz", 4)]
    assert any(name == "trunc.json.gz" and "truncated gzip" in why for (name, _), why in by_file.items())
    assert "requestMetadata" in by_file[("wrongtype.json.gz", 1)]
    assert rep.skipped.get("not-a-log-record") == 1
    assert rep.malformed == 5
    got = next(r for r in open_logs(tmp_path).records() if r["requestId"] == "b2")
    assert got["_source"] == {"file": str(folder / "bad.json.gz"), "line": 5}
    assert open_logs(tmp_path, where=["k!=v"]).count() == len(ids)


def test_offloaded_bodies_from_a_local_bucket_copy(tmp_path: Path) -> None:
    recs = [R.converse(request_id="off1"), R.converse(request_id="off2")]
    key, body = R.offload_input(recs[0], "my-bucket")
    R.offload_input(recs[1], "my-bucket")  # its data object is missing
    root = tmp_path / "copy"
    R.write_logs(root, recs)
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(body)
    logs = open_logs(root)
    got = {r["requestId"]: r for r in logs.records()}
    assert got["off1"]["input"]["inputBodyJson"]["messages"][0]["content"][0]["text"] == "What is DuckDB?"
    assert "inputBodyJson" not in got["off2"]["input"]
    assert logs.report.missing_bodies == 1
    assert any("off2" in p.reason and "unavailable" in p.reason for p in logs.report.problems)


def test_bad_sources_and_filters_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_logs(tmp_path / "nope")
    with pytest.raises(FilterError, match="exactly one"):
        open_logs(tmp_path, filter={"equals": {"a": "b", "c": "d"}})
    with pytest.raises(Exception, match="not a time"):
        open_logs(tmp_path, since="yesterday-ish")
    assert open_logs(tmp_path).count() == 0


def test_stats_by_tag_keeps_the_filter_bound(logs_dir: Path) -> None:
    stats = open_logs(logs_dir, where=["project=support"]).stats(["tag:shape"])
    support = _ids(lambda r: (r.get("requestMetadata") or {}).get("project") == "support")
    assert sum(s["records"] for s in stats) == len(support) and all(s["tag:shape"] for s in stats)
    assert {s["tag:shape"] for s in stats} == {r["requestMetadata"]["shape"] for r in _recs()
                                               if r["requestId"] in support}


def test_a_source_under_a_folder_named_data_is_read(tmp_path: Path) -> None:
    # only Bedrock's own data/ folder (below the hour folders) holds offloaded bodies; a user's folder
    # called "data" above the layout, or a flat folder of logs inside one, is read like any other
    root = tmp_path / "data" / "bedrock"
    R.write_logs(root, [R.converse(request_id="a"), R.invoke_llama(request_id="b")])
    hour = R.hour_dir(root, R.converse()["timestamp"])
    (hour / "data").mkdir()
    (hour / "data" / "a_input.json.gz").write_bytes(gzip.compress(b'{"messages": []}'))
    logs = open_logs(tmp_path / "data")
    assert sorted(r["requestId"] for r in logs.rows()) == ["a", "b"] and logs.report.skipped == {"data-object": 1}
    flat = tmp_path / "data" / "flat"
    flat.mkdir()
    (flat / "x.json.gz").write_bytes(R.gz_lines([R.converse(request_id="f")]))
    assert [r["requestId"] for r in open_logs(flat).rows()] == ["f"]
    assert [r["requestId"] for r in open_logs(open_logs(flat).files[0].path).rows()] == ["f"]


def test_one_log_file_and_plain_json_and_jsonl_files(tmp_path: Path) -> None:
    folder = _hour(tmp_path)
    (folder / "a.json").write_text(json.dumps(R.converse(request_id="j")) + "\n")
    (folder / "b.jsonl").write_text(json.dumps(R.invoke_titan(request_id="l", timestamp="2025-06-01T10:20:00Z"))
                                    + "\n" + json.dumps(R.invoke_nova(request_id="m")) + "\n")
    (folder / "notes.txt").write_text("not a log")
    gz = folder / "c.json.gz"
    gz.write_bytes(R.gz_lines([R.converse(request_id="g", timestamp="2025-06-01T10:00:00Z")]))
    logs = open_logs(tmp_path)
    assert [r["requestId"] for r in logs.rows()] == ["g", "j", "m", "l"]
    assert logs.report.skipped == {"not-a-log-file": 1}
    assert [r["requestId"] for r in open_logs(folder / "b.jsonl").rows()] == ["m", "l"]
    assert [r["requestId"] for r in open_logs([str(gz), str(gz)]).rows()] == ["g"]  # de-duplicated


def test_records_missing_requestmetadata_or_with_other_key_order(tmp_path: Path) -> None:
    rec = R.converse_stream_2026(request_id="k", tags={"team": "orchestrator"})
    assert list(rec)[0] == "timestamp" and list(rec)[-1] == "schemaVersion"
    R.write_logs(tmp_path, [rec, R.converse(request_id="n", tags=None)])
    logs = open_logs(tmp_path, where=["team=orchestrator"])
    got = list(logs.records())
    assert [r["requestId"] for r in got] == ["k"] and got[0]["inferenceRegion"] == "us-east-2"
    _, rows = open_logs(tmp_path).sql("SELECT requestId, inferenceRegion, cacheWriteInputTokenCount, "
                                      "requestMetadata['team'] FROM logs ORDER BY requestId")
    assert rows == [("k", "us-east-2", 24479, "orchestrator"), ("n", None, None, None)]
