"""Fetch offloaded bodies (``inputBodyS3Path`` / ``outputBodyS3Path``) and log objects concurrently.

Bodies larger than 100 KB live under ``.../data/<requestId>_input.json.gz``. They are read from S3
with boto3, or, when the logs are a local copy of the bucket, from the matching local file; logtap's
folder sink refers to them with ``file://`` URIs, which are read from that path.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from logtap.sources import split_s3

WORKERS = 32


def local_candidates(uri: str, source_file: str) -> list[Path]:
    """Local paths where the object ``uri`` can sit, given the local log file that refers to it."""
    bucket, key = split_s3(uri)
    comps = key.split("/")
    out: list[Path] = []
    src = Path(source_file).resolve()
    if "AWSLogs" in comps:
        suffix = comps[comps.index("AWSLogs"):]
        for parent in src.parents:
            if parent.name == "AWSLogs":
                out.append(parent.parent.joinpath(*suffix))
                break
    for parent in src.parents:
        out.append(parent.joinpath(bucket, *comps))
    return out


def read_body(data: bytes, name: str) -> Any:
    """Parse an offloaded body object: gzipped or plain JSON."""
    if data[:2] == b"\x1f\x8b" or name.endswith(".gz"):
        data = gzip.decompress(data)
    return orjson.loads(data)


def file_uri_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (what logtap's folder sink writes for offloaded bodies)."""
    from urllib.parse import unquote, urlparse
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"{uri}: only local file:// URIs can be read (host {parsed.netloc!r})")
    return Path(url2pathname(unquote(parsed.path)))


def fetch_bytes(uri: str, source_file: str, s3_client: Callable[[], Any]) -> bytes:
    """The bytes of ``uri``: a ``file://`` URI from its local path; an ``s3://`` one from S3 when the log
    file came from S3, else from a local copy of the bucket next to the log file."""
    if uri.startswith("file://"):
        return file_uri_path(uri).read_bytes()
    if source_file.startswith("s3://"):
        bucket, key = split_s3(uri)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        data: bytes = body.read()
        return data
    for cand in local_candidates(uri, source_file):
        if cand.is_file():
            return cand.read_bytes()
    raise FileNotFoundError(f"no local copy of {uri} next to {source_file}")


def fetch_bodies(jobs: Iterable[tuple[str, str]], s3_client: Callable[[], Any]) -> dict[tuple[str, str], Any]:
    """``{(uri, source_file): parsed body or the exception}`` for every job, fetched concurrently."""
    jobs = list(dict.fromkeys(jobs))
    if not jobs:
        return {}

    def one(job: tuple[str, str]) -> Any:
        try:
            return read_body(fetch_bytes(job[0], job[1], s3_client), job[0])
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(jobs))) as pool:
        return dict(zip(jobs, pool.map(one, jobs), strict=False))


def download_all(uris: list[str], dest: str, s3_client: Callable[[], Any],
                 on_done: Callable[[int], None] | None = None) -> Iterator[tuple[str, str | Exception]]:
    """Download S3 objects into ``dest`` with WORKERS GETs in flight; yields (uri, local path | error)."""

    def one(uri: str) -> str | Exception:
        bucket, key = split_s3(uri)
        path = os.path.join(dest, bucket, *key.split("/"))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]  # one GET, no HEAD
            with open(path, "wb") as fh:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    fh.write(chunk)
            if on_done:
                on_done(os.path.getsize(path))
            return path
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield from zip(uris, pool.map(one, uris), strict=False)
