"""`logtap export` / `logtap validate` end to end: real DuckDB engine over Bedrock-layout logs.

Round trips over the checked-in samples (counts in the manifest checked against the generator's
own records), determinism, atomic output, dedupe / max-records, prompt-only, OpenAI format, the
query issue's bad inputs carried through export, and S3 in and out through moto's server.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from logtap.cli import cli
from logtap.converters.validate import validate_lines

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "logs"
SUPPORT_FILTER = ROOT / "samples" / "filters" / "support.json"
sys.path.insert(0, str(ROOT / "samples"))
import generate  # noqa: E402  (samples/generate.py: the records the sample logs were written from)

SAMPLE = generate.build()
BY_ID = {r["requestId"]: r for r in SAMPLE.records}


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def export(tmp: Path, *extra: str, sources: tuple[str, ...] = (str(SAMPLES),), name: str = "train.jsonl") -> tuple[
        Any, dict[str, Any], Path]:
    out, manifest = tmp / name, tmp / (name + ".manifest.json")
    result = run("export", *sources, "--output", str(out), "--manifest", str(manifest), *extra)
    assert result.exit_code == 0, result.output + result.stderr
    return result, json.loads(manifest.read_text()), out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def support_ids(**cond: Any) -> list[str]:
    return [r["requestId"] for r in SAMPLE.records if (r.get("requestMetadata") or {}).get("project") == "support"]


def test_samples_are_the_generators_output(tmp_path: Path) -> None:
    generate.write(generate.build(), tmp_path)
    for path in sorted(tmp_path.rglob("*.gz")):
        assert path.read_bytes() == (SAMPLES / path.relative_to(tmp_path)).read_bytes(), path


def test_prompt_response_round_trip_counts(tmp_path: Path) -> None:
    result, m, out = export(tmp_path, "--mode", "prompt-response", "--filter", f"@{SUPPORT_FILTER}")
    counts = m["counts"]
    expected_matched = support_ids()
    assert counts["matched"] == len(expected_matched) == 27
    assert counts["matched"] == counts["written"] + sum(counts["skipped"].values())
    assert counts["malformed"] == 1 and counts["scanned"] == len(SAMPLE.records)
    assert m["filter"] == {"equals": {"project": "support"}} and m["mode"] == "prompt-response"
    assert counts["skipped"] == {"duplicate": 3, "empty-response": 1, "error": 1, "guardrail-intervened": 1,
                                 "non-text-content": 1, "tool-use": 1, "truncated": 1}
    # ordered by (timestamp, requestId), and the ids match the lines
    ids = m["requestIds"]
    assert ids == sorted(ids, key=lambda i: (BY_ID[i]["timestamp"], i))
    assert len(lines(out)) == len(ids) == counts["written"]
    # the offloaded body was fetched from data/ and written
    offloaded = next(r for r in SAMPLE.records if "inputBodyS3Path" in r["input"])
    assert offloaded["requestId"] in ids
    assert any("please summarize" in json.dumps(x) for x in lines(out))
    # the earliest of an exact repeat is kept, the later one dropped
    first, dup = SAMPLE.records[0]["requestId"], SAMPLE.records[10]["requestId"]
    assert first in ids and dup not in ids
    # every written line ends with the logged answer, which is in the source record
    for rid, line in zip(ids, lines(out), strict=True):
        assert line["messages"][-1]["role"] == "assistant"
        answer = line["messages"][-1]["content"][0]["text"]
        body = BY_ID[rid]["output"]["outputBodyJson"]
        if isinstance(body, list):  # a stream: the answer is the reassembled deltas
            assert answer == "Please see our help centre." or answer == "Our team will help you."
        else:
            assert answer.strip() and answer in json.dumps(body, ensure_ascii=False)
    # the malformed line is named with its location on stderr and in the manifest
    assert ".json.gz:2:" in result.stderr
    assert m["problems"][0]["line"] == 2
    assert m["outputs"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert run("validate", str(out)).exit_code == 0


def test_same_export_twice_is_byte_identical(tmp_path: Path) -> None:
    _, m1, out1 = export(tmp_path, "--mode", "prompt-response", name="a.jsonl")
    _, m2, out2 = export(tmp_path, "--mode", "prompt-response", name="b.jsonl")
    assert out1.read_bytes() == out2.read_bytes()
    m1.pop("outputs"), m2.pop("outputs")
    assert m1 == m2


def test_teacher_matches_any_id_form_only_in_prompt_response(tmp_path: Path) -> None:
    _, m, out = export(tmp_path, "--mode", "prompt-response", "--teacher",
                       "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0")
    assert m["counts"]["skipped"]["teacher-mismatch"] > 0
    models = {BY_ID[i]["modelId"] for i in m["requestIds"]}
    assert models == {"amazon.nova-pro-v1:0", "us.amazon.nova-pro-v1:0"}
    _, m2, _ = export(tmp_path, "--mode", "prompt-only", "--teacher", "amazon.nova-pro-v1:0", name="po.jsonl")
    assert "teacher-mismatch" not in m2["counts"]["skipped"]


def test_prompt_only_ends_with_user_and_validates(tmp_path: Path) -> None:
    _, m, out = export(tmp_path, "--mode", "prompt-only", "--student", "amazon.nova-lite-v1:0:300k")
    assert m["counts"]["written"] > 10
    assert all(x["messages"][-1]["role"] == "user" for x in lines(out))
    assert "truncated" not in m["counts"]["skipped"]  # a cut-off answer does not matter without labels
    assert run("validate", str(out), "--student", "amazon.nova-lite-v1:0:300k").exit_code == 0


def test_single_turn_student_skips_multi_turn(tmp_path: Path) -> None:
    _, m, out = export(tmp_path, "--mode", "prompt-response", "--student", "meta.llama3-1-8b-instruct-v1:0:128k")
    assert m["counts"]["skipped"]["multi-turn"] >= 3
    assert m["options"]["multi_turn"] == "skip"
    assert run("validate", str(out), "--student", "meta.llama3-1-8b-instruct-v1:0:128k").exit_code == 0
    _, m2, _ = export(tmp_path, "--mode", "prompt-response", name="nova.jsonl")
    assert "multi-turn" not in m2["counts"]["skipped"]


def test_no_dedupe_and_max_records(tmp_path: Path) -> None:
    _, full, _ = export(tmp_path, "--mode", "prompt-response", "--no-dedupe", name="all.jsonl")
    assert "duplicate" not in full["counts"]["skipped"] and full["dedupe"] == {"enabled": False, "dropped": 0}
    _, m, out = export(tmp_path, "--mode", "prompt-response", "--no-dedupe", "--max-records", "5")
    assert m["requestIds"] == full["requestIds"][:5]
    assert m["counts"]["skipped"]["over-max-records"] == full["counts"]["written"] - 5
    assert m["counts"]["matched"] == m["counts"]["written"] + sum(m["counts"]["skipped"].values())


def test_openai_format(tmp_path: Path) -> None:
    _, m, out = export(tmp_path, "--mode", "prompt-response", "--format", "openai",
                       "--filter", f"@{SUPPORT_FILTER}")
    rows = lines(out)
    assert rows and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    assert rows[0]["messages"][0] == {"role": "system", "content": SAMPLE.records[0]["input"]["inputBodyJson"]
                                      ["system"][0]["text"]}


def _bad_logs(root: Path) -> list[str]:
    """The query issue's bad inputs: a non-JSON line, a non-object line, a record
    missing required fields, an empty file; plus two good records."""
    good = [SAMPLE.records[1], SAMPLE.records[2]]
    folder = root / generate.LAYOUT / "2025" / "06" / "01" / "00"
    folder.mkdir(parents=True)
    (folder / "good.json.gz").write_bytes(gzip.compress(
        (json.dumps(good[0]) + "\nnot json at all\n[1, 2]\n"
         + json.dumps({k: v for k, v in good[1].items() if k != "requestId"}) + "\n").encode()))
    (folder / "empty.json.gz").write_bytes(gzip.compress(b""))
    (folder / "plain.jsonl").write_text(json.dumps(good[1]) + "\n")
    return [good[0]["requestId"], good[1]["requestId"]]


def test_bad_inputs_are_counted_named_and_export_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    ids = _bad_logs(src)
    result, m, out = export(tmp_path, "--mode", "prompt-response", sources=(str(src),))
    assert m["requestIds"] == sorted(ids, key=lambda i: (BY_ID[i]["timestamp"], i))
    assert m["counts"]["written"] == 2
    assert m["counts"]["malformed"] == 3
    named = {(Path(p["file"]).name, p["line"]) for p in m["problems"]}
    assert named == {("good.json.gz", 2), ("good.json.gz", 3), ("good.json.gz", 4)}
    assert "good.json.gz:2" in result.stderr and "good.json.gz:4" in result.stderr


def test_corrupt_gzip_is_counted_and_named(tmp_path: Path) -> None:
    src = tmp_path / "logs"
    ids = _bad_logs(src)
    folder = next(src.rglob("good.json.gz")).parent
    (folder / "corrupt.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    result, m, out = export(tmp_path, "--mode", "prompt-response", sources=(str(src),))
    assert m["counts"]["written"] == len(ids)
    assert any(Path(p["file"]).name == "corrupt.json.gz" for p in m["problems"])
    assert m["counts"]["malformed"] == 4 and "corrupt.json.gz" in result.stderr


def test_failed_export_leaves_no_file(tmp_path: Path) -> None:
    from logtap.converters.export import ExportOptions, export_records

    class Boom:
        filter = None
        report = None

        def records(self) -> Any:
            yield SAMPLE.records[1]
            raise RuntimeError("disk on fire")

    target = tmp_path / "train.jsonl"
    with pytest.raises(RuntimeError):
        export_records(Boom(), ExportOptions(output=str(target)))
    assert list(tmp_path.iterdir()) == []


def test_output_folder_must_exist(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", str(SAMPLES), "--mode", "prompt-only", "-o",
                                      str(tmp_path / "nope" / "x.jsonl")])
    assert result.exit_code == 1 and "does not exist" in result.output + result.stderr


def test_validate_reports_line_numbers(tmp_path: Path) -> None:
    good = {"schemaVersion": "bedrock-conversation-2024", "messages": [
        {"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "hello"}]}]}
    rows = [
        json.dumps(good),
        json.dumps({**good, "schemaVersion": "bedrock-conversion-2024"}),
        json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": [
            {"role": "assistant", "content": [{"text": "x"}]}]}),
        "{broken",
        json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": "AAAA"}}}]}]}),
        json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": [
            {"role": "user", "content": [{"text": "a"}]}, {"role": "assistant", "content": [{"text": "b"}]},
            {"role": "user", "content": [{"text": "User: c"}]}]}),
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(rows) + "\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    out = result.output
    assert f"{path}:2: schemaVersion" in out
    assert f"{path}:3: messages[0]: roles must alternate" in out
    assert f"{path}:4: not valid JSON" in out
    assert f"{path}:5: messages[0].content[0]: image source must be s3Location" in out
    assert f"{path}:1:" not in out and f"{path}:6:" not in out
    assert "at least 100" in result.stderr  # a warning, not a problem
    llama = run("validate", str(path), "--student", "meta.llama3-1-8b-instruct-v1:0")
    assert f"{path}:6: meta students take single-turn records only" in llama.output
    nova = run("validate", str(path), "--student", "amazon.nova-pro-v1:0")
    assert f"{path}:6: messages[2].content[0]: text contains 'User:'" in nova.output


def test_validate_record_count_is_a_warning_only(tmp_path: Path) -> None:
    line = json.dumps({"schemaVersion": "bedrock-conversation-2024", "messages": [
        {"role": "user", "content": [{"text": "hi"}]}]}).encode() + b"\n"
    report = validate_lines([line] * 15_001)
    assert report.ok and report.records == 15_001 and "at most 15000" in report.warnings[0]


# -- S3 in and out through moto's server ---------------------------------------------------------
def _upload(client: Any, bucket: str) -> None:
    for path in sorted(SAMPLES.rglob("*")):
        if path.is_file():
            client.put_object(Bucket=bucket, Key=str(path.relative_to(SAMPLES)), Body=path.read_bytes())


def test_s3_in_and_out_matches_local(tmp_path: Path, s3_client: Any, s3_bucket: str) -> None:
    _upload(s3_client, s3_bucket)
    dest = f"{s3_bucket}-out"
    s3_client.create_bucket(Bucket=dest)
    # the offloaded body's inputBodyS3Path names Bedrock's bucket, which does not exist yet
    result = run("export", f"s3://{s3_bucket}", "--mode", "prompt-response", "-o", f"s3://{dest}/x.jsonl",
                 "--manifest", str(tmp_path / "missing.json"))
    missing = json.loads((tmp_path / "missing.json").read_text())
    assert missing["counts"]["skipped"]["body-unavailable"] == 1
    assert "_input.json.gz unavailable" in result.stderr
    s3_client.create_bucket(Bucket=generate.BUCKET)
    for key, data in SAMPLE.data.items():
        s3_client.put_object(Bucket=generate.BUCKET, Key=key, Body=data)
    _, local_m, local_out = export(tmp_path, "--mode", "prompt-response", name="local.jsonl")
    for source in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/AWSLogs"):
        result = run("export", source, "--mode", "prompt-response", "-o", f"s3://{dest}/out/train.jsonl",
                     "--manifest", f"s3://{dest}/out/manifest.json")
        assert result.exit_code == 0, result.output + result.stderr
        body = s3_client.get_object(Bucket=dest, Key="out/train.jsonl")["Body"].read()
        assert body == local_out.read_bytes()
        m = json.loads(s3_client.get_object(Bucket=dest, Key="out/manifest.json")["Body"].read())
        assert m["counts"] == local_m["counts"] and m["requestIds"] == local_m["requestIds"]
        assert all(o.startswith(f"s3://{s3_bucket}/AWSLogs/") for o in m["sourceObjects"])


def test_s3_multipart_completes_only_on_success(s3_client: Any, s3_bucket: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from logtap.converters import outputs

    chunk = (b"x" * 1023 + b"\n") * 1024  # 1 MiB
    with outputs.Output(f"s3://{s3_bucket}/big.jsonl", s3_client=s3_client) as out:
        for _ in range(13):
            out.write(chunk)
    assert len(out._parts) == 2  # an 8 MiB part, then the 5 MiB rest
    body = s3_client.get_object(Bucket=s3_bucket, Key="big.jsonl")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == out.sha256.hexdigest() and len(body) == 13 << 20

    with pytest.raises(RuntimeError), outputs.Output(f"s3://{s3_bucket}/half.jsonl", s3_client=s3_client) as out2:
        for _ in range(9):
            out2.write(chunk)
        raise RuntimeError("crash after one part")
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="half")
    assert listed.get("KeyCount", 0) == 0
    assert not s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")


def test_demo_runs(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run([sys.executable, str(ROOT / "samples" / "demo.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "written" in proc.stdout and "skipped: teacher-mismatch" in proc.stdout
    shutil.rmtree(tmp_path, ignore_errors=True)
