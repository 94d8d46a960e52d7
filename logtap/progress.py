"""Progress on stderr for long scans: a line redrawn while DuckDB works, only on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class Progress:
    """``with Progress(enabled, files=n, total_bytes=b).watch(con): ...`` polls ``con.query_progress()``."""

    def __init__(self, enabled: bool, *, files: int, total_bytes: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.files = files
        self.total_bytes = total_bytes
        self._con: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()

    def watch(self, con: Any) -> Progress:
        self._con = con
        return self

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.enabled and self._con is not None:
            self._thread = threading.Thread(target=self._run, name="logtap-progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                pct = float(self._con.query_progress())
            except Exception:
                continue
            if pct < 0:
                continue
            done = pct / 100.0
            elapsed = time.monotonic() - self._start
            rate = done * self.total_bytes / elapsed if elapsed else 0.0
            self.message(f"logtap: {done * self.files:,.0f}/{self.files:,} files, {_mb(done * self.total_bytes)} of "
                         f"{_mb(self.total_bytes)} compressed ({_mb(rate)}/s)")

    def finish(self, scanned: int) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        self.message(f"logtap: scanned {scanned:,} records from {self.files:,} files, {_mb(self.total_bytes)} "
                     f"in {elapsed:.1f} s ({scanned / elapsed:,.0f} records/s)\n")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
