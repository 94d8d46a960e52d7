"""Accounting: whatever the records and options, nothing is lost and everything written validates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from logtap.converters.export import ExportOptions, export_records
from logtap.converters.shaping import Shaping
from logtap.converters.validate import rules_for, validate_lines

GOLDEN = [json.loads(p.read_text())["record"] for p in sorted((Path(__file__).parent / "golden").glob("*.json"))]
STUDENTS = [None, "amazon.nova-lite-v1:0:300k", "amazon.nova-micro-v1:0:128k", "meta.llama3-1-8b-instruct-v1:0:128k",
            "anthropic.claude-3-haiku-20240307-v1:0:200k"]


class Records:
    filter = None
    report = None

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self._records = records

    def records(self) -> Any:
        return iter(self._records)


@settings(max_examples=60, deadline=None)
@given(picks=st.lists(st.integers(0, len(GOLDEN) - 1), max_size=40),
       mode=st.sampled_from(["prompt-only", "prompt-response"]), student=st.sampled_from(STUDENTS),
       media=st.sampled_from([None, "keep"]), tool_use=st.sampled_from([None, "keep"]),
       reasoning=st.sampled_from([None, "keep", "skip"]), dedupe=st.booleans(),
       max_records=st.one_of(st.none(), st.integers(0, 10)),
       teacher=st.sampled_from([None, "amazon.nova-pro-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0"]))
def test_nothing_lost_and_every_line_validates(tmp_path_factory: Any, picks: list[int], mode: str,
                                               student: str | None, media: str | None, tool_use: str | None,
                                               reasoning: str | None, dedupe: bool, max_records: int | None,
                                               teacher: str | None) -> None:
    records = []
    for i, n in enumerate(picks):
        rec = copy.deepcopy(GOLDEN[n])
        rec["requestId"] = f"{i:08d}-{rec['requestId'][9:]}"
        records.append(rec)
    shaping = Shaping.for_student(student, mode=mode, media=media, tool_use=tool_use, reasoning=reasoning,
                                  teacher=teacher)
    out = tmp_path_factory.mktemp("acct") / "out.jsonl"
    result = export_records(Records(records), ExportOptions(output=str(out), shaping=shaping, dedupe=dedupe,
                                                            max_records=max_records))
    counts = result.counts
    assert counts["matched"] == len(records)
    assert counts["matched"] == counts["written"] + sum(counts["skipped"].values())
    if max_records is not None:
        assert counts["written"] <= max_records
    data = out.read_bytes().splitlines(keepends=True)
    assert len(data) == counts["written"] == len(result.request_ids)
    report = validate_lines(data, rules_for(student))
    assert report.ok, report.problems
    final = "user" if mode == "prompt-only" else "assistant"
    assert all(json.loads(line)["messages"][-1]["role"] == final for line in data)
