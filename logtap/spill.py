"""An external merge sort with bounded memory: add (key, payload) items in any order, read them back sorted.

Items are buffered until ``run_bytes`` of payload, then sorted and written to a temporary file as
one sorted run; iteration merges the runs (``heapq.merge``) reading each block by block. Memory
stays about ``run_bytes`` (plus Python's per-object overhead) whatever the number of items.
"""

from __future__ import annotations

import gc
import heapq
import os
import pickle
import tempfile
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

BLOCK = 16  # items per pickled block in a run file (a merge holds one block per run)


class SortedSpill:
    """Collect ``(key, payload)`` pairs; iterate them ordered by key (ties keep no particular order,
    so make keys unique where the order of ties matters). ``payload`` is anything picklable; ``size``
    is its approximate size in bytes, which decides when a run is written out."""

    def __init__(self, directory: str | None = None, run_bytes: int = 32 << 20, *, named: bool = False) -> None:
        self.directory = directory
        self.run_bytes = run_bytes
        #: runs are named files that ``persist()`` hands over (to another process) instead of anonymous ones
        self.named = named
        self._buffer: list[tuple[Any, Any]] = []
        self._buffered = 0
        self._runs: list[IO[bytes]] = []
        self.count = 0

    def add(self, key: Any, payload: Any, size: int) -> None:
        self._buffer.append((key, payload))
        self._buffered += size + 64
        self.count += 1
        if self._buffered >= self.run_bytes:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort(key=_first)
        fh: IO[bytes]
        if self.named:
            fh = tempfile.NamedTemporaryFile(dir=self.directory, prefix="logtap-run-", delete=False)
        else:
            fh = tempfile.TemporaryFile(dir=self.directory, prefix="logtap-run-")
        buf = self._buffer
        for i in range(0, len(buf), BLOCK):
            pickle.dump(buf[i:i + BLOCK], fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.seek(0)
        self._runs.append(fh)
        self._buffer = []
        self._buffered = 0

    @property
    def runs(self) -> int:
        """Sorted runs written to disk so far."""
        return len(self._runs)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        self._buffer.sort(key=_first)
        if not self._runs:
            buf, self._buffer = self._buffer, []
            yield from buf
            return
        try:
            yield from heapq.merge(*(_read_run(fh) for fh in self._runs), iter(self._buffer), key=_first)
        finally:
            self.close()

    def persist(self) -> list[str]:
        """Write what is buffered as a last run and return the run files' paths (``named=True`` only),
        in order; ``merge_runs(paths)`` reads them back sorted and deletes them."""
        if not self.named:
            raise ValueError("persist() needs SortedSpill(named=True)")
        if self._buffer:
            self._spill()
        paths = [str(fh.name) for fh in self._runs]
        for fh in self._runs:
            fh.close()
        self._runs = []
        return paths

    def close(self) -> None:
        for fh in self._runs:
            fh.close()
            if self.named:
                _unlink(str(fh.name))
        self._runs = []
        self._buffer = []


def sorted_runs(items: Iterable[tuple[Any, Any, int]], directory: str, run_bytes: int) -> list[str]:
    """``(key, payload, size)`` items sorted into run files in ``directory``, for another process's
    ``merge_runs``; none are left behind if reading ``items`` fails."""
    spill = SortedSpill(directory, run_bytes=run_bytes, named=True)
    try:
        for key, payload, size in items:
            spill.add(key, payload, size)
        return spill.persist()
    except BaseException:
        spill.close()
        raise


def merge_runs(paths: list[str]) -> Generator[tuple[Any, Any], None, None]:
    """The items of the run files ``paths`` (from ``SortedSpill.persist``) merged by key; ties keep the
    order of ``paths``. The files are deleted when the iteration ends or is abandoned."""
    files: list[IO[bytes]] = []
    try:
        for path in paths:
            files.append(open(path, "rb"))
        yield from heapq.merge(*(_read_run(fh) for fh in files), key=_first)
    finally:
        for fh in files:
            fh.close()
        for path in paths:
            _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _first(item: tuple[Any, Any]) -> Any:
    return item[0]


def _read_run(fh: IO[bytes]) -> Iterator[tuple[Any, Any]]:
    while True:
        try:
            block = pickle.load(fh)  # our own temporary file
        except EOFError:
            return
        yield from block


@contextmanager
def young_gc_only() -> Iterator[None]:
    """Within the block, Python's cyclic GC collects only the young generations.

    A scan allocates millions of short-lived objects while holding many long-lived ones (sort
    buffers, dedupe keys); full collections would walk all of those again and again (measured: it
    doubles the per-record cost of parsing and converting). Nothing is leaked: young cycles are
    still collected every ``YOUNG_EVERY`` allocations, and the old generation afterwards.
    """
    was = gc.isenabled()
    old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, 1 << 30, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if not was:
            gc.disable()


YOUNG_EVERY = 20_000


def spill_dir() -> str:
    """Where runs go: ``$LOGTAP_TMPDIR`` or the system temporary directory."""
    return os.environ.get("LOGTAP_TMPDIR") or tempfile.gettempdir()


__all__ = ["SortedSpill", "merge_runs", "sorted_runs", "spill_dir", "young_gc_only"]
