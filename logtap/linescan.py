"""The selective reader: local log files, a filter that names values every match must contain.

Most of the cost of reading invocation logs is inflating the gzip and parsing every line. When the
filter is selective (``project = code-review``), every record it can select contains the tag's value
as plain bytes, so this reader inflates each file with ISA-L (``isal``; zlib where it is not
installed), finds the lines that contain one of those values with a substring search over the whole
file, and parses only them. Everything after that is exact: the line is parsed, checked
(``engine._line_problem``) and classified, and the filter, time range, model and operation are
evaluated on the parsed record with the same semantics as the DuckDB views (odd timestamps and
non-string tag values are cast by DuckDB itself).

It is used only where that holds (``plan``): every ``equals`` value a match depends on is made of
characters JSON writers write as they are (ASCII letters, digits, space and ``. _ : = + $ @ -``; a
``/`` is looked for both as is and as ``\\/``), so its bytes are in every writer's output. A line that cannot contain such a value cannot match, so it is counted
as scanned and not parsed: its problems, if it has any, are not looked for (``logtap stats`` reads
every line). Files that do not inflate cleanly are read tolerantly, as the DuckDB path does.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from logtap.filters import AndAll, Equals, Filter, OrAll
from logtap.gzipped import MAGIC, TRUNCATED, inflate
from logtap.models import normalize_model_id
from logtap.timerange import TimeRange

_decompress: Callable[[bytes], bytes]  #: every member of a gzip file, strictly
try:  # ISA-L inflates about 2.5x faster than zlib; the reader is exact either way
    from isal import igzip as _igzip

    _decompress = _igzip.decompress
except ImportError:  # pragma: no cover - isal is a dependency; a platform without its wheel
    import gzip

    _decompress = gzip.decompress

#: Bytes a filter value (Bedrock allows letters, digits, whitespace and ``. _ : / = + $ @ -``) may be
#: made of for JSON writers to write it as is; ``/`` may also be written ``\/``, other whitespace escaped.
_PLAIN = re.compile(rb"[A-Za-z0-9 _.:/=+$@-]+")
#: Bedrock's timestamp form; anything else is cast by DuckDB (exactly as the views do).
_ISO_Z = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):([0-5]\d):([0-5]\d)(?:\.(\d{1,6}))?Z")
_EPOCH = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)
_REQUIRED = ("requestId", "timestamp", "operation", "modelId")


def needles(flt: Filter | None) -> frozenset[bytes] | None:
    """Values of which every record ``flt`` selects contains at least one (as bytes), or None if
    there is no such set (no filter, a ``notEquals`` alone, a value that JSON writers may escape)."""
    if isinstance(flt, Equals):
        raw = flt.value.encode("utf-8")
        if not _PLAIN.fullmatch(raw):
            return None
        return frozenset([raw, raw.replace(b"/", b"\\/")])
    if isinstance(flt, AndAll):
        options = [n for n in (needles(item) for item in flt.items) if n is not None]
        return min(options, key=len) if options else None  # any one child's set will do: the smallest
    if isinstance(flt, OrAll):
        union: set[bytes] = set()
        for item in flt.items:
            n = needles(item)
            if n is None:
                return None
            union |= n
        return frozenset(union)
    return None  # NotEquals, or no filter


@dataclass(frozen=True)
class Plan:
    """What a scan selects, in the reader's terms."""

    needles: frozenset[bytes]
    filter: Filter
    since_us: int | None
    until_us: int | None
    models: frozenset[str]
    operations: frozenset[str]
    lines: bool

    @classmethod
    def of(cls, flt: Filter | None, rng: TimeRange, models: Sequence[str], operations: Sequence[str],
           lines: bool) -> Plan | None:
        found = needles(flt)
        if found is None or flt is None:
            return None
        return cls(found, flt, _us(rng.since), _us(rng.until), frozenset(normalize_model_id(m) for m in models),
                   frozenset(operations), lines)


def _us(value: datetime | None) -> int | None:
    return None if value is None else (value.replace(tzinfo=None) - _EPOCH) // _ONE_US


@dataclass
class Bad:
    """A line that is not a selectable record: where it is, its class and what it holds."""

    line: int
    cls: str  #: "problem" (``reason`` says why), "malformed" or "not-a-log-record"
    row: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class FileScan:
    """What reading one file gave."""

    scanned: int = 0
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    bad: list[Bad] = field(default_factory=list)


