"""Per-client botocore hooks that see each bedrock-runtime call complete.

``before-parameter-build`` notes the start time and keeps a reference to the call's parameters
(the middleware, registered on the same events, edits that same dict); ``after-call`` snapshots
request and response and hands the finished call to the sink and to observers (the Powertools
logger / metrics hooks). For a stream it only snapshots the request and makes the stream record;
when the stream ends, the :class:`_StreamCall` itself is queued and the writer thread builds the
call, the aggregated response and the token counts (observers, when there are any, get theirs at
once). Every hook body is guarded: an internal error is logged and the caller's call goes on
untouched. Handlers are plain functions except ``after-call`` of InvokeModel on an aiobotocore
client, which must ``await`` the body.
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

from logtap.sink.records import PLAIN_JSON, CompletedCall, DeferredCall, Snapshot, snapshot
from logtap.sink.streams import (
    _LIVE,
    RecordingEventStream,
    StreamRecorder,
    recording_class,
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
            if http_response.status_code < 300 and (name == "ConverseStream"
                                                    or name == "InvokeModelWithResponseStream"):
                self._stream(name, state, parsed, context)
                return
            call = self._base_call(name, state, parsed, context)
            if http_response.status_code >= 300:
                self._failed(call, state, parsed)
            elif name == "Converse":
                self._converse(call, state, parsed)
            elif model.name == "InvokeModel":
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
                self._invoke(call, state, _headers(parsed, http_response), data)
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
            call = self._base_call(model.name, state, parsed, context)
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
            self._invoke(call, state, _headers(parsed, http_response), data)
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

    def _converse(self, call: CompletedCall, state: _CallState, parsed: dict[str, Any]) -> None:
        call.request = snapshot({k: v for k, v in state.params.items() if k not in ("modelId", "requestMetadata")})
        call.response = snapshot({k: v for k, v in parsed.items() if k != "ResponseMetadata"})
        _usage(call, parsed.get("usage"))
        self._finish(call, state.t0)

    def _invoke(self, call: CompletedCall, state: _CallState, headers: Any, data: bytes) -> None:
        call.request = _request_body(state.params.get("body"))
        call.response = data
        call.input_tokens = _int_header(headers, "x-amzn-bedrock-input-token-count")
        call.output_tokens = _int_header(headers, "x-amzn-bedrock-output-token-count")
        call.cache_read_tokens = _int_header(headers, "x-amzn-bedrock-cache-read-input-token-count")
        call.cache_write_tokens = _int_header(headers, "x-amzn-bedrock-cache-write-input-token-count")
        self._finish(call, state.t0)

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
        else:
            request = _request_body(params.get("body"))
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


class _StreamCall(StreamRecorder, DeferredCall):
    """A stream call: its recorder while it is read, then the call the writer turns into a record.

    The calling thread only snapshots the request and keeps a few references and numbers; when the
    stream ends it notes the time and queues this object itself. The :class:`CompletedCall`, the
    aggregated response and the token counts are built by :meth:`completed` on the writer thread,
    unless observers want the summary at once.
    """

    __slots__ = ("ended", "error_code", "hooks", "metadata", "request", "request_id", "state")

    def __init__(self, operation: str, hooks: ClientHooks, state: _CallState, request: Any,
                 metadata: dict[str, str] | None, request_id: Any) -> None:
        # What StreamRecorder.__init__ does, written out (this runs for every stream call); ``ended``
        # and ``error_code`` are set by done(), which completed() always follows.
        self.operation = operation
        self.events: list[Any] = []
        self._count = -1
        _LIVE[id(self)] = self
        self.hooks = hooks
        self.state = state
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
                _usage(call, self.usage())
            else:
                metrics = self.invocation_metrics()
                call.input_tokens = _int(metrics.get("inputTokenCount"))
                call.output_tokens = _int(metrics.get("outputTokenCount"))
                call.cache_read_tokens = _int(metrics.get("cacheReadInputTokenCount"))
                call.cache_write_tokens = _int(metrics.get("cacheWriteInputTokenCount"))
            hooks._finish(call, self.state.t0)
            return
        sink = hooks.sink
        if sink is not None:
            sink.submit(self)

    def completed(self) -> CompletedCall:
        """The finished call (on the writer thread; the builder makes the response's body there too)."""
        request = self.request
        request_id = self.request_id
        hooks = self.hooks
        # ConverseStream: the request's JSON, serialized on the calling thread (or a Snapshot already)
        if isinstance(request, bytes) and self.is_converse:
            request = Snapshot(request)
        # positional: operation, model_id, region, started, request_id, request_metadata, request, response,
        # input/output/cache-read/cache-write tokens, latency_ms, error_code, identity
        state = self.state
        return CompletedCall(self.operation, str(state.params.get("modelId", "")), hooks.region, state.started,
                             request_id if isinstance(request_id, str) and request_id else str(uuid.uuid4()),
                             self.metadata or None, request, self.response(), None, None, None, None,
                             int((self.ended - state.t0) * 1000), self.error_code, hooks.identity)


def _usage(call: CompletedCall, usage: Any) -> None:
    if isinstance(usage, dict):
        call.input_tokens = _int(usage.get("inputTokens"))
        call.output_tokens = _int(usage.get("outputTokens"))
        call.cache_read_tokens = _int(usage.get("cacheReadInputTokens"))
        call.cache_write_tokens = _int(usage.get("cacheWriteInputTokens"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _headers(parsed: dict[str, Any], http_response: Any) -> Any:
    """botocore's lower-cased plain-dict copy of the response headers (cheap lookups), else the originals."""
    metadata = parsed.get("ResponseMetadata")
    headers = metadata.get("HTTPHeaders") if isinstance(metadata, dict) else None
    return headers if isinstance(headers, dict) else http_response.headers


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
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
