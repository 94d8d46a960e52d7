"""``logtap export``: engine records -> normalize -> shape/skip -> dedupe -> max-records -> write -> manifest.

Every matched record ends either written or skipped with exactly one named reason, so
``matched == written + sum(skipped)`` always holds; the engine's unreadable files and lines are
``malformed``. Output is deterministic: records arrive ordered by (timestamp, requestId), lines
are compact JSON in a fixed key order, and the manifest holds no clock time, so the same export
run twice gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import orjson

from logtap import engine
from logtap._version import __version__
from logtap.converters import bedrock_conversation, openai_chat, validate
from logtap.converters.model import Conversation, Example, Unsupported
from logtap.converters.normalize import normalize
from logtap.converters.outputs import Output, write_bytes
from logtap.converters.shaping import Shaping, shape
from logtap.converters.validate import MAX_RECORDS, MIN_RECORDS, check_record
from logtap.errors import DataError, FilterError

log = logging.getLogger("logtap.export")

Format = Literal["bedrock", "openai"]
WRITERS: dict[str, Callable[[Example], dict[str, Any]]] = {
    bedrock_conversation.NAME: bedrock_conversation.record,
    openai_chat.NAME: openai_chat.record,
}


class RecordSource(Protocol):
    """What export needs from ``logtap.engine.LogSet``."""

    @property
    def filter(self) -> Any: ...

    @property
    def report(self) -> Any: ...

    def records(self) -> Iterable[dict[str, Any]]: ...


@dataclass(frozen=True)
class ExportOptions:
    output: str
    shaping: Shaping = field(default_factory=Shaping)
    format: Format = "bedrock"
    dedupe: bool = True
    max_records: int | None = None
    manifest: str | None = None


@dataclass
class ExportResult:
    counts: dict[str, Any]
    request_ids: list[str]
    sha256: str
    bytes: int
    warnings: list[str]
    manifest: dict[str, Any]
    problems: list[dict[str, Any]] = field(default_factory=list)


def document_key(doc: dict[str, Any], mode: str) -> bytes:
    """The dedupe key of a written record (either writer's shape): a digest of its prompt (system and
    prompt turns)."""
    messages = doc["messages"]
    prompt = messages[:-1] if mode == "prompt-response" else messages
    return hashlib.blake2b(orjson.dumps([doc.get("system"), prompt]), digest_size=16).digest()


def to_document(conversation: Conversation, shaping: Shaping,
                writer: Callable[[Example], dict[str, Any]] = bedrock_conversation.record,
                rules: Any = None) -> dict[str, Any]:
    """shape -> write -> check against ``rules`` (if given): the decision export makes for each record
    (and ``distill plan`` reuses). Raises ``Unsupported`` with the skip reason."""
    doc = writer(shape(conversation, shaping))
    if rules is not None:
        problems = check_record(doc, rules)
        if problems:
            raise Unsupported("fails-validation", problems[0])
    return doc


def _filter_doc(flt: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(Bedrock document or None, logtap's own form, why Bedrock cannot express it)."""
    if flt is None:
        return None, None, None
    from logtap.filters import to_bedrock

    own = flt.to_json() if hasattr(flt, "to_json") else None
    try:
        return to_bedrock(flt), own, None
    except FilterError as exc:
        return None, own, str(exc)


def _report_value(report: Any, name: str, default: Any = 0) -> Any:
    return getattr(report, name, default) if report is not None else default


MAX_MANIFEST_PROBLEMS = 1000


def _problems(report: Any) -> list[dict[str, Any]]:
    out = []
    for p in (_report_value(report, "problems", []) or [])[:MAX_MANIFEST_PROBLEMS]:
        out.append({"file": getattr(p, "file", None), "line": getattr(p, "line", None),
                    "reason": getattr(p, "reason", str(p))})
    return out


def _convert(rec: dict[str, Any], shaping: Shaping, writer: Callable[[Example], dict[str, Any]],
             rules: Any, skipped: Counter[str], source_files: set[str]) -> dict[str, Any] | None:
    """One record -> its output document, or None with the skip reason counted."""
    src = rec.get("_source")
    if isinstance(src, dict) and src.get("file"):
        source_files.add(str(src["file"]))
    try:
        return to_document(normalize(rec), shaping, writer, rules)
    except Unsupported as exc:
        skipped[exc.reason] += 1
        log.debug("skipped %s: %s", rec.get("requestId"), exc)
        return None


