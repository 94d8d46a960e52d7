"""``logtap query --format jsonl`` lines from parsed records, byte for byte as DuckDB writes them.

The query's rows are normally computed by DuckDB (``LogSet.json_line_batches``). For a selective
filter over large local inputs, worker processes read their shares of the files with
``logtap.linescan`` instead (``rows_part``) and this module renders each record as DuckDB's
``json_object(...)::VARCHAR`` does: the envelope fields as logged (cast to text where they are not
strings), ``requestMetadata`` as its ``MAP(VARCHAR, VARCHAR)`` holds it, token counts as integers or
null, compact JSON with control characters escaped as ``\\u00XX`` in upper case.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from logtap.linescan import as_text, deferred_tags, duck_casts, tags_map

if TYPE_CHECKING:  # pragma: no cover
    from logtap.engine import ScanPart, ScanReport

_TEXT = frozenset({"requestId", "timestamp", "operation", "modelId", "accountId", "region"})
_COUNTS = {"inputTokenCount": "input", "outputTokenCount": "output", "cacheReadInputTokenCount": "input",
           "cacheWriteInputTokenCount": "input"}
#: Bytes of lines a worker holds before writing a sorted run.
RUN_BYTES = 2 << 20
#: A ``\\u00XX`` escape (not an escaped backslash followed by ``u00XX``) with a lower-case hex digit.
_LOWER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([0-9a-f]{2})")


def _tags(value: Any) -> Any:
    deferred = deferred_tags(value)
    casts = duck_casts([], deferred)[1] if deferred else []
    return tags_map(value, iter(casts))


def _value(rec: dict[str, Any], column: str) -> Any:
    if column in _TEXT:
        return as_text(rec.get(column))
    if column == "requestMetadata":
        return _tags(rec.get("requestMetadata"))
    section = rec.get(_COUNTS[column])
    return section.get(column) if type(section) is dict else None


def _upper(m: re.Match[bytes]) -> bytes:
    return m.group(1) + b"\\u00" + m.group(2).upper()


def row_line(rec: dict[str, Any], columns: Sequence[str]) -> bytes:
    """One record as the query's JSON line (``columns`` from ``engine.ROW_COLUMNS``)."""
    line = orjson.dumps({c: _value(rec, c) for c in columns})
    return _LOWER_ESCAPE.sub(_upper, line) if b"\\u00" in line else line


def rows_part(part: ScanPart, columns: Sequence[str], run_dir: str) -> tuple[list[str], ScanReport]:
    """In a worker process: the JSON lines of one share's records, as sorted runs in ``run_dir``."""
    from logtap.spill import sorted_runs

    with part.open() as logs:
        lines = ((key, line, len(line)) for key, line in
                 ((key, row_line(rec, columns)) for key, rec in logs.records_unordered(bodies=False)))
        return sorted_runs(lines, run_dir, RUN_BYTES), logs.report


__all__ = ["row_line", "rows_part"]
