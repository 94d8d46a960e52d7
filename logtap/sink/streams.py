"""Record streaming responses without delaying a chunk.

The caller's ``EventStream`` becomes a recording one in place: its class is switched to a subclass
(:class:`RecordingEventStream`, or the aiobotocore one), so the caller keeps the very object botocore
made, with its state, ``isinstance`` checks, ``get_initial_response`` and ``close``. Each event is
handed to the caller the moment botocore parses it; logtap only notes it on the way through, with
one C-level ``list.append`` inside botocore's own loop (no extra generator, no Python call per
event, no copying, no decoding). InvokeModelWithResponseStream notes each chunk's payload
``bytes`` (two lookups) instead of the event: the two dicts around it are then freed at once
instead of living until the writer thread takes the record, which spares the garbage collector
(its collections are triggered by the number of live container objects, and queued events were
most of them). ConverseStream events are kept as botocore made them (turning each into JSON
bytes on the way costs the calling thread more than the collector saves: measured, not kept).

Everything else waits for the sink's writer thread:

- ConverseStream is aggregated into a Converse-shaped response (``output.message``, ``stopReason``,
  ``usage``, ``metrics``...), as Bedrock logs it;
- InvokeModelWithResponseStream keeps each ``chunk.bytes``, decoded into the array Bedrock logs; the
  token counts come from the last chunk's ``amazon-bedrock-invocationMetrics``.

The record is completed when the stream ends. A stream that raises midway is recorded with the
error's code as ``errorCode`` (``EventStreamError`` code such as ``ModelStreamErrorException``, or the
exception class name), one the caller closes or drops before the end with ``errorCode``
``"StreamAbandoned"``; both keep the part received so far.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import orjson
from botocore.eventstream import EventStream

from logtap.sink.records import int_or_none

log = logging.getLogger("logtap.sink")

ABANDONED = "StreamAbandoned"
#: The operation whose recording streams keep each chunk's payload bytes rather than the event dicts.
CHUNK_OPERATION = "InvokeModelWithResponseStream"


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
        self.add_all((event,))

    def add_all(self, events: Iterable[Any]) -> None:
        """Note ``events`` in order (one loop, no call per event); one that is not understood is skipped."""
        blocks = self.blocks
        for event in events:
            try:
                if "contentBlockDelta" in event:
                    body = event["contentBlockDelta"]
                    index = body.get("contentBlockIndex", 0)
                    block = blocks.get(index)
                    if block is None:
                        block = blocks[index] = {}
                    delta = body.get("delta") or {}
                    text = delta.get("text") if len(delta) == 1 else None
                    if text is not None:  # the usual event: one piece of text
                        pieces = block.get("text")
                        if pieces is None:
                            block["text"] = [text]
                        else:
                            pieces.append(text)
                        continue
                    for kind, value in delta.items():
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
                    block = blocks.setdefault(body.get("contentBlockIndex", 0), {})
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
            except Exception:
                log.debug("logtap sink: could not note a stream event", exc_info=True)

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
    """Collects one stream's events; :meth:`done` runs exactly once, when the stream finishes.

    Per event the caller's thread does one C-level ``events.append`` of the event botocore parsed:
    the Converse-shaped response and the decoded chunk array are built from these events on the
    writer thread. ``finish`` notes how many events the stream had, so events a second reader still
    pulls after the stream was abandoned are left out.

    ``done`` calls ``on_done(recorder, error_code)``; the sink's own recorder (``calls._StreamCall``)
    overrides it instead, so finishing a stream costs no extra call layer.
    """

    __slots__ = ("_count", "_on_done", "events", "operation")

    def __init__(self, operation: str,
                 on_done: Callable[[StreamRecorder, str | None], None] | None = None) -> None:
        self.operation = operation
        self.events: list[Any] = []
        self._on_done = on_done
        self._count = -1
        _LIVE[id(self)] = self

    def on_event(self, event: Any) -> None:
        """Note one event (the recording streams call ``events.append`` itself, with no Python frame)."""
        self.events.append(event)

    @property
    def is_converse(self) -> bool:
        return self.operation == "ConverseStream"

    @property
    def finished(self) -> bool:
        return self._count >= 0

    def finish(self, error_code: str | None) -> None:
        # Leaving _LIVE is the exactly-once guard: dict.pop is atomic, so of a stream's end, close(),
        # garbage collection and the exit hook (any thread) only the first goes on.
        if _LIVE.pop(id(self), None) is None:
            return
        self._count = len(self.events)
        try:
            self.done(error_code)
        except Exception:
            log.warning("logtap sink: could not record a %s stream", self.operation, exc_info=True)

    def abandon(self) -> None:
        self.finish(ABANDONED)

    def done(self, error_code: str | None) -> None:
        """The stream finished (``error_code`` None: read to the end)."""
        if self._on_done is not None:
            self._on_done(self, error_code)

    # -- results --------------------------------------------------------------------------------
    def recorded(self) -> list[Any]:
        """The events received before the stream finished."""
        return self.events[: self._count] if self._count >= 0 else list(self.events)

    def response(self) -> Any:
        """The logged response, built later on the writer thread (``build_body()``), not on the caller's.

        It reads the events received before the stream finished without copying them (``islice``), so
        events a second reader still appends meanwhile stay out."""
        events = islice(self.events, self._count) if self._count >= 0 else list(self.events)
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


def set_tokens(call: Any, counts: dict[str, Any], names: tuple[str, str, str, str]) -> None:
    """Token counts into ``call`` (a CompletedCall) unless the caller's thread already set them."""
    if call.input_tokens is not None or call.output_tokens is not None:
        return
    get = counts.get
    call.input_tokens = int_or_none(get(names[0]))
    call.output_tokens = int_or_none(get(names[1]))
    call.cache_read_tokens = int_or_none(get(names[2]))
    call.cache_write_tokens = int_or_none(get(names[3]))


