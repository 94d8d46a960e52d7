"""Record streaming responses without delaying a chunk.

The caller's ``EventStream`` is replaced by a subclass sharing its state (``__dict__``), so
``isinstance`` checks, ``get_initial_response`` and ``close`` behave as before. Each event is
handed to the caller the moment botocore parses it; logtap only notes it on the way through:

- ConverseStream is aggregated (on the writer thread) into a Converse-shaped response
  (``output.message``, ``stopReason``, ``usage``, ``metrics``...), as Bedrock logs it;
- InvokeModelWithResponseStream keeps each ``chunk.bytes`` (decoded on the writer thread into the
  array Bedrock logs); the token counts come from the last chunk's
  ``amazon-bedrock-invocationMetrics``.

On the caller's thread logtap only keeps a reference to each event (one ``list.append``).

The record is completed when the stream ends. A stream that raises midway is recorded with the
error's code as ``errorCode`` (``EventStreamError`` code such as ``ModelStreamErrorException``, or the
exception class name), one the caller closes or drops before the end with ``errorCode``
``"StreamAbandoned"``; both keep the part received so far.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
from botocore.eventstream import EventStream

log = logging.getLogger("logtap.sink")

ABANDONED = "StreamAbandoned"


def error_code_of(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__


class ConverseAggregator:
    """Builds the Converse response a ConverseStream amounts to."""

    def __init__(self) -> None:
        self.role = "assistant"
        self.blocks: dict[int, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, event: dict[str, Any]) -> None:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            block = self.blocks.setdefault(body.get("contentBlockIndex", 0), {})
            for kind, value in (body.get("delta") or {}).items():
                if kind == "text":
                    block.setdefault("text", []).append(value)
                elif kind == "toolUse":
                    block.setdefault("toolUse", {}).setdefault("input", []).append(value.get("input", ""))
                elif kind == "reasoningContent":
                    reasoning = block.setdefault("reasoningContent", {})
                    for part, piece in value.items():
                        reasoning.setdefault(part, []).append(piece)
                else:
                    block.setdefault(kind, []).append(value)
        elif "contentBlockStart" in event:
            body = event["contentBlockStart"]
            block = self.blocks.setdefault(body.get("contentBlockIndex", 0), {})
            start = body.get("start") or {}
            if "toolUse" in start:
                block.setdefault("toolUse", {}).update(
                    {k: v for k, v in start["toolUse"].items() if k != "input"})
        elif "messageStart" in event:
            self.role = event["messageStart"].get("role", self.role)
        elif "messageStop" in event:
            self.extra.update(event["messageStop"])
        elif "metadata" in event:
            meta = event["metadata"]
            self.usage = meta.get("usage")
            self.extra.update({k: v for k, v in meta.items() if k != "usage"})

    def response(self) -> dict[str, Any]:
        content = [_finish_block(self.blocks[i]) for i in sorted(self.blocks)]
        out: dict[str, Any] = {"output": {"message": {"role": self.role, "content": content}}}
        if "stopReason" in self.extra:
            out["stopReason"] = self.extra["stopReason"]
        if "metrics" in self.extra:
            out["metrics"] = self.extra["metrics"]
        if self.usage is not None:
            out["usage"] = self.usage
        for key, value in self.extra.items():
            if key not in out:
                out[key] = value
        return out


def _finish_block(block: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, value in block.items():
        if kind == "text":
            out["text"] = "".join(value)
        elif kind == "toolUse":
            tool = {k: v for k, v in value.items() if k != "input"}
            text = "".join(value.get("input", []))
            try:
                tool["input"] = json.loads(text) if text else {}
            except ValueError:
                tool["input"] = text
            out["toolUse"] = tool
        elif kind == "reasoningContent":
            text = "".join(p for p in value.get("text", []) if isinstance(p, str))
            reasoning: dict[str, Any] = {"text": text}
            signature = "".join(p for p in value.get("signature", []) if isinstance(p, str))
            if signature:
                reasoning["signature"] = signature
            redacted = b"".join(p for p in value.get("redactedContent", []) if isinstance(p, bytes))
            if redacted:  # JSON has no bytes: base64 text, as logtap logs Converse's own bytes
                out["reasoningContent"] = {"redactedContent": base64.b64encode(redacted).decode("ascii")}
            else:
                out["reasoningContent"] = {"reasoningText": reasoning}
        else:
            out[kind] = value[-1] if isinstance(value, list) and len(value) == 1 else value
    return out


class StreamRecorder:
    """Collects one stream's events; calls ``on_done(recorder, error_code)`` exactly once.

    Per event the caller's thread does one C-level ``list.append`` of the event botocore parsed (no
    Python frame, no copying, no decoding): the Converse-shaped response and the decoded chunk array
    are built from these events on the writer thread. ``finish`` notes how many events the stream
    had, so events a second reader still pulls after the stream was abandoned are left out.
    """

    def __init__(self, operation: str, on_done: Callable[[StreamRecorder, str | None], None]) -> None:
        self.operation = operation
        self.is_converse = operation == "ConverseStream"
        self.events: list[Any] = []
        #: Called with every event on the caller's thread: the bound ``append`` itself.
        self.on_event: Callable[[Any], None] = self.events.append
        self._on_done = on_done
        self._lock = threading.Lock()
        self._count = 0
        self.finished = False

    def finish(self, error_code: str | None) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
            self._count = len(self.events)
        _LIVE.pop(id(self), None)
        try:
            self._on_done(self, error_code)
        except Exception:
            log.warning("logtap sink: could not record a %s stream", self.operation, exc_info=True)

    def abandon(self) -> None:
        self.finish(ABANDONED)

    # -- results --------------------------------------------------------------------------------
    def recorded(self) -> list[Any]:
        """The events received before the stream finished."""
        return self.events[: self._count]

    def response(self) -> Any:
        """The logged response, built later on the writer thread (``build_body()``), not on the caller's."""
        events = self.recorded()
        return _Aggregated(events) if self.is_converse else _ChunkList(events)

    def usage(self) -> dict[str, Any] | None:
        """ConverseStream: the ``usage`` of the (last) ``metadata`` event."""
        for event in reversed(self.recorded()):
            if isinstance(event, dict) and "metadata" in event:
                meta = event["metadata"]
                usage = meta.get("usage") if isinstance(meta, dict) else None
                return usage if isinstance(usage, dict) else None
        return None

    def invocation_metrics(self) -> dict[str, Any]:
        """``amazon-bedrock-invocationMetrics`` of the last InvokeModelWithResponseStream chunk."""
        chunks = _chunk_bytes(self.recorded()[-1:])
        if not chunks:
            return {}
        try:
            last = orjson.loads(chunks[-1])
        except orjson.JSONDecodeError:
            return {}
        return _metrics_of(last)


