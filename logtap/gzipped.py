"""Gzip files the way Bedrock writes them: one or more members, possibly cut short or corrupt.

One walk over the members serves the tolerant log reader (keep what inflates, say why it stopped),
the search for the file DuckDB choked on, and the sink's crash recovery (how many bytes are
complete members).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

MAGIC = b"\x1f\x8b"
#: ``Inflated.error`` of data that ends inside a member.
TRUNCATED = "truncated gzip member"
#: Bytes ``bad_gzip_start`` reads; only a file this small can end inside its first deflate block.
PROBE = 256


@dataclass(frozen=True)
class Inflated:
    """What ``inflate`` got out of some gzip data."""

    text: bytes  #: the complete members' content, plus what the first broken member gave
    complete: int  #: length of the prefix of the data made of complete members
    error: str | None  #: why inflating stopped early (``TRUNCATED`` or a corruption), None if it did not


def inflate(data: bytes) -> Inflated:
    """Inflate every gzip member of ``data`` in turn, stopping at the first that is cut short or corrupt."""
    chunks: list[bytes] = []
    end = 0
    while end < len(data):
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunks.append(decomp.decompress(data[end:]))
        except zlib.error as exc:
            return Inflated(b"".join(chunks), end, f"corrupt gzip data ({exc})")
        if not decomp.eof:
            return Inflated(b"".join(chunks), end, TRUNCATED)
        end = len(data) - len(decomp.unused_data)
    return Inflated(b"".join(chunks), end, None)


def bad_gzip_files(paths: Sequence[str]) -> list[str]:
    """The local ``.gz`` files among ``paths`` that do not inflate completely (4 threads: zlib releases
    the GIL). For after DuckDB failed on a bad gzip stream without naming the file."""
    from concurrent.futures import ThreadPoolExecutor

    def bad(path: str) -> bool:
        if path.startswith("s3://") or not path.endswith(".gz"):
            return False
        try:
            with open(path, "rb") as fh:
                return inflate(fh.read()).error is not None
        except OSError:
            return True

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [p for p, is_bad in zip(paths, pool.map(bad, paths), strict=True) if is_bad]


def bad_gzip_start(path: str, probe: int = PROBE) -> bool:
    """True if a local gzip file does not start like one DuckDB can read: its first ``probe`` bytes do
    not inflate, or inflate to nothing although more was expected. About 15 µs per file."""
    if path.startswith("s3://"):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(probe)
            more = bool(fh.read(1))
    except OSError:
        return True
    if head[:2] != MAGIC:
        return False
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decomp.decompress(head)
    except zlib.error:
        return True
    if decomp.eof or out:
        return False
    return not more  # the whole file was given and it is an unfinished gzip member