USAGE_NAMES = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
METRIC_NAMES = ("inputTokenCount", "outputTokenCount", "cacheReadInputTokenCount", "cacheWriteInputTokenCount")


def _chunk_bytes(events: list[Any]) -> list[bytes]:
    """The ``chunk.bytes`` payloads of InvokeModelWithResponseStream events (other events skipped).

    An entry is an event as botocore parsed it, or (what the recording streams keep) a chunk's
    payload ``bytes`` itself."""
    out: list[bytes] = []
    for event in events:
        if event.__class__ is bytes:
            out.append(event)
            continue
        try:
            data = event["chunk"]["bytes"]
        except Exception:  # not a chunk event (or not a dict): nothing to keep
            continue
        if isinstance(data, (bytes, bytearray)):
            out.append(bytes(data))
    return out


class _Aggregated:
    """A finished ConverseStream; turned into the Converse-shaped response by the writer."""

    def __init__(self, events: Iterable[Any]) -> None:
        self.events = events

    def build_body(self) -> dict[str, Any]:
        aggregator = ConverseAggregator()
        aggregator.add_all(self.events)
        return aggregator.response()

    def fill_tokens(self, call: Any, body: dict[str, Any]) -> None:
        """On the writer thread: the call's token counts from the aggregated ``usage``."""
        usage = body.get("usage")
        set_tokens(call, usage if isinstance(usage, dict) else {}, USAGE_NAMES)


class _ChunkList:
    """InvokeModelWithResponseStream chunk events; decoded into a JSON array by the writer."""

    def __init__(self, events: Iterable[Any]) -> None:
        self.events = events

    def build_body(self) -> list[Any]:
        out: list[Any] = []
        loads = orjson.loads
        for event in self.events:  # what _chunk_bytes does, in the same loop
            if event.__class__ is bytes:  # a chunk's payload, as the recording streams keep it
                raw = event
            else:
                try:
                    raw = event["chunk"]["bytes"]
                except Exception:  # not a chunk event (or not a dict): nothing to keep
                    continue
                if not isinstance(raw, (bytes, bytearray)):
                    continue
            try:
                out.append(loads(raw))
            except orjson.JSONDecodeError:
                out.append(bytes(raw).decode("utf-8", "replace"))
        return out

    def fill_tokens(self, call: Any, body: list[Any]) -> None:
        """On the writer thread: the call's token counts from the last chunk's invocation metrics."""
        set_tokens(call, _metrics_of(body[-1]) if body else {}, METRIC_NAMES)


#: Recorders of streams not yet finished (a plain dict: cheaper per call than a WeakSet). Each enters it
#: when created and leaves it in ``finish``, which runs at the stream's end, error, close(), garbage
#: collection or interpreter exit.
_LIVE: dict[int, StreamRecorder] = {}


def abandon_live_streams() -> None:
    """At interpreter exit: record streams still open as abandoned."""
    for recorder in list(_LIVE.values()):
        recorder.abandon()


def _inline_iter_ok() -> bool:
    """Whether botocore's ``EventStream.__iter__`` is the loop :class:`RecordingEventStream` repeats."""
    code = getattr(EventStream.__iter__, "__code__", None)
    names = set(getattr(code, "co_names", ()))
    return {"_event_generator", "_parse_event"} <= names and len(names) == 2