def readable_text(data: bytes) -> tuple[bytes, list[tuple[int | None, str]]]:
    """The complete lines of a log file's bytes (inflated if gzip) and what was wrong with the rest:
    ``(line or None, reason)``; a truncated member's incomplete last line is left out."""
    if data[:2] != MAGIC:
        return data, []
    try:
        return _decompress(data), []
    except Exception:
        pass
    inflated = inflate(data)
    text = inflated.text
    problems: list[tuple[int | None, str]] = []
    if inflated.error not in (None, TRUNCATED):
        problems.append((None, str(inflated.error)))
    if inflated.error is not None:
        cut = text.rfind(b"\n") + 1
        tail = text[cut:]
        text = text[:cut]
        if tail.strip():
            problems.append((text.count(b"\n") + 1, "truncated gzip member: the last line is incomplete"))
        elif not problems:
            problems.append((None, "truncated gzip member after the last complete line"))
    return text, problems


def survey(text: bytes) -> tuple[int, list[int]]:
    """(non-blank lines, as DuckDB's NDJSON reader counts records; offsets of the lines that are not
    one ``{...}`` each: cut short, not JSON objects, padded). Odd lines are parsed like candidates,
    so a corrupt line is reported whether or not it could match."""
    if not text:
        return 0, []
    if text[:1] == b"{" and (text.endswith(b"}\n") or text.endswith(b"}")):
        # Every newline between a "}" and a "{" (or the end): one memchr per line (``bytes.find`` of
        # one byte) is about 6x quicker here than ``bytes.count`` plus a regular expression over
        # the whole text, since log lines are long (measured 1.7 -> 10.5 GB/s).
        find = text.find
        last = len(text) - 1
        lines = 0
        pos = find(b"\n")
        while pos != -1:
            if text[pos - 1] != 125 or (pos != last and text[pos + 1] != 123):  # "}" before, "{" after
                break
            lines += 1
            pos = find(b"\n", pos + 1)
        else:
            return lines + (0 if text[-1] == 10 else 1), []
    lines = 0
    odd = []
    pos = 0
    for seg in text.split(b"\n"):
        stripped = seg.strip()
        if stripped:
            lines += 1
            if stripped[:1] != b"{" or stripped[-1:] != b"}":
                odd.append(pos)
        pos += len(seg) + 1
    return lines, odd


def candidate_starts(text: bytes, values: Iterable[bytes]) -> list[int]:
    """Offsets of the lines of ``text`` containing any of ``values``, in order."""
    starts: set[int] = set()
    find, rfind = text.find, text.rfind
    for value in values:
        pos = find(value)
        while pos != -1:
            start = rfind(b"\n", 0, pos) + 1
            starts.add(start)
            end = find(b"\n", pos)
            if end == -1:
                break
            pos = find(value, end)
    return sorted(starts)


def as_varchar(value: Any) -> Any:
    """A scalar as DuckDB's JSON-to-VARCHAR cast gives it (None stays None); floats are left to DuckDB."""
    if value is None or type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    return Deferred(value)


class Deferred:
    """A value whose DuckDB cast is looked up in one query per file (rare: floats, nested values)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def as_text(value: Any) -> Any:
    """``as_varchar`` for the envelope: a value DuckDB would cast by its JSON text."""
    v = as_varchar(value)
    return orjson.dumps(value).decode() if isinstance(v, Deferred) else v


def duck_casts(timestamps: list[str], scalars: list[Any]) -> tuple[list[int | None], list[str | None]]:
    """DuckDB's own ``epoch_us(try_cast(t AS TIMESTAMP))`` and JSON-to-VARCHAR casts, in one connection."""
    import duckdb

    con = duckdb.connect()
    try:
        ts = [r[0] for r in con.execute(
            "SELECT epoch_us(try_cast(t AS TIMESTAMP)) FROM unnest(?::VARCHAR[]) WITH ORDINALITY u(t, i) ORDER BY i",
            [timestamps]).fetchall()] if timestamps else []
        vals = [r[0] for r in con.execute(
            "SELECT json_transform(v::JSON, '\"VARCHAR\"') FROM unnest(?::VARCHAR[]) WITH ORDINALITY u(v, i) "
            "ORDER BY i", [[orjson.dumps(s).decode() for s in scalars]]).fetchall()] if scalars else []
    finally:
        con.close()
    return ts, vals


def _epoch_us(ts: Any) -> int | None:
    """Microseconds since the epoch of a timestamp in Bedrock's form, else None."""
    m = _ISO_Z.fullmatch(ts) if type(ts) is str else None
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    base = _HOURS.get(ts[:13])
    if base is None:
        try:
            base = (datetime(int(y), int(mo), int(d), int(h)) - _EPOCH) // _ONE_US
        except ValueError:
            return None
        if len(_HOURS) > 100_000:
            _HOURS.clear()
        _HOURS[ts[:13]] = base
    return base + (int(mi) * 60 + int(s)) * 1_000_000 + (int(frac.ljust(6, "0")) if frac else 0)


#: ``YYYY-MM-DDTHH`` -> microseconds since the epoch of that hour (logs come an hour folder at a time).
_HOURS: dict[str, int] = {}


