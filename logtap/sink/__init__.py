"""Client-side invocation log in Bedrock's own format.

``logtap.instrument(client, sink="logs/")`` (or ``sink="s3://bucket/prefix"``, or a :class:`Sink`)
writes one record per call made through ``client`` in Bedrock's invocation-log format and layout,
so ``logtap query`` / ``export`` read it like Bedrock's own logs. Writing happens on a background
thread behind a bounded queue; a call is never blocked or failed by the sink. ``logtap.flush()``
writes out everything pending (closing files and finishing S3 uploads); it also runs at
interpreter exit.

Public names: :class:`Sink`, :func:`open_sink`, :func:`attach`, :func:`detach`, :func:`flush`,
:data:`PLACEHOLDER_ACCOUNT_ID`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import asdict
from typing import Any

from logtap.sink.records import DEFAULT_MAX_INLINE_BYTES, PLACEHOLDER_ACCOUNT_ID, CompletedCall, DeferredCall

log = logging.getLogger("logtap.sink")

__all__ = ["PLACEHOLDER_ACCOUNT_ID", "Sink", "attach", "detach", "flush", "open_sink"]

#: Seconds the exit hook waits for pending records (and S3 uploads).
EXIT_FLUSH_TIMEOUT = float(os.environ.get("LOGTAP_SINK_EXIT_TIMEOUT", "10"))


class Sink:
    """Where records go, and how they are written.

    ``destination``: a folder path or ``s3://bucket/prefix``. Options:

    - ``max_inline_bytes`` (100 KB): larger request/response bodies go to ``data/`` files;
    - ``max_queue`` (10,000 records): a full queue drops records and counts them (``stats``);
    - ``max_file_bytes`` (64 MiB of JSON) and ``max_file_age`` (60 s): when a file is closed; files
      also close when their hour is over and on :meth:`flush`;
    - ``account_id``: use this account id instead of asking STS (``resolve_account=False`` never asks:
      records then carry an ARN ``modelId``'s account or ``000000000000``);
    - ``record_errors`` (False): also write calls the service rejected, with ``errorCode``;
    - ``session``: the boto3 session used for S3 uploads; ``upload_attempts`` (6) tries per file.
    """

    def __init__(self, destination: str | os.PathLike[str], *, max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
                 max_queue: int = 10_000, max_file_bytes: int = 64 * 1024 * 1024, max_file_age: float = 60.0,
                 account_id: str | None = None, resolve_account: bool = True, record_errors: bool = False,
                 session: Any = None, upload_attempts: int = 6, staging_dir: str | None = None) -> None:
        from logtap.sink.writer import Destination, FolderDestination, Writer

        text = os.fspath(destination)
        dest: Destination
        if text.startswith("s3://"):
            from logtap.sink.s3 import S3Destination

            dest = S3Destination(text, session=session, staging_root=staging_dir, attempts=upload_attempts)
        else:
            dest = FolderDestination(text)
        self.destination = dest.description
        self.record_errors = record_errors
        self.resolve_account = resolve_account and account_id is None
        self._dest = dest
        self._writer = Writer(dest, max_queue=max_queue, max_file_bytes=max_file_bytes,
                              max_file_age=max_file_age, max_inline_bytes=max_inline_bytes,
                              account_id=account_id)
        self._writer.start()
        _register(self)

    def submit(self, call: CompletedCall | DeferredCall) -> bool:
        """Queue one finished call; never blocks. False when the record was dropped."""
        return self._writer.submit(call)

    def flush(self, timeout: float | None = None) -> bool:
        """Write out every pending record (and upload, for S3); False if ``timeout`` ran out."""
        retry = getattr(self._dest, "retry_failed", None)
        if callable(retry):
            retry()
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        ok = self._writer.close(timeout)
        _unregister(self)
        return ok

    @property
    def stats(self) -> dict[str, int]:
        """Counters: submitted, written, dropped, failed, files_closed, recovered_files (+ S3 uploads)."""
        out = asdict(self._writer.stats)
        for name in ("uploaded", "upload_failures"):
            if hasattr(self._dest, name):
                out[name] = int(getattr(self._dest, name))
        return out

    def __repr__(self) -> str:
        return f"Sink({self.destination!r})"


_SINKS: dict[str, Sink] = {}
_ALL: list[Sink] = []
_LOCK = threading.Lock()
_EXIT_HOOKED = False


def _register(sink: Sink) -> None:
    global _EXIT_HOOKED
    with _LOCK:
        _ALL.append(sink)
        if not _EXIT_HOOKED:
            atexit.register(_at_exit)
            _EXIT_HOOKED = True


def _unregister(sink: Sink) -> None:
    with _LOCK:
        if sink in _ALL:
            _ALL.remove(sink)
        for key, value in list(_SINKS.items()):
            if value is sink:
                del _SINKS[key]


def open_sink(spec: Sink | str | os.PathLike[str]) -> Sink:
    """The :class:`Sink` for ``spec``; one shared sink per folder / S3 URI in a process."""
    if isinstance(spec, Sink):
        return spec
    text = os.fspath(spec)
    key = text.rstrip("/") if text.startswith("s3://") else os.path.abspath(os.path.expanduser(text))
    with _LOCK:
        existing = _SINKS.get(key)
    if existing is not None:
        return existing
    sink = Sink(text)
    with _LOCK:
        return _SINKS.setdefault(key, sink)


def _hooks_for(client: Any, create: bool) -> Any:
    from logtap.sink.calls import HOOKS_ATTR, OPERATIONS, ClientHooks

    hooks = getattr(client, HOOKS_ATTR, None)
    if hooks is not None or not create:
        return hooks
    is_async = any(cls.__module__.startswith("aiobotocore") for cls in type(client).__mro__)
    hooks = ClientHooks(region=client.meta.region_name or "us-east-1", is_async=is_async)
    service = client.meta.service_model.service_id.hyphenize()
    for op in OPERATIONS:
        client.meta.events.register(f"before-parameter-build.{service}.{op}", hooks.before,
                                    unique_id=f"logtap.sink.before.{op}")
        after = hooks.after_async if is_async else hooks.after
        client.meta.events.register(f"after-call.{service}.{op}", after, unique_id=f"logtap.sink.after.{op}")
    setattr(client, HOOKS_ATTR, hooks)
    return hooks


def _unhook(client: Any) -> None:
    from logtap.sink.calls import HOOKS_ATTR, OPERATIONS

    hooks = getattr(client, HOOKS_ATTR, None)
    if hooks is None or hooks.active:
        return
    service = client.meta.service_model.service_id.hyphenize()
    for op in OPERATIONS:
        client.meta.events.unregister(f"before-parameter-build.{service}.{op}", unique_id=f"logtap.sink.before.{op}")
        client.meta.events.unregister(f"after-call.{service}.{op}", unique_id=f"logtap.sink.after.{op}")
    delattr(client, HOOKS_ATTR)


def attach(client: Any, sink: Sink | str | os.PathLike[str]) -> Sink:
    """Write every bedrock-runtime call of ``client`` to ``sink``; replaces an earlier sink."""
    target = open_sink(sink)
    hooks = _hooks_for(client, create=True)
    if target.resolve_account and hooks.identity is None:
        from logtap.sink.account import IdentityLookup

        hooks.identity = IdentityLookup(client)
    hooks.sink = target
    return target


def detach(client: Any) -> None:
    """Stop writing ``client``'s calls (pending records are still written)."""
    hooks = _hooks_for(client, create=False)
    if hooks is not None:
        hooks.sink = None
        _unhook(client)


def add_observer(client: Any, name: str, observer: Any) -> None:
    """Call ``observer(CallSummary)`` after every finished call of ``client`` (replaces ``name``)."""
    _hooks_for(client, create=True).observers[name] = observer


def remove_observer(client: Any, name: str) -> None:
    hooks = _hooks_for(client, create=False)
    if hooks is not None:
        hooks.observers.pop(name, None)
        _unhook(client)


def flush(timeout: float | None = None) -> bool:
    """Write out every pending record of every sink. True when all finished within ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    with _LOCK:
        sinks = list(_ALL)
    for sink in sinks:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = sink.flush(left) and ok
    return ok


def _at_exit() -> None:
    try:
        from logtap.sink.streams import abandon_live_streams

        abandon_live_streams()
        if not flush(EXIT_FLUSH_TIMEOUT):
            log.warning("logtap sink: records still pending at exit after %.0f s", EXIT_FLUSH_TIMEOUT)
    except Exception:
        log.warning("logtap sink: flush at exit failed", exc_info=True)
