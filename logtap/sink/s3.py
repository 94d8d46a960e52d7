"""S3 destination of the sink: closed files are uploaded by a background thread, with retries.

Files are written locally first (``<tmp>/logtap-sink/<hash of the URI>/``); a closed file moves to
``ready/<key>`` and an uploader thread puts it at ``s3://bucket/prefix/<key>``, retrying with
exponential backoff. A file that still fails after every attempt stays in ``ready/`` and is uploaded
by the next process that opens a sink for the same URI (or at the next flush), so nothing already
closed is lost to a transient S3 error. The S3 client comes from the boto3 session given (or the
default session); endpoint, Region and credentials follow boto3's configuration, including
``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from logtap.sources import split_s3

log = logging.getLogger("logtap.sink")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without surrounding slashes)."""
    bucket, prefix = split_s3(uri)
    return bucket, prefix.strip("/")


class S3Destination:
    def __init__(self, uri: str, *, session: Any = None, staging_root: str | os.PathLike[str] | None = None,
                 attempts: int = 6, backoff: float = 0.5, max_backoff: float = 20.0) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.description = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.uploaded = 0
        self.upload_failures = 0
        self._session = session
        base = Path(staging_root) if staging_root else Path(tempfile.gettempdir()) / "logtap-sink"
        self._base = base / hashlib.sha256(self.description.encode()).hexdigest()[:16]
        self._ready = self._base / "ready"
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._requeue_leftovers()

    # -- Destination protocol -------------------------------------------------------------------
    def staging_dir(self) -> Path:
        return self._base / "staging"

    def publish(self, local: Path, key: str) -> None:
        target = self._ready / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)
        self._enqueue(target, key)

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def wait_idle(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)

    # -- uploads --------------------------------------------------------------------------------
    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _requeue_leftovers(self) -> None:
        if not self._ready.is_dir():
            return
        for path in sorted(self._ready.rglob("*")):
            if path.is_file() and not path.name.endswith(".part"):
                self._enqueue(path, path.relative_to(self._ready).as_posix())

    def _enqueue(self, path: Path, key: str) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put((path, key))
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="logtap-sink-s3", daemon=True)
            self._thread.start()

    def _s3(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = self._session or boto3.session.Session()
            self._client = session.client("s3", config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                                              connect_timeout=10, read_timeout=30))
        return self._client

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, key = item
            try:
                self._upload(path, key)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _upload(self, path: Path, key: str) -> None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                if not path.exists():  # another process sharing the folder uploaded it already
                    return
                body = path.read_bytes()
                self._s3().put_object(Bucket=self.bucket, Key=self._object_key(key), Body=body)
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                self.uploaded += 1
                return
            except Exception as exc:
                if attempt == self.attempts:
                    self.upload_failures += 1
                    log.warning("logtap sink %s: upload of %s failed %d times (%s); kept in %s for the next try",
                                self.description, key, attempt, type(exc).__name__, path)
                    return
                log.debug("logtap sink: upload of %s failed (%s), retrying", key, type(exc).__name__)
                time.sleep(delay)
                delay = min(self.max_backoff, delay * 2)

    def retry_failed(self) -> None:
        """Queue again every file still waiting in ``ready/`` (called by flush)."""
        if self.wait_idle(0):
            self._requeue_leftovers()
