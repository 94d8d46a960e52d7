"""Resolve SOURCE arguments (folders, files, ``s3://`` URIs) to the log files to scan.

Bedrock's layout is ``<prefix>/AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/``.
A source may point at any level of it. With a time range only the hour folders in range (plus one
hour of slack each side) are listed or walked. Objects under ``data/`` (offloaded bodies),
permission-check markers and files that are not ``*.json.gz`` / ``*.json`` / ``*.jsonl`` are skipped
and counted, never parsed as records.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from logtap.errors import SourceError
from logtap.timerange import TimeRange

LOG_SUFFIXES = (".json.gz", ".json", ".jsonl", ".jsonl.gz", ".ndjson")
LAYOUT_MARKER = "BedrockModelInvocationLogs"


@dataclass(frozen=True)
class LogFile:
    """One log file: a local path or an ``s3://bucket/key`` URI, with its size in bytes."""

    path: str
    size: int

    @property
    def is_s3(self) -> bool:
        return self.path.startswith("s3://")


@dataclass
class Resolved:
    files: list[LogFile] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key): logtap's one parser of S3 URIs."""
    if not uri.startswith("s3://"):
        raise SourceError(f"not an S3 URI: {uri!r}; write it as s3://bucket/prefix")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise SourceError(f"{uri!r} has no bucket name; use s3://bucket/prefix")
    return bucket, key


def date_parts(components: Sequence[str]) -> tuple[int, ...] | None:
    """The ``YYYY/MM/DD/HH`` ints following ``BedrockModelInvocationLogs/<region>/`` in a path."""
    try:
        i = list(components).index(LAYOUT_MARKER)
    except ValueError:
        return None
    parts: list[int] = []
    for comp in components[i + 2: i + 6]:
        if not comp.isdigit():
            break
        parts.append(int(comp))
    return tuple(parts)


def classify(name: str, components: Sequence[str], root_depth: int = 0) -> str | None:
    """None for a log file, else the reason it is skipped.

    ``components`` is the file's path (folders, then ``name``). Only folders below Bedrock's
    ``BedrockModelInvocationLogs/<region>/`` (or, outside that layout, below the first
    ``root_depth`` components: the source the user gave) can be Bedrock's ``data/`` folder, so
    a source under a folder or key prefix that happens to be called ``data`` is still read.
    """
    folders = list(components[:-1])
    if LAYOUT_MARKER in folders:
        folders = folders[folders.index(LAYOUT_MARKER) + 2:]
    else:
        folders = folders[root_depth:]
    if "data" in folders:
        return "data-object"
    return _name_reason(name)


def _hour_ok(parts: tuple[int, ...] | None, rng: TimeRange) -> bool:
    if not rng.bounded or not parts:
        return True
    if len(parts) < 4:
        return rng.prefix_may_match(parts)
    try:
        hour = datetime(parts[0], parts[1], parts[2], parts[3], tzinfo=timezone.utc)
    except ValueError:
        return True
    return rng.hour_in_range(hour)


# -- local ----------------------------------------------------------------------------------------
def _resolve_local(source: str, rng: TimeRange, out: Resolved) -> None:
    root = Path(source).expanduser()
    if root.is_file():
        out.files.append(LogFile(str(root), root.stat().st_size))
        return
    if not root.is_dir():
        raise SourceError(f"source {source!r} does not exist; give a folder, a log file or s3://bucket/prefix")
    comps = Path(os.path.abspath(root)).parts
    _walk_local(str(root), comps, len(comps), rng, out)