def _entries(pairs: Iterable[tuple[Any, dict[str, Any]]], shaping: Shaping, fmt: str, dedupe: bool,
             tally: _Tally) -> Iterator[tuple[Any, tuple[bytes, bytes, str]]]:
    """``(sort key, record)`` -> ``(sort key, (output line, dedupe key, requestId))`` for every record
    written; the others are counted in ``tally``."""
    writer = WRITERS[fmt]
    rules = shaping.rules if fmt == "bedrock" else None
    for key, rec in pairs:
        tally.matched += 1
        doc = _convert(rec, shaping, writer, rules, tally.skipped, tally.source_files)
        if doc is not None:
            line = orjson.dumps(doc) + b"\n"
            yield key, (line, document_key(doc, shaping.mode) if dedupe else b"", str(rec.get("requestId") or ""))


#: Inputs of at least this many bytes (compressed, local files only) are scanned and converted by
#: ``PARALLEL_WORKERS`` processes; smaller ones in this process (the engine's thresholds).
PARALLEL_MIN_BYTES = engine.PARALLEL_MIN_BYTES
PARALLEL_WORKERS = engine.PARALLEL_WORKERS
#: Bytes of output lines a worker holds before writing a sorted run. The parent's merge holds a block
#: of every run, so fewer runs keep it smaller on large inputs; larger runs make the workers bigger
#: (measured, worker / parent peak RSS at 1 GB and 10 GB: 8 MB runs 36 / 49 and 44 / 60 MB, 16 MB
#: runs 47 / 49 and 57 / 58 MB).
WORKER_RUN_BYTES = 16 << 20
#: Bytes of output lines joined into one write.
WRITE_CHUNK = 1 << 20


@dataclass
class _Tally:
    """What converting records counted (merged over worker processes)."""

    matched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    source_files: set[str] = field(default_factory=set)


def _convert_to_spill(records: Iterable[tuple[Any, dict[str, Any]]], spill: Any, shaping: Shaping, fmt: str,
                      dedupe: bool, tally: _Tally) -> None:
    """Convert ``(sort key, record)`` pairs into ``spill`` as ``(key, (line, dedupe key, requestId))``."""
    for key, entry in _entries(records, shaping, fmt, dedupe, tally):
        spill.add(key, entry, len(entry[0]))


def _export_part(part: Any, shaping: Shaping, fmt: str, dedupe: bool, run_dir: str
                 ) -> tuple[list[str], int, dict[str, int], list[int | str], Any]:
    """In a worker process: scan and convert one ``ScanPart``; the sorted runs are left in ``run_dir``."""
    from logtap.spill import sorted_runs, young_gc_only

    tally = _Tally()
    with part.open() as logs, young_gc_only():
        entries = _entries(logs.records_unordered(lines=False), shaping, fmt, dedupe, tally)
        runs = sorted_runs(((key, entry, len(entry[0])) for key, entry in entries), run_dir, WORKER_RUN_BYTES)
        report = logs.report
    index = {f.path: i for i, f in enumerate(part.files)}  # source files go back as positions in the part
    return runs, tally.matched, dict(tally.skipped), [index.get(p, p) for p in tally.source_files], report


def _parallel(logs: Any, parts: Sequence[Any], options: ExportOptions, tally: _Tally) -> Iterator[Any]:
    """Scan and convert ``parts`` in worker processes (``LogSet.in_workers``); their runs merged in
    (timestamp, requestId) order."""
    from logtap.spill import merge_runs

    results = logs.in_workers(parts, "logtap.converters.export:_export_part", options.shaping, options.format,
                              options.dedupe)
    runs: list[str] = []
    for part, (paths, matched, skipped, sources, _) in zip(parts, results, strict=True):
        runs.extend(paths)
        tally.matched += matched
        tally.skipped.update(skipped)
        # the parent's own path strings (a copy of each would be 10 MB per 50k files)
        tally.source_files.update(part.files[i].path if type(i) is int else i for i in sources)
    del results
    return merge_runs(runs)


def _parts(logs: Any) -> Sequence[Any] | None:
    """The shares of ``logs`` to export in worker processes, or None to export in this process."""

    from logtap import workers

    split = getattr(logs, "split", None)
    if not workers.available():
        return None  # an embedded interpreter: no way to start a worker
    total = _report_value(getattr(logs, "report", None), "bytes", 0)
    if PARALLEL_WORKERS < 2 or not callable(split) or not isinstance(total, int) or total < PARALLEL_MIN_BYTES:
        return None
    parts: Sequence[Any] | None = split(PARALLEL_WORKERS)
    return parts