def _metrics_of(chunk: Any) -> dict[str, Any]:
    metrics = chunk.get("amazon-bedrock-invocationMetrics") if isinstance(chunk, dict) else None
    return metrics if isinstance(metrics, dict) else {}


def _set_tokens(call: Any, counts: dict[str, Any], names: tuple[str, str, str, str]) -> None:
    """Token counts into ``call`` (a CompletedCall) unless the caller's thread already set them."""
    if call.input_tokens is not None or call.output_tokens is not None:
        return
    call.input_tokens, call.output_tokens, call.cache_read_tokens, call.cache_write_tokens = (
        _int(counts.get(name)) for name in names)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_USAGE_NAMES = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
_METRIC_NAMES = ("inputTokenCount", "outputTokenCount", "cacheReadInputTokenCount", "cacheWriteInputTokenCount")


def _chunk_bytes(events: list[Any]) -> list[bytes]:
    """The ``chunk.bytes`` payloads of InvokeModelWithResponseStream events (other events skipped)."""
    out: list[bytes] = []
    for event in events:
        try:
            data = event["chunk"]["bytes"]
        except Exception:  # not a chunk event (or not a dict): nothing to keep
            continue
        if isinstance(data, (bytes, bytearray)):
            out.append(bytes(data))
    return out


class _Aggregated:
    """A finished ConverseStream; turned into the Converse-shaped response by the writer."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def build_body(self) -> dict[str, Any]:
        aggregator = ConverseAggregator()
        for event in self.events:
            try:
                aggregator.add(event)
            except Exception:
                log.debug("logtap sink: could not note a stream event", exc_info=True)
        return aggregator.response()

    def fill_tokens(self, call: Any, body: dict[str, Any]) -> None:
        """On the writer thread: the call's token counts from the aggregated ``usage``."""
        usage = body.get("usage")
        _set_tokens(call, usage if isinstance(usage, dict) else {}, _USAGE_NAMES)