#: botocore's own loop is ``for event in self._event_generator: parsed = self._parse_event(event);
#: if parsed: yield parsed``. RecordingEventStream runs that same loop with the ``append`` inside, so
#: each event goes through one generator, not botocore's wrapped in logtap's. With a botocore whose
#: loop differs, it wraps botocore's generator instead.
_INLINE_ITER = _inline_iter_ok()


class _Abandoning:
    """What the sync and async recording streams share: a stream closed, or dropped before its end,
    is recorded as abandoned."""

    __dict__: dict[str, Any]

    def close(self) -> None:
        self.__dict__["_logtap_recorder"].abandon()
        super().close()  # type: ignore[misc]

    def __del__(self) -> None:
        recorder = self.__dict__.get("_logtap_recorder")
        if recorder is not None and id(recorder) in _LIVE:
            recorder.abandon()


class RecordingEventStream(_Abandoning, EventStream):  # type: ignore[misc]
    """A botocore ``EventStream`` that reports every event to a :class:`StreamRecorder`."""

    def __iter__(self) -> Iterator[Any]:
        recorder: StreamRecorder = self._logtap_recorder
        note = recorder.events.append
        try:
            if _INLINE_ITER and recorder.operation == CHUNK_OPERATION:
                parse = self._parse_event
                for raw in self._event_generator:
                    event = parse(raw)
                    if event:
                        # the chunk's payload only (a bytes object), not the two dicts around it: the
                        # garbage collector then has two fewer containers per event to count and scan
                        # until the writer thread has taken the record
                        try:
                            data = event["chunk"]["bytes"]
                        except Exception:  # not a chunk event: kept whole, as the writer expects
                            data = event
                        note(data if data.__class__ is bytes else event)
                        yield event
            elif _INLINE_ITER:
                parse = self._parse_event
                for raw in self._event_generator:
                    event = parse(raw)
                    if event:
                        note(event)
                        yield event
            else:
                for event in super().__iter__():
                    note(event)
                    yield event
        except GeneratorExit:
            raise
        except BaseException as exc:
            recorder.finish(error_code_of(exc))
            raise
        recorder.finish(None)



def recording_class(stream: Any) -> type[Any] | None:
    """The recording class for ``stream`` (botocore or aiobotocore event stream), None if unknown."""
    if type(stream) is EventStream:
        return RecordingEventStream
    aio = _aio_class()
    if aio is None or type(stream) is not aio.__bases__[-1]:
        return None
    return aio


def wrap_event_stream(stream: Any, recorder: StreamRecorder, cls: type[Any] | None = None) -> Any:
    """``stream`` itself, now recording into ``recorder`` (its class switched to ``cls``), or ``stream``
    untouched when it is no event stream logtap knows.

    ``cls``: the class :func:`recording_class` gave (looked up here when not given).
    """
    if cls is None:
        cls = recording_class(stream)
        if cls is None:
            _LIVE.pop(id(recorder), None)
            return stream
    try:  # the same object, now recording: its state, identity and isinstance checks stay as they were
        stream.__class__ = cls
    except TypeError:  # a layout __class__ assignment refuses: a recording copy sharing the state
        copy: Any = object.__new__(cls)
        copy.__dict__.update(stream.__dict__)
        stream = copy
    stream._logtap_recorder = recorder
    return stream


_AIO: list[type[Any] | None] = []


def _aio_class() -> type[Any] | None:
    if not _AIO:
        try:
            from aiobotocore.eventstream import AioEventStream
        except ImportError:
            _AIO.append(None)
        else:
            class RecordingAioEventStream(_Abandoning, AioEventStream):  # type: ignore[misc]
                def __aiter__(self) -> AsyncIterator[Any]:
                    return self._logtap_iter()

                async def _logtap_iter(self) -> AsyncIterator[Any]:
                    recorder: StreamRecorder = self._logtap_recorder
                    note = recorder.events.append
                    try:
                        if recorder.operation == CHUNK_OPERATION:
                            async for event in AioEventStream.__aiter__(self):
                                try:  # the payload only, as RecordingEventStream does
                                    data = event["chunk"]["bytes"]
                                except Exception:
                                    data = event
                                note(data if data.__class__ is bytes else event)
                                yield event
                        else:
                            async for event in AioEventStream.__aiter__(self):
                                note(event)
                                yield event
                    except GeneratorExit:
                        raise
                    except BaseException as exc:
                        recorder.finish(error_code_of(exc))
                        raise
                    recorder.finish(None)

            _AIO.append(RecordingAioEventStream)
    return _AIO[0]
