"""The sink's background writer: a bounded queue, one thread, rolling gzipped JSON-lines files.

Calls never wait for it: :meth:`Writer.submit` appends to a bounded in-memory queue without waking
the thread (no thread switch per call), and a full queue drops the record and counts the drop
(``stats.dropped``). The thread takes what is queued every ``batch_interval`` (0.2 s), sooner when
the queue is half full, and at once for flush and close.

Files. Each (account, region, hour) gets its own open file. A file is written under a private
staging folder as ``<name>.json.gz.part``; every batch the thread takes off the queue is finished as
a complete gzip *member* (a gzip file may hold several), so a process crash leaves a ``.part`` file
whose complete members are intact. A file is closed (gzip trailer written, moved to its final
``AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/{yyyyMMdd}T{HHmmssSSS}Z_{16
hex}.json.gz`` key) when it reaches ``max_file_bytes`` of JSON, when its hour is over, when it is
``max_file_age`` seconds old, and on :meth:`Writer.flush`. Readers therefore only ever see complete
files. A later process that finds the staging folder of a process that died publishes the complete
members of its ``.part`` files (crash loses at most the records not yet taken off the queue).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
import weakref
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import orjson

from logtap.gzipped import inflate
from logtap.sink.records import CompletedCall, DeferredCall, RecordBuilder, log_prefix

log = logging.getLogger("logtap.sink")

PART_SUFFIX = ".part"
#: Seconds between the writer thread's rounds (records wait at most this long in memory).
BATCH_INTERVAL = 0.2
#: Records written between two GIL hand-backs to the calling threads.
YIELD_EVERY = 16
#: Bytes of JSON lines buffered before they are compressed (in one call, without the GIL).
COMPRESS_CHUNK = 1024 * 1024


class Destination(Protocol):
    """Where closed files go: a local folder or an S3 prefix."""

    description: str

    def staging_dir(self) -> Path:
        """A local folder for files being written (the writer makes a per-process folder inside)."""

    def publish(self, local: Path, key: str) -> None:
        """Make the closed file ``local`` available as ``key`` (relative to the sink root)."""

    def uri_for(self, key: str) -> str:
        """The reference written into records for ``key`` (``inputBodyS3Path``, ``s3Uri``)."""

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until everything published so far is stored; False on timeout."""

    def close(self) -> None: ...


class FolderDestination:
    """A local folder in Bedrock's layout. Offloaded-body references are ``file://`` URIs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.description = str(self.root)

    def staging_dir(self) -> Path:
        return self.root / ".logtap-staging"

    def publish(self, local: Path, key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)

    def uri_for(self, key: str) -> str:
        return (self.root / key).as_uri()

    def wait_idle(self, timeout: float | None) -> bool:
        return True

    def close(self) -> None:
        return None


@dataclass
class WriterStats:
    submitted: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    files_closed: int = 0
    recovered_files: int = 0


def file_name(now: float) -> str:
    """Bedrock's style: ``{yyyyMMdd}T{HHmmssSSS}Z_{16 hex}.json.gz`` (UTC)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}Z_{secrets.token_hex(8)}.json.gz"


