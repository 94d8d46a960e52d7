"""Golden tests: one logged record per shape in, the training record (or skip reason) out.

Each ``tests/golden/<shape>.json`` states its input record and, per option set, the exact
expected output line or ``{"skip": reason}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from logtap.converters.export import WRITERS
from logtap.converters.model import Unsupported
from logtap.converters.normalize import normalize
from logtap.converters.registry import registered
from logtap.converters.shaping import Shaping, shape
from logtap.converters.validate import check_record

GOLDEN = Path(__file__).parent / "golden"
CASES = [
    pytest.param(path, i, id=f"{path.stem}-{i}")
    for path in sorted(GOLDEN.glob("*.json"))
    for i in range(len(json.loads(path.read_text())["cases"]))
]


def convert(record: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    fmt = opts.pop("format", "bedrock")
    mode = opts.pop("mode")
    student = opts.pop("student", None)
    shaping = Shaping.for_student(student, mode=mode, **opts)
    try:
        doc = WRITERS[fmt](shape(normalize(record), shaping))
    except Unsupported as exc:
        return {"skip": exc.reason}
    if fmt == "bedrock":
        assert check_record(doc, shaping.rules) == []
    return doc


@pytest.mark.parametrize(("path", "index"), CASES)
def test_golden(path: Path, index: int) -> None:
    doc = json.loads(path.read_text())
    case = doc["cases"][index]
    assert convert(doc["record"], case["options"]) == case["expect"]


def test_every_provider_shape_has_a_golden_file() -> None:
    formats = {fmt for _, fmt in registered()}
    covered = set()
    for path in GOLDEN.glob("*.json"):
        record = json.loads(path.read_text())["record"]
        try:
            covered.add(normalize(record).body_format)
        except Unsupported:
            pass
    assert formats - covered <= {"mistral-chat"}, formats - covered


def test_every_stream_reassembler_is_exercised() -> None:
    streamed = set()
    for path in GOLDEN.glob("*.json"):
        record = json.loads(path.read_text())["record"]
        out = (record.get("output") or {}).get("outputBodyJson")
        if isinstance(out, list):
            try:
                streamed.add(normalize(record).body_format)
            except Unsupported as exc:  # a stream that failed mid-way is named, not reassembled
                assert exc.reason == "error", path
    assert {"anthropic-messages", "anthropic-text", "llama", "nova", "titan", "mistral", "converse"} <= streamed