def export_records(
    logs: RecordSource,
    options: ExportOptions,
    *,
    sources: Sequence[str] = (),
    s3_client: Any = None,
) -> ExportResult:
    """Run the export over ``logs`` (a ``LogSet``) and write the output and manifest."""
    shaping = options.shaping
    tally = _Tally()
    skipped = tally.skipped
    request_ids: list[str] = []
    seen: set[bytes] = set()
    duplicates = 0
    oversize = 0
    max_bytes = validate.MAX_FILE_BYTES
    unordered = getattr(logs, "records_unordered", None)
    with Output(options.output, s3_client=s3_client) as out:

        def emit(items: Iterable[tuple[Any, tuple[bytes, bytes, str]]]) -> None:
            nonlocal duplicates, oversize
            batch: list[bytes] = []  # lines are written (and hashed) about 1 MB at a time
            pending = 0
            for _, (line, dkey, rid) in items:
                if options.dedupe:
                    if dkey in seen:
                        skipped["duplicate"] += 1
                        duplicates += 1
                        continue
                    seen.add(dkey)
                if options.max_records is not None and len(request_ids) >= options.max_records:
                    skipped["over-max-records"] += 1
                    continue
                if out.size + pending + len(line) > max_bytes:
                    skipped["over-max-size"] += 1
                    oversize += 1
                    continue
                batch.append(line)
                pending += len(line)
                request_ids.append(rid)
                if pending >= WRITE_CHUNK:
                    out.write(b"".join(batch))
                    batch.clear()
                    pending = 0
            if batch:
                out.write(b"".join(batch))

        parts = _parts(logs) if callable(unordered) else None
        if parts:
            # Fastest: worker processes scan and convert shares of the files; merge their sorted runs.
            emit(_parallel(logs, parts, options, tally))
        elif callable(unordered):
            # Convert records as DuckDB's threads produce them, sort the (much smaller) output lines
            # on disk, then dedupe / cap / write in (timestamp, requestId) order.
            from logtap.spill import SortedSpill, young_gc_only

            spill = SortedSpill(getattr(logs, "_tmp", None))
            try:
                with young_gc_only():
                    _convert_to_spill(unordered(lines=False), spill, shaping, options.format, options.dedupe,
                                      tally)
                    emit(spill)
            finally:
                spill.close()
        else:
            emit((None, item) for item in _in_order(logs.records(), shaping, options, tally))
    matched = tally.matched
    source_files = tally.source_files
    report = logs.report
    written = len(request_ids)
    warnings: list[str] = []
    if written < MIN_RECORDS:
        warnings.append(f"{written} records written: Bedrock recommends at least {MIN_RECORDS} for distillation")
    if written > MAX_RECORDS:
        warnings.append(f"{written} records written: a distillation job takes at most {MAX_RECORDS}; "
                        f"use --max-records {MAX_RECORDS}")
    if oversize:
        warnings.append(f"{oversize} records skipped (over-max-size): with them the output would be larger than "
                        f"{max_bytes:,} bytes, Bedrock's limit for one dataset file")
        log.warning("%s", warnings[-1])
    if options.max_records is not None and options.max_records > MAX_RECORDS:
        warnings.append(f"--max-records {options.max_records} is above Bedrock's {MAX_RECORDS} limit")
    counts: dict[str, Any] = {
        "scanned": int(_report_value(report, "scanned", matched)),
        "matched": matched,
        "written": written,
        "malformed": int(_report_value(report, "malformed", 0)),
        "skipped": dict(sorted(skipped.items())),
    }
    bedrock_filter, own_filter, why = _filter_doc(logs.filter)
    report_files = _report_value(report, "files", None)
    manifest: dict[str, Any] = {
        "logtapVersion": __version__,
        "sources": list(sources),
        "sourceObjects": sorted(source_files),
        "filesScanned": report_files if isinstance(report_files, int) else None,
        "filter": bedrock_filter,
        "localFilter": own_filter if why else None,
        "filterNotExpressible": why,
        "mode": shaping.mode,
        "format": options.format,
        "options": {
            **{k: v for k, v in asdict(shaping).items() if k != "mode"},
            "dedupe": options.dedupe,
            "maxRecords": options.max_records,
            "studentRules": shaping.rules.name,
        },
        "counts": counts,
        "dedupe": {"enabled": options.dedupe, "dropped": duplicates},
        "warnings": warnings,
        "scanSkipped": dict(sorted((_report_value(report, "skipped", {}) or {}).items())),
        "problems": _problems(report),
        "problemsOmitted": max(len(_report_value(report, "problems", []) or []) - MAX_MANIFEST_PROBLEMS, 0),
        "outputs": [{"path": options.output, "sha256": out.sha256.hexdigest(), "bytes": out.size,
                     "records": written}],
        "requestIds": request_ids,
    }
    if options.manifest:
        data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        write_bytes(options.manifest, data, s3_client=s3_client)
    return ExportResult(counts, request_ids, out.sha256.hexdigest(), out.size, warnings, manifest,
                        manifest["problems"])