def _walk_local(folder: str, comps: tuple[str, ...], root_depth: int, rng: TimeRange, out: Resolved) -> None:
    """One folder: its files (in name order, as ``os.walk`` lists them), then its sub-folders in name
    order; what depends on the folder alone (``data/``, the hour) is worked out once per folder."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    parts = date_parts(comps)
    hour_ok = _hour_ok(parts, rng)
    in_data = classify("x.json.gz", (*comps, "x.json.gz"), root_depth) == "data-object"
    subfolders = []
    for entry in entries:
        if entry.is_dir():
            if entry.is_symlink():
                continue  # as os.walk: a linked folder is not followed (no cycles)
            sub = (*comps, entry.name)
            sub_parts = date_parts(sub)
            if not (sub_parts and not rng.prefix_may_match(sub_parts)):
                subfolders.append((entry.path, sub))
            continue
        name = entry.name
        reason = "data-object" if in_data else _name_reason(name)
        if reason:
            out.skipped[reason] += 1
        elif hour_ok:
            out.files.append(LogFile(entry.path, entry.stat().st_size))
    for path, sub in subfolders:
        _walk_local(path, sub, root_depth, rng, out)


def _name_reason(name: str) -> str | None:
    """``classify`` for a file outside a ``data/`` folder."""
    lower = name.lower()
    if "permission-check" in lower:
        return "not-a-log-record"
    return None if lower.endswith(LOG_SUFFIXES) else "not-a-log-file"


# -- S3 -------------------------------------------------------------------------------------------
def s3_error(exc: Exception, what: str) -> SourceError:
    """A one-line SourceError with the fix, for a boto3 error while reading ``what``."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return SourceError(f"no AWS credentials to read {what}: run `aws configure` / `aws sso login`, or pass "
                           "--profile")
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"cannot reach S3 for {what}: {exc}. Check your network, --region and "
                           "AWS_ENDPOINT_URL_S3")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404"):
            return SourceError(f"bucket of {what} does not exist ({code}); check the s3:// URI and --region")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return SourceError(f"access denied reading {what} ({code}); check --profile and that the role may "
                               "s3:ListBucket and s3:GetObject there")
        return SourceError(f"cannot read {what}: {code or exc}")
    return SourceError(f"cannot read {what}: {exc}")


def _list(client: Any, bucket: str, prefix: str, delimiter: bool = False) -> Iterable[dict[str, Any]]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter:
        kwargs["Delimiter"] = "/"
    yield from client.get_paginator("list_objects_v2").paginate(**kwargs)


def _find_roots(client: Any, bucket: str, prefix: str, depth: int = 0) -> list[str]:
    """Prefixes ``.../BedrockModelInvocationLogs/<region>/`` at or below ``prefix``."""
    comps = prefix.split("/")
    if LAYOUT_MARKER in comps:
        i = comps.index(LAYOUT_MARKER)
        if len(comps) > i + 2:
            return ["/".join(comps[: i + 2]) + "/"]
    if depth > 6:
        return []
    roots: list[str] = []
    for page in _list(client, bucket, prefix, delimiter=True):
        for cp in page.get("CommonPrefixes", []):
            sub = cp["Prefix"]
            roots.extend(_find_roots(client, bucket, sub, depth + 1))
    return roots


def _add_keys(pages: Iterable[dict[str, Any]], bucket: str, rng: TimeRange, out: Resolved,
              root_depth: int = 0) -> None:
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):
                continue
            comps = key.split("/")
            reason = classify(comps[-1], comps, root_depth)
            if reason:
                out.skipped[reason] += 1
            elif _hour_ok(date_parts(comps[:-1]), rng):
                out.files.append(LogFile(f"s3://{bucket}/{key}", int(obj.get("Size", 0))))


def _resolve_s3(uri: str, rng: TimeRange, client: Any, out: Resolved, now: datetime | None) -> None:
    bucket, prefix = split_s3(uri)
    try:
        if prefix and prefix.lower().endswith(LOG_SUFFIXES):
            head = client.head_object(Bucket=bucket, Key=prefix)
            out.files.append(LogFile(uri, int(head.get("ContentLength", 0))))
            return
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        client.head_bucket(Bucket=bucket)
        depth = prefix.count("/")  # the folders of the source prefix itself (``prefix`` ends with "/")
        roots = _find_roots(client, bucket, prefix) if rng.since is not None else []
        if not roots:
            _add_keys(_list(client, bucket, prefix), bucket, rng, out, depth)
            return
        for root in roots:
            for hp in rng.hour_prefixes(now):
                p = root + hp
                if p.startswith(prefix) or prefix.startswith(p):
                    _add_keys(_list(client, bucket, max(p, prefix, key=len)), bucket, rng, out, depth)
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, (BotoCoreError, ClientError)):
            raise s3_error(exc, uri) from exc
        raise


def resolve(sources: Sequence[str], rng: TimeRange, s3_client: Callable[[], Any],
            now: datetime | None = None) -> Resolved:
    """All log files of ``sources`` (deduplicated, in source order), plus skip counts."""
    if not sources:
        raise SourceError("no SOURCE given: pass a folder, a log file or s3://bucket/prefix")
    out = Resolved()
    for source in sources:
        if source.startswith("s3://"):
            _resolve_s3(source, rng, s3_client(), out, now)
        else:
            _resolve_local(source, rng, out)
    seen: set[str] = set()
    unique = []
    for f in out.files:
        if f.path not in seen:
            seen.add(f.path)
            unique.append(f)
    out.files = unique
    return out