class _OpenFile:
    def __init__(self, part: Path, key: str, hour: str) -> None:
        self.part = part
        self.key = key
        self.hour = hour
        self.opened = time.monotonic()
        part.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(part, "wb")  # closed in close()
        self.raw_bytes = 0
        self.records = 0
        self._comp: zlib._Compress | None = None
        self._lines: list[bytes] = []
        self._buffered = 0

    def write(self, line: bytes) -> None:
        """Buffer ``line``; it is compressed with the rest of the batch in one large ``compress`` call
        (which runs without the GIL, so calling threads go on meanwhile)."""
        self._lines.append(line)
        self._buffered += len(line)
        self.raw_bytes += len(line)
        self.records += 1
        if self._buffered >= COMPRESS_CHUNK:
            self._compress()

    def _compress(self) -> None:
        if self._comp is None:
            self._comp = zlib.compressobj(6, zlib.DEFLATED, 31)
        data = b"".join(self._lines)
        self._lines = []
        self._buffered = 0
        self.fh.write(self._comp.compress(data))

    def end_member(self) -> None:
        if self._lines:
            self._compress()
        if self._comp is not None:
            self.fh.write(self._comp.flush())
            self._comp = None
            self.fh.flush()

    def close(self) -> None:
        self.end_member()
        self.fh.close()


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class Writer:
    """One background thread writing :class:`CompletedCall` items as records to ``destination``.

    A :class:`DeferredCall` (any finished call the hooks queued) is queued as is and made into its
    CompletedCall here."""

    def __init__(self, destination: Destination, *, max_queue: int = 10_000,
                 max_file_bytes: int = 64 * 1024 * 1024, max_file_age: float = 60.0,
                 max_inline_bytes: int = 100 * 1024, account_id: str | None = None,
                 batch_interval: float = BATCH_INTERVAL) -> None:
        self.destination = destination
        self.max_file_bytes = max_file_bytes
        self.max_file_age = max_file_age
        self.max_queue = max(1, max_queue)
        self.batch_interval = batch_interval
        self.stats = WriterStats()
        # A deque, not queue.Queue: appending wakes nobody, so a call costs no thread switch. The
        # thread wakes every ``batch_interval`` s, at half capacity, and for flush / close.
        self._pending: deque[object] = deque()
        self._wake = threading.Event()
        self._builder = RecordBuilder(destination.uri_for, max_inline_bytes=max_inline_bytes,
                                      account_id=account_id)
        self._files: dict[tuple[str, str, str], _OpenFile] = {}
        self._pid = os.getpid()
        self._staging = destination.staging_dir() / f"{self._pid}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: True while this process's writer thread runs (cleared in a forked child and when it ends).
        self._running = False
        self._closed = False
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def in_child() -> None:
                writer = ref()
                if writer is not None:
                    writer._running = False

            os.register_at_fork(after_in_child=in_child)

    # -- calling side ---------------------------------------------------------------------------
    def submit(self, call: CompletedCall | DeferredCall) -> bool:
        """Queue ``call`` without ever blocking; False (and a counted drop) when the queue is full.

        A :class:`DeferredCall` becomes its :class:`CompletedCall` later, on the writer thread."""
        pending = len(self._pending)
        if self._closed or pending >= self.max_queue:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.warning("logtap sink %s: queue full, %d record(s) dropped so far",
                            self.destination.description, self.stats.dropped)
            return False
        self._pending.append(call)
        self.stats.submitted += 1
        if pending + 1 >= self.max_queue // 2:
            self._wake.set()
        if not self._running:  # not started yet, stopped, or a forked child (no threading call per submit)
            self._ensure_thread()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Write out and close every pending record's file; True when done within ``timeout``."""
        if self._thread is None or not self._thread.is_alive():
            return self.destination.wait_idle(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = _Flush()
        self._pending.append(marker)
        self._wake.set()
        if not marker.done.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.destination.wait_idle(left)

    def close(self, timeout: float | None = None) -> bool:
        ok = self.flush(timeout)
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._pending.append(_STOP)
            self._wake.set()
            self._thread.join(timeout)
        self.destination.close()
        return ok

    def start(self) -> None:
        """Start the writer thread now (it first recovers files left by processes that died)."""
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                if self._pid != os.getpid():  # a forked child: its own staging folder and files
                    self._pid = os.getpid()
                    self._staging = self.destination.staging_dir() / f"{self._pid}-{secrets.token_hex(4)}"
                    self._files = {}
                    self._wake = threading.Event()
                self._thread = threading.Thread(target=self._run, name="logtap-sink-writer", daemon=True)
                self._running = True
                self._thread.start()

    # -- writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._running = False

    def _loop(self) -> None:
        try:  # Linux: lower this thread's CPU priority only, so calling threads win a busy core
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        try:
            recover_staging(self.destination, self.stats)
        except Exception:
            log.warning("logtap sink %s: could not recover files left by an earlier process",
                        self.destination.description, exc_info=True)
        while True:
            self._wake.wait(self._wait_time())
            self._wake.clear()
            stop = False
            done = 0
            while self._pending:
                entry = self._pending.popleft()
                if isinstance(entry, (CompletedCall, DeferredCall)):
                    self._write(entry)
                    done += 1
                    if done % YIELD_EVERY == 0:
                        time.sleep(0)  # let calling threads have the GIL between slices of a big batch
                elif entry is _STOP:
                    stop = True
                elif isinstance(entry, _Flush):
                    self._end_members()
                    self._close_all()
                    entry.done.set()
            self._end_members()
            self._roll()
            if stop:
                self._close_all()
                shutil.rmtree(self._staging, ignore_errors=True)
                return

    def _wait_time(self) -> float:
        if not self._files:
            return self.batch_interval
        oldest = min(f.opened for f in self._files.values())
        return max(0.01, min(self.batch_interval, oldest + self.max_file_age - time.monotonic()))

    def _write(self, entry: CompletedCall | DeferredCall) -> None:
        try:
            call = entry.completed() if isinstance(entry, DeferredCall) else entry
            built = self._builder.build(call)
            for attachment in built.attachments:
                prefix = log_prefix(built.account_id, call.region, built.hour_prefix)
                self._publish_bytes(f"{prefix}/data/{attachment.name}", attachment.content)
            line = orjson.dumps(built.record, option=orjson.OPT_APPEND_NEWLINE)
            slot = (built.account_id, call.region, built.hour_prefix)
            current = self._files.get(slot)
            if current is not None and current.records and current.raw_bytes + len(line) > self.max_file_bytes:
                self._close(slot)
                current = None
            if current is None:
                prefix = log_prefix(built.account_id, call.region, built.hour_prefix)
                key = f"{prefix}/{file_name(time.time())}"
                current = _OpenFile(self._staging / (key + PART_SUFFIX), key, built.hour_prefix)
                self._files[slot] = current
            current.write(line)
            self.stats.written += 1
        except Exception:
            self.stats.failed += 1
            log.warning("logtap sink %s: could not write the record of a %s call",
                        self.destination.description, getattr(entry, "operation", "?"), exc_info=True)

    def _publish_bytes(self, key: str, content: bytes) -> None:
        tmp = self._staging / (key + PART_SUFFIX)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        self.destination.publish(tmp, key)

    def _end_members(self) -> None:
        for slot, handle in list(self._files.items()):
            try:
                handle.end_member()
            except Exception:
                log.warning("logtap sink: write failed for %s", handle.key, exc_info=True)
                self._drop(slot)

    def _roll(self) -> None:
        now = time.monotonic()
        hour_now = time.strftime("%Y/%m/%d/%H", time.gmtime())
        for slot, handle in list(self._files.items()):
            if now - handle.opened >= self.max_file_age or handle.hour < hour_now:
                self._close(slot)

    def _close_all(self) -> None:
        for slot in list(self._files):
            self._close(slot)

    def _close(self, slot: tuple[str, str, str]) -> None:
        handle = self._files.pop(slot)
        try:
            handle.close()
            self.destination.publish(handle.part, handle.key)
            self.stats.files_closed += 1
        except Exception:
            self.stats.failed += handle.records
            log.warning("logtap sink %s: could not close %s (%d records)", self.destination.description,
                        handle.key, handle.records, exc_info=True)

    def _drop(self, slot: tuple[str, str, str]) -> None:
        handle = self._files.pop(slot)
        self.stats.failed += handle.records
        try:
            handle.fh.close()
        except OSError:
            pass


# -- crash recovery -----------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def complete_members(data: bytes) -> int:
    """Length of the longest prefix of ``data`` made of complete gzip members."""
    return inflate(data).complete


def recover_staging(destination: Destination, stats: WriterStats) -> None:
    """Publish what processes that died left in the staging folder, then remove their folders."""
    root = destination.staging_dir()
    if not root.is_dir():
        return
    for folder in root.iterdir():
        pid_text = folder.name.split("-", 1)[0]
        if not folder.is_dir() or not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            key = path.relative_to(folder).as_posix()
            if not key.endswith(PART_SUFFIX) or "/data/" in key:
                path.unlink()  # a data file cut off mid-write: its record was never written either
                continue
            key = key[: -len(PART_SUFFIX)]
            data = path.read_bytes()
            keep = complete_members(data)
            if keep == 0:
                path.unlink()
                continue
            if keep < len(data):
                with open(path, "r+b") as fh:
                    fh.truncate(keep)
            destination.publish(path, key)
            stats.recovered_files += 1
        shutil.rmtree(folder, ignore_errors=True)