def scan_text(text: bytes, source: str, plan: Plan, line_problem: Callable[[Any], str | None]) -> FileScan:
    """Read the candidate lines of one file's ``text``; ``source`` is the file named in ``_source``."""
    scanned, odd = survey(text)
    out = FileScan(scanned=scanned)
    pending: list[tuple[int, bytes, dict[str, Any]]] = []  # (offset, line, record)

    at = [0, 1]  # (offset, its line): offsets are asked for in ascending order, one pass at a time

    def line_of(offset: int) -> int:
        if offset < at[0]:
            at[:] = [0, 1]
        at[1] += text.count(b"\n", at[0], offset)
        at[0] = offset
        return at[1]

    find = text.find
    starts = candidate_starts(text, plan.needles)
    for start in sorted(set(starts).union(odd)) if odd else starts:
        end = find(b"\n", start)
        raw = text[start:end] if end != -1 else text[start:]
        if not raw.strip():
            continue
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            out.bad.append(Bad(line_of(start), "problem", reason=f"not valid JSON ({exc})"))
            out.scanned -= 1  # not a record read (as where DuckDB's reader stops at it)
            continue
        why = line_problem(rec)
        if why:
            out.bad.append(Bad(line_of(start), "problem", reason=why))
            out.scanned -= 1
            continue
        pending.append((start, raw, rec))
    # DuckDB's casts for what is not in Bedrock's own form (one query for the whole file; rare)
    stamps = [_epoch_us(rec.get("timestamp")) for _, _, rec in pending]
    odd_ts = [as_text(rec.get("timestamp")) for (_, _, rec), us in zip(pending, stamps, strict=True)
              if us is None and rec.get("timestamp") is not None]
    odd_vals = [v for _, _, rec in pending for v in deferred_tags(rec.get("requestMetadata"))]
    ts_cast, val_cast = duck_casts(odd_ts, odd_vals) if (odd_ts or odd_vals) else ([], [])
    ts_iter, val_iter = iter(ts_cast), iter(val_cast)
    for (start, raw, rec), us in zip(pending, stamps, strict=True):
        if us is None and rec.get("timestamp") is not None:
            us = next(ts_iter)
        meta = tags_map(rec.get("requestMetadata"), val_iter)
        rid, op, model = rec.get("requestId"), rec.get("operation"), rec.get("modelId")
        schema = rec.get("schemaType")
        if not (type(rid) is str and type(op) is str and type(model) is str and us is not None
                and (schema is None or schema == "ModelInvocationLog")):  # else: the general rules
            envelope = {k: as_text(rec.get(k)) for k in _REQUIRED}
            rid, op, model = envelope["requestId"], envelope["operation"], envelope["modelId"]
            if us is None or rid is None or op is None or model is None:
                out.bad.append(Bad(line_of(start), "malformed", envelope))
                continue
            schema = as_text(schema)
            if schema is not None and schema != "ModelInvocationLog":
                out.bad.append(Bad(line_of(start), "not-a-log-record", envelope))
                continue
        if not _matches(plan, meta, us, op, model):
            continue
        rec.pop("_logtap_line", None)
        number = line_of(start) if plan.lines else None
        rec["_source"] = {"file": source, "line": number}
        out.rows.append(((us, rid, source, number or 0, zlib.crc32(raw)), rec))
    return out


def deferred_tags(meta: Any) -> list[Any]:
    """The values of a ``requestMetadata`` object that only DuckDB can cast to its MAP's VARCHAR."""
    if type(meta) is not dict:
        return []
    for v in meta.values():
        if type(v) is not str:
            return [v for v in meta.values() if isinstance(as_varchar(v), Deferred)]
    return []


def tags_map(meta: Any, casts: Iterator[str | None]) -> dict[str, Any] | None:
    """``requestMetadata`` as DuckDB's ``MAP(VARCHAR, VARCHAR)`` holds it; ``casts`` yields DuckDB's
    casts of its ``deferred_tags``, in order."""
    if type(meta) is not dict:
        return None
    for v in meta.values():
        if type(v) is not str:
            break
    else:
        return meta
    out = {}
    for k, v in meta.items():
        value = as_varchar(v)
        out[k] = next(casts) if isinstance(value, Deferred) else value
    return out


def _matches(plan: Plan, meta: dict[str, Any] | None, us: int, operation: Any, model: Any) -> bool:
    if not plan.filter.evaluate(meta):
        return False
    if plan.since_us is not None and us < plan.since_us:
        return False
    if plan.until_us is not None and us >= plan.until_us:
        return False
    if plan.models and normalize_model_id(str(model)) not in plan.models:
        return False
    return not (plan.operations and operation not in plan.operations)


__all__ = ["Bad", "Deferred", "FileScan", "Plan", "as_text", "as_varchar", "deferred_tags", "duck_casts", "needles",
           "readable_text", "scan_text", "survey", "tags_map"]
