"""Per-client botocore hooks that see each bedrock-runtime call complete.

``before-parameter-build`` notes the start time and keeps a reference to the call's parameters
(the middleware, registered on the same events, edits that same dict). ``after-call`` keeps only
what could change or vanish once the call returns and queues the call as a :class:`DeferredCall`;
the sink's writer thread makes the :class:`CompletedCall` and the record:

- Converse: request and response serialized with orjson (the caller owns both and may change them)
  and the four usage values; the writer wraps the bytes and checks the token counts.
- InvokeModel: the request body (a ``bytes``/``str`` by reference, anything else copied), the
  response bytes the hook reads and hands back to the caller in a fresh body, and the token-count
  headers' raw text; the writer encodes a ``str`` body and parses the numbers.
- Streams: only the request is snapshotted (ConverseStream's parameters serialized with orjson; an
  InvokeModelWithResponseStream body kept as InvokeModel's is); when the stream ends the
  :class:`_StreamCall` itself is queued and the writer builds the aggregated response and the token
  counts.

Observers (the Powertools logger / metrics hooks), when there are any, get their summary at once on
the calling thread. Failed calls (HTTP status >= 300) are built at once (rare). Every hook body is
guarded: an internal error is logged and the caller's call goes on untouched. Handlers are plain
functions except ``after-call`` of InvokeModel on an aiobotocore client, which must ``await`` the body.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.eventstream import EventStream

from logtap.sink.records import PLAIN_JSON, CompletedCall, DeferredCall, Snapshot, int_or_none, snapshot
from logtap.sink.streams import (
    _LIVE,
    METRIC_NAMES,
    USAGE_NAMES,
    RecordingEventStream,
    StreamRecorder,
    recording_class,
    set_tokens,
    wrap_event_stream,
)

log = logging.getLogger("logtap.sink")

OPERATIONS = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream")
STATE_KEY = "logtap_sink_call"
METADATA_KEY = "logtap_request_metadata"
HOOKS_ATTR = "_logtap_call_hooks"


@dataclass
class CallSummary:
    """What observers get for each finished call: no prompts, no tag values."""

    operation: str
    model_id: str
    latency_ms: int
    input_tokens: int | None
    output_tokens: int | None
    tag_keys: list[str]
    ok: bool
    error_code: str | None = None


Observer = Callable[[CallSummary], None]


@dataclass(slots=True)
class _CallState:
    started: float
    t0: float
    params: dict[str, Any]


@dataclass
class ClientHooks:
    """Hooks registered on one client; ``sink`` and ``observers`` may change while registered."""

    region: str
    identity: Callable[[], tuple[str | None, str | None]] | None = None
    sink: Any = None  # logtap.sink.Sink
    observers: dict[str, Observer] = field(default_factory=dict)
    is_async: bool = False

    @property
    def active(self) -> bool:
        return self.sink is not None or bool(self.observers)

    # -- events ---------------------------------------------------------------------------------
    def before(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        try:
            if self.sink is not None or self.observers:
                context[STATE_KEY] = _CallState(time.time(), time.perf_counter(), params)
        except Exception:
            log.warning("logtap sink: internal error before a call", exc_info=True)

    def after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any],
              **_: Any) -> None:
        try:
            state = context.pop(STATE_KEY, None)
            if state is None or (self.sink is None and not self.observers):
                return
            name = model.name
            if http_response.status_code >= 300:
                self._failed(self._base_call(name, state, parsed, context), state, parsed)
            elif name == "InvokeModel":
                body = parsed.get("body")
                try:
                    data = body.read() if body is not None else b""
                except Exception as exc:  # the caller must see this error when it reads the body
                    parsed["body"] = _failed_body(exc)
                    return
                if not isinstance(data, bytes):  # an async body behind a sync hook: leave it alone
                    getattr(data, "close", lambda: None)()
                    return
                parsed["body"] = _replay_body(data)
                self._invoke(state, parsed, http_response, context, data)
            elif name == "Converse":
                self._converse(state, parsed, context)
            else:
                self._stream(name, state, parsed, context)
        except Exception:
            log.warning("logtap sink: internal error after a call", exc_info=True)

    async def after_async(self, http_response: Any, parsed: dict[str, Any], model: Any,
                          context: dict[str, Any], **kwargs: Any) -> None:
        if model.name != "InvokeModel" or http_response.status_code >= 300:
            self.after(http_response, parsed, model, context, **kwargs)
            return
        try:
            state = context.pop(STATE_KEY, None)
            if state is None or not self.active:
                return
            # Imported before the body is read: once it is read, the caller can only get the bytes
            # back through these classes, so nothing may fail between reading and handing back.
            from logtap.sink.aio_body import BufferedAioBody, FailedAioBody

            body = parsed.get("body")
            try:
                data = await body.read() if body is not None else b""
            except Exception as exc:
                parsed["body"] = FailedAioBody(exc)
                return
            parsed["body"] = BufferedAioBody(data)
            self._invoke(state, parsed, http_response, context, data)
        except Exception:
            log.warning("logtap sink: internal error after an async call", exc_info=True)

    # -- building -------------------------------------------------------------------------------
    def _base_call(self, operation: str, state: _CallState, parsed: dict[str, Any],
                   context: dict[str, Any]) -> CompletedCall:
        params = state.params
        request_id = (parsed.get("ResponseMetadata") or {}).get("RequestId") or str(uuid.uuid4())
        metadata = context.get(METADATA_KEY)
        if not isinstance(metadata, dict):
            metadata = _caller_metadata(params.get("requestMetadata"))
        return CompletedCall(operation=operation, model_id=str(params.get("modelId", "")), region=self.region,
                             started=state.started, request_id=request_id, request_metadata=metadata or None,
                             identity=self.identity)

    def _converse(self, state: _CallState, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        """Snapshot request and response now (the caller owns both); the writer builds the rest."""
        request: Any = {k: v for k, v in state.params.items() if k != "modelId" and k != "requestMetadata"}
        try:  # the usual case, plain JSON values: the bytes only (made a Snapshot on the writer)
            request = orjson.dumps(request, option=PLAIN_JSON)
        except orjson.JSONEncodeError:
            request = snapshot(request)
        response: Any = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        try:
            response = orjson.dumps(response, option=PLAIN_JSON)
        except orjson.JSONEncodeError:
            response = snapshot(response)
        # the token counts' values (four lookups: cheaper here than parsing the JSON again on the writer)
        usage = parsed.get("usage")
        tokens = (usage.get("inputTokens"), usage.get("outputTokens"), usage.get("cacheReadInputTokens"),
                  usage.get("cacheWriteInputTokens")) if isinstance(usage, dict) else _NO_TOKENS
        self._queue(_PlainCall("Converse", self, state, request, response, tokens, parsed, context))

    def _invoke(self, state: _CallState, parsed: dict[str, Any], http_response: Any, context: dict[str, Any],
                data: bytes) -> None:
        """Keep the request body (copied only if the caller could change it), the response bytes and the
        token headers' raw values; the writer parses them."""
        body = state.params.get("body")
        kind = type(body)
        request = body if kind is bytes or kind is str else _request_body(body)
        headers = _headers(parsed, http_response)
        get = headers.get
        tokens = (get("x-amzn-bedrock-input-token-count"), get("x-amzn-bedrock-output-token-count"),
                  get("x-amzn-bedrock-cache-read-input-token-count"),
                  get("x-amzn-bedrock-cache-write-input-token-count"))
        self._queue(_PlainCall("InvokeModel", self, state, request, data, tokens, parsed, context))

    def _queue(self, pending: _PlainCall) -> None:
        if self.observers:  # observers want the summary (with token counts) now
            self._finish(pending.completed(), pending.t0)
            return
        sink = self.sink
        if sink is not None:
            sink.submit(pending)

    def _stream(self, operation: str, state: _CallState, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        """Wrap the stream; everything but the request snapshot waits for the writer thread."""
        field_name = "stream" if operation == "ConverseStream" else "body"
        stream = parsed.get(field_name)
        cls = RecordingEventStream if type(stream) is EventStream else recording_class(stream)
        if cls is None:
            return
        params = state.params
        request: Any
        if operation == "ConverseStream":
            request = dict(params)
            request.pop("modelId", None)
            request.pop("requestMetadata", None)
            try:  # the usual case, plain JSON values: the bytes only (made a Snapshot on the writer)
                request = orjson.dumps(request, option=PLAIN_JSON)
            except orjson.JSONEncodeError:
                request = snapshot(request)
        else:  # a bytes or str body by reference (immutable; a str is encoded by the writer), others copied
            body = params.get("body")
            kind = type(body)
            request = body if kind is bytes or kind is str else _request_body(body)
        metadata = context.get(METADATA_KEY)
        if not isinstance(metadata, dict):
            metadata = _caller_metadata(params.get("requestMetadata"))
        response_metadata = parsed.get("ResponseMetadata")
        request_id = response_metadata.get("RequestId") if isinstance(response_metadata, dict) else None
        recorder = _StreamCall(operation, self, state, request, metadata, request_id)
        try:
            parsed[field_name] = wrap_event_stream(stream, recorder, cls)
        except BaseException:
            recorder.forget()
            raise

    def _failed(self, call: CompletedCall, state: _CallState, parsed: dict[str, Any]) -> None:
        call.error_code = str((parsed.get("Error") or {}).get("Code") or "UnknownError")
        if call.operation in ("Converse", "ConverseStream"):
            call.request = snapshot({k: v for k, v in state.params.items()
                                     if k not in ("modelId", "requestMetadata")})
        else:
            call.request = _request_body(state.params.get("body"))
        self._finish(call, state.t0, write=bool(self.sink is not None and self.sink.record_errors))

    def _finish(self, call: CompletedCall, t0: float, write: bool = True) -> None:
        if call.latency_ms is None:
            call.latency_ms = int((time.perf_counter() - t0) * 1000)
        sink = self.sink
        if sink is not None and write:
            sink.submit(call)
        if self.observers:
            summary = CallSummary(call.operation, call.model_id, call.latency_ms, call.input_tokens,
                                  call.output_tokens, sorted(call.request_metadata or {}),
                                  call.error_code is None, call.error_code)
            for name, observer in list(self.observers.items()):
                try:
                    observer(summary)
                except Exception:
                    log.warning("logtap: observer %s failed", name, exc_info=True)


class _PlainCall(DeferredCall):
    """A finished Converse / InvokeModel call, queued as is: the writer thread makes its CompletedCall.

    The calling thread keeps only what could change or vanish once the call returns: the request
    and (Converse) response serialized with orjson, the InvokeModel body, the raw token values (usage
    numbers, header text), the request id and tags. Checking and parsing the token counts, wrapping
    the JSON and building the call happen in :meth:`completed`.
    """

    __slots__ = ("ended", "hooks", "metadata", "model_id", "operation", "request", "request_id", "response",
                 "started", "t0", "tokens")

    def __init__(self, operation: str, hooks: ClientHooks, state: _CallState, request: Any, response: Any,
                 tokens: tuple[Any, Any, Any, Any], parsed: dict[str, Any], context: dict[str, Any]) -> None:
        self.ended = time.perf_counter()
        self.operation = operation
        self.hooks = hooks
        self.model_id: Any
        self.started: float
        self.t0: float
        _keep_state(self, state)
        self.request = request
        self.response = response
        self.tokens = tokens
        response_metadata = parsed.get("ResponseMetadata")
        self.request_id = response_metadata.get("RequestId") if isinstance(response_metadata, dict) else None
        metadata = context.get(METADATA_KEY)
        if not isinstance(metadata, dict):
            metadata = _caller_metadata(state.params.get("requestMetadata"))
        self.metadata = metadata

    def completed(self) -> CompletedCall:
        response = self.response
        converse = self.operation == "Converse"
        if converse and isinstance(response, bytes):  # the response's JSON, serialized on the calling thread
            response = Snapshot(response)
        call = _completed_call(self, converse, response, None)
        # token counts: Converse's usage values as they were; InvokeModel's from the headers' text
        convert = int_or_none if converse else _int_value
        call.input_tokens, call.output_tokens, call.cache_read_tokens, call.cache_write_tokens = map(
            convert, self.tokens)
        return call


class _StreamCall(StreamRecorder, DeferredCall):
    """A stream call: its recorder while it is read, then the call the writer turns into a record.

    The calling thread only snapshots the request and keeps a few references and numbers; when the
    stream ends it notes the time and queues this object itself. The :class:`CompletedCall`, the
    aggregated response and the token counts are built by :meth:`completed` on the writer thread,
    unless observers want the summary at once.
    """

    __slots__ = ("ended", "error_code", "hooks", "metadata", "model_id", "request", "request_id", "started", "t0")

    def __init__(self, operation: str, hooks: ClientHooks, state: _CallState, request: Any,
                 metadata: dict[str, str] | None, request_id: Any) -> None:
        # What StreamRecorder.__init__ does, written out (this runs for every stream call); ``ended``
        # and ``error_code`` are set by done(), which completed() always follows.
        self.operation = operation
        self.events: list[Any] = []
        self._count = -1
        _LIVE[id(self)] = self
        self.hooks = hooks
        self.model_id: Any
        self.started: float
        self.t0: float
        _keep_state(self, state)
        self.request = request
        self.metadata = metadata
        self.request_id = request_id
        self.error_code: str | None
        self.ended: float

    def forget(self) -> None:
        """Never finished (the stream could not be wrapped): leave the live set without a record."""
        _LIVE.pop(id(self), None)

    def done(self, error_code: str | None) -> None:
        self.ended = time.perf_counter()
        self.error_code = error_code
        hooks = self.hooks
        if hooks.observers:  # observers want the summary (with token counts) now
            call = self.completed()
            if self.is_converse:
                set_tokens(call, self.usage() or {}, USAGE_NAMES)
            else:
                set_tokens(call, self.invocation_metrics(), METRIC_NAMES)
            hooks._finish(call, self.t0)
            return
        sink = hooks.sink
        if sink is not None:
            sink.submit(self)

    def completed(self) -> CompletedCall:
        """The finished call (on the writer thread; the builder makes the response's body there too)."""
        return _completed_call(self, self.is_converse, self.response(), self.error_code)


def _keep_state(call: _PlainCall | _StreamCall, state: _CallState) -> None:
    """The three values a deferred call needs from its call state, so that neither the state nor the
    caller's parameters stay alive until the writer runs (fewer live containers for the collector)."""
    call.model_id = state.params.get("modelId", "")
    call.started = state.started
    call.t0 = state.t0


def _completed_call(call: _PlainCall | _StreamCall, converse: bool, response: Any,
                    error_code: str | None) -> CompletedCall:
    """The :class:`CompletedCall` of a deferred call (on the writer thread), token counts unset. The
    request: Converse*'s JSON serialized on the calling thread (or a Snapshot already), InvokeModel*'s
    body as sent (a str is encoded here)."""
    request = call.request
    if converse and isinstance(request, bytes):
        request = Snapshot(request)
    elif isinstance(request, str):
        request = request.encode("utf-8")
    request_id = call.request_id
    hooks = call.hooks
    # positional: operation, model_id, region, started, request_id, request_metadata, request, response,
    # input/output/cache-read/cache-write tokens, latency_ms, error_code, identity
    return CompletedCall(call.operation, str(call.model_id), hooks.region, call.started,
                         request_id if isinstance(request_id, str) and request_id else str(uuid.uuid4()),
                         call.metadata or None, request, response, None, None, None, None,
                         int((call.ended - call.t0) * 1000), error_code, hooks.identity)


_NO_TOKENS = (None, None, None, None)


def _headers(parsed: dict[str, Any], http_response: Any) -> Any:
    """botocore's lower-cased plain-dict copy of the response headers (cheap lookups), else the originals."""
    metadata = parsed.get("ResponseMetadata")
    headers = metadata.get("HTTPHeaders") if isinstance(metadata, dict) else None
    return headers if isinstance(headers, dict) else http_response.headers


def _int_value(value: Any) -> int | None:
    """A token-count header's value as an int (None when absent or not a number)."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _caller_metadata(raw: Any) -> dict[str, str] | None:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, (str, bytes)):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None
    return None


def _request_body(body: Any) -> bytes | None:
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    seek, tell, read = (getattr(body, name, None) for name in ("seek", "tell", "read"))
    if callable(seek) and callable(tell) and callable(read):  # a seekable file: read it back, restore
        position = tell()
        try:
            seek(0)
            data = read()
        finally:
            seek(position)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return None


def _replay_body(data: bytes) -> Any:
    """A fresh StreamingBody over the bytes logtap read, so the caller reads the whole body."""
    return _streaming_body()(io.BytesIO(data), len(data))


_BODY_CLASS: list[Any] = []


def _streaming_body() -> Any:
    """botocore's StreamingBody class, imported once (on the first InvokeModel)."""
    if not _BODY_CLASS:
        from botocore.response import StreamingBody

        _BODY_CLASS.append(StreamingBody)
    return _BODY_CLASS[0]


def _failed_body(error: BaseException) -> Any:
    """A StreamingBody whose reads raise ``error``, the error logtap met reading the real body."""
    from botocore.response import StreamingBody

    class FailedBody(StreamingBody):  # type: ignore[misc]
        def read(self, amt: int | None = None) -> bytes:
            raise error

    return FailedBody(io.BytesIO(b""), 0)
