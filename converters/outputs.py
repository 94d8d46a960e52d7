"""Where an export's bytes go: a local file written atomically, or an S3 object.

Local: bytes go to a hidden temporary file next to the target, which is fsynced and renamed over
the final name only on success; on any error it is removed, so a crash never leaves a half file
under the final name. S3: parts of ``PART_SIZE`` are uploaded as a multipart upload that is
completed only on success and aborted on error; an output smaller than one part is one
``PutObject``. Both compute the SHA-256 and size of what they wrote.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from logtap.errors import SourceError
from logtap.sources import split_s3

PART_SIZE = 8 * 1024 * 1024


class _FileWriter:
    """Writes chunks on one thread and hashes them on another (both release the GIL for large
    buffers), so the caller's work (merging, converting), the writing and the hashing overlap; an
    error is raised on the caller's next call."""

    def __init__(self, fh: Any, sha: Any) -> None:
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[bytes | None]] = []
        self._threads: list[threading.Thread] = []
        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:  # an unbuffered write may take less than it was given
                view = view[fh.write(view):]

        for name, step in (("write", write), ("hash", sha.update)):
            q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
            thread = threading.Thread(target=self._run, args=(q, step), name=f"logtap-output-{name}", daemon=True)
            thread.start()
            self._queues.append(q)
            self._threads.append(thread)

    def _run(self, q: queue.Queue[bytes | None], step: Any) -> None:
        while True:
            data = q.get()
            if data is None:
                return
            if self._error is None:
                try:
                    step(data)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def put(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        for q in self._queues:
            q.put(data)

    def finish(self) -> None:
        """Wait until everything is written and hashed; raise the first error, if any."""
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, key = split_s3(uri)
    if not key or key.endswith("/"):
        raise SourceError(f"output {uri!r} must be s3://bucket/key (a key, not a prefix)")
    return bucket, key


class Output:
    """A write-once destination used as a context manager: ``write`` bytes, committed on clean exit."""

    def __init__(self, target: str, *, s3_client: Any = None) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._s3 = s3_client
        self._buf = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._file: Any = None
        self._writer: _FileWriter | None = None
        self._tmp: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.target.startswith("s3://")

    def __enter__(self) -> Output:
        if not self.is_s3:
            path = Path(self.target)
            if not path.parent.exists():
                raise SourceError(f"output folder {str(path.parent)!r} does not exist; create it first")
            fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            self._file = os.fdopen(fd, "wb", buffering=0)  # callers write about 1 MB at a time
            self._writer = _FileWriter(self._file, self.sha256)
        elif self._s3 is None:
            raise SourceError("an s3:// output needs an S3 client")
        return self

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._writer is not None:
            self._writer.put(bytes(data))
            return
        self.sha256.update(data)
        self._buf += data
        if len(self._buf) >= PART_SIZE:
            self._upload_part()

    def _upload_part(self) -> None:
        bucket, key = split_s3_uri(self.target)
        if self._upload_id is None:
            self._upload_id = self._s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        number = len(self._parts) + 1
        resp = self._s3.upload_part(Bucket=bucket, Key=key, UploadId=self._upload_id, PartNumber=number,
                                    Body=bytes(self._buf))
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        self._buf.clear()

    def _commit(self) -> None:
        if self._file is not None:
            assert self._writer is not None
            self._writer.finish()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            assert self._tmp is not None
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.target)
            self._tmp = None
            return
        bucket, key = split_s3_uri(self.target)
        if self._upload_id is None:
            self._s3.put_object(Bucket=bucket, Key=key, Body=bytes(self._buf))
            return
        if self._buf:
            self._upload_part()
        self._s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=self._upload_id,
                                           MultipartUpload={"Parts": self._parts})

    def _abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.finish()
            except BaseException:  # the original error matters more
                pass
        if self._file is not None:
            self._file.close()
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        if self._upload_id is not None:
            bucket, key = split_s3_uri(self.target)
            try:
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=self._upload_id)
            except Exception:  # best effort; the original error matters more
                pass

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self._commit()
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()


def write_bytes(target: str, data: bytes, *, s3_client: Any = None) -> str:
    """Write ``data`` to ``target`` atomically; returns its SHA-256 hex digest."""
    with Output(target, s3_client=s3_client) as out:
        out.write(data)
    return out.sha256.hexdigest()