def _in_order(records: Iterable[dict[str, Any]], shaping: Shaping, options: ExportOptions,
              tally: _Tally) -> Iterator[tuple[bytes, bytes, str]]:
    pairs = ((None, rec) for rec in records)
    return (entry for _, entry in _entries(pairs, shaping, options.format, options.dedupe, tally))


def counts_table(counts: dict[str, Any]) -> str:
    """The counts as an aligned two-column text table (for the CLI and the demo)."""
    rows: list[tuple[str, str]] = [(k, str(counts[k])) for k in ("scanned", "matched", "written", "malformed")]
    for reason, n in counts["skipped"].items():
        rows.append((f"skipped: {reason}", str(n)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v.rjust(8)}" for k, v in rows)


def export(
    sources: Sequence[str],
    *,
    output: str,
    mode: Literal["prompt-only", "prompt-response"] = "prompt-response",
    format: Format = "bedrock",
    teacher: str | None = None,
    student: str | None = None,
    dedupe: bool = True,
    max_records: int | None = None,
    manifest: str | None = None,
    multi_turn: str | None = None,
    tool_use: str | None = None,
    media: str | None = None,
    reasoning: str | None = None,
    keep_truncated: bool | None = None,
    filter: Any = None,
    where: Sequence[str] = (),
    since: Any = None,
    until: Any = None,
    models: Sequence[str] = (),
    operations: Sequence[str] = (),
    session: Any = None,
    profile: str | None = None,
    region: str | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export invocation logs to a training file (the Python form of ``logtap export``).

    ``output`` and ``manifest`` are local paths or ``s3://bucket/key``. Per-student defaults come
    from ``Shaping.for_student(student)``; ``multi_turn`` / ``tool_use`` / ``media`` /
    ``reasoning`` / ``keep_truncated`` override them.
    """
    from logtap.engine import open_logs

    with open_logs(list(sources), filter=filter, where=where, since=since, until=until, models=models,
                   operations=operations, session=session, profile=profile, region=region,
                   progress=progress) as logs:
        return run(logs, sources=sources, output=output, mode=mode, format=format, teacher=teacher,
                   student=student, dedupe=dedupe, max_records=max_records, manifest=manifest,
                   multi_turn=multi_turn, tool_use=tool_use, media=media, reasoning=reasoning,
                   keep_truncated=keep_truncated, session=session, profile=profile, region=region)


def run(logs: RecordSource, *, sources: Sequence[str], output: str, mode: str, format: str = "bedrock",
        teacher: str | None = None, student: str | None = None, dedupe: bool = True,
        max_records: int | None = None, manifest: str | None = None, multi_turn: str | None = None,
        tool_use: str | None = None, media: str | None = None, reasoning: str | None = None,
        keep_truncated: bool | None = None, session: Any = None, profile: str | None = None,
        region: str | None = None) -> ExportResult:
    """``export_records`` with options given as keywords (what the CLI and ``export`` call)."""
    if format not in WRITERS:
        raise DataError(f"unknown format {format!r}; choose from {', '.join(sorted(WRITERS))}")
    if max_records is not None and max_records < 0:
        raise DataError("--max-records must be 0 or more")
    shaping = Shaping.for_student(student, mode=mode, teacher=teacher, multi_turn=multi_turn, tool_use=tool_use,
                                  media=media, reasoning=reasoning, keep_truncated=keep_truncated)
    s3_client = None
    if output.startswith("s3://") or (manifest or "").startswith("s3://"):
        from logtap.s3creds import S3Clients, make_session

        s3_client = S3Clients(make_session(session, profile, region), region)()
    opts = ExportOptions(output=output, shaping=shaping, format=format,  # type: ignore[arg-type]
                         dedupe=dedupe, max_records=max_records, manifest=manifest)
    return export_records(logs, opts, sources=sources, s3_client=s3_client)