class _ChunkList:
    """InvokeModelWithResponseStream chunk events; decoded into a JSON array by the writer."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def build_body(self) -> list[Any]:
        out: list[Any] = []
        for raw in _chunk_bytes(self.events):
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                out.append(raw.decode("utf-8", "replace"))
        return out

    def fill_tokens(self, call: Any, body: list[Any]) -> None:
        """On the writer thread: the call's token counts from the last chunk's invocation metrics."""
        _set_tokens(call, _metrics_of(body[-1]) if body else {}, _METRIC_NAMES)


#: Recorders of streams not yet finished (a plain dict: cheaper per call than a WeakSet). Each leaves
#: it in ``finish``, which runs at the stream's end, error, close() or garbage collection.
_LIVE: dict[int, StreamRecorder] = {}


def abandon_live_streams() -> None:
    """At interpreter exit: record streams still open as abandoned."""
    for recorder in list(_LIVE.values()):
        recorder.abandon()


class RecordingEventStream(EventStream):  # type: ignore[misc]
    """A botocore ``EventStream`` that reports every event to a :class:`StreamRecorder`."""

    def __iter__(self) -> Iterator[Any]:
        recorder: StreamRecorder = self._logtap_recorder
        note = recorder.on_event
        try:
            for event in super().__iter__():
                note(event)
                yield event
        except GeneratorExit:
            raise
        except BaseException as exc:
            recorder.finish(error_code_of(exc))
            raise
        recorder.finish(None)

    def close(self) -> None:
        self._logtap_recorder.abandon()
        super().close()

    def __del__(self) -> None:  # dropped before the end: recorded as abandoned
        recorder = self.__dict__.get("_logtap_recorder")
        if recorder is not None and not recorder.finished:
            recorder.abandon()


def wrap_event_stream(stream: Any, recorder: StreamRecorder) -> Any:
    """A recording copy of ``stream`` (botocore or aiobotocore), or ``stream`` itself if unknown."""
    cls: type[Any]
    if type(stream) is EventStream:
        cls = RecordingEventStream
    else:
        aio = _aio_class()
        if aio is None or type(stream) is not aio.__mro__[1]:
            return stream
        cls = aio
    wrapped: Any = object.__new__(cls)
    wrapped.__dict__.update(stream.__dict__)
    wrapped._logtap_recorder = recorder
    _LIVE[id(recorder)] = recorder
    return wrapped


_AIO: list[type[Any] | None] = []


def _aio_class() -> type[Any] | None:
    if not _AIO:
        try:
            from aiobotocore.eventstream import AioEventStream
        except ImportError:
            _AIO.append(None)
        else:
            class RecordingAioEventStream(AioEventStream):  # type: ignore[misc]
                def __aiter__(self) -> AsyncIterator[Any]:
                    return self._logtap_iter()

                async def _logtap_iter(self) -> AsyncIterator[Any]:
                    recorder: StreamRecorder = self._logtap_recorder
                    try:
                        async for event in AioEventStream.__aiter__(self):
                            recorder.on_event(event)
                            yield event
                    except GeneratorExit:
                        raise
                    except BaseException as exc:
                        recorder.finish(error_code_of(exc))
                        raise
                    recorder.finish(None)

                def close(self) -> None:
                    self._logtap_recorder.abandon()
                    super().close()

                def __del__(self) -> None:
                    recorder = self.__dict__.get("_logtap_recorder")
                    if recorder is not None and not recorder.finished:
                        recorder.abandon()

            _AIO.append(RecordingAioEventStream)
    return _AIO[0]
