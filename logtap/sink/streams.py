"""Record streaming responses without delaying a chunk.

The caller's ``EventStream`` is replaced by a subclass sharing its state (``__dict__``), so
``isinstance`` checks, ``get_initial_response`` and ``close`` behave as before. Each event is
handed to the caller the moment botocore parses it; logtap only notes it on the way through:

- ConverseStream is aggregated into a Converse-shaped response (``output.message``, ``stopReason``,
  ``usage``, ``metrics``...), as Bedrock logs it;
- InvokeModelWithResponseStream keeps each ``chunk.bytes`` (decoded on the writer thread into the
  array Bedrock logs); the token counts come from the last chunk's
  ``amazon-bedrock-invocationMetrics``.

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
    """Collects one stream's events; calls ``on_done(recorder, error_code)`` exactly once."""

    def __init__(self, operation: str, on_done: Callable[[StreamRecorder, str | None], None]) -> None:
        self.operation = operation
        self.converse = ConverseAggregator() if operation == "ConverseStream" else None
        self.chunks: list[bytes] = []
        self._on_done = on_done
        self._lock = threading.Lock()
        self.finished = False
        # Per event, one bound method chosen here (no per-event branch on the operation): this runs on
        # the caller's thread for every chunk, so it only keeps references (text pieces, chunk bytes).
        self.on_event: Callable[[Any], None]
        if self.converse is not None:
            self._add = self.converse.add
            self.on_event = self._note_converse
        else:
            self._append = self.chunks.append
            self.on_event = self._note_chunk

    def _note_converse(self, event: Any) -> None:
        if self.finished:  # abandoned (close() / exit) while another thread still reads: keep it as it was
            return
        try:
            self._add(event)
        except Exception:
            log.debug("logtap sink: could not note a stream event", exc_info=True)

    def _note_chunk(self, event: Any) -> None:
        if self.finished:
            return
        try:
            data = event["chunk"]["bytes"]
        except Exception:  # not a chunk event (or not a dict): nothing to keep
            return
        if type(data) is bytes:
            self._append(data)
        elif isinstance(data, (bytes, bytearray)):
            self._append(bytes(data))

    def finish(self, error_code: str | None) -> None:
        with self._lock:
            if self.finished:
                return
            self.finished = True
        _LIVE.pop(id(self), None)
        try:
            self._on_done(self, error_code)
        except Exception:
            log.warning("logtap sink: could not record a %s stream", self.operation, exc_info=True)

    def abandon(self) -> None:
        self.finish(ABANDONED)

    # -- results --------------------------------------------------------------------------------
    def response(self) -> Any:
        """The logged response, built later on the writer thread (``build_body()``), not on the caller's."""
        if self.converse is not None:
            return _Aggregated(self.converse)
        return _ChunkList(self.chunks)

    def invocation_metrics(self) -> dict[str, Any]:
        """``amazon-bedrock-invocationMetrics`` of the last InvokeModelWithResponseStream chunk."""
        if not self.chunks:
            return {}
        try:
            last = orjson.loads(self.chunks[-1])
        except orjson.JSONDecodeError:
            return {}
        metrics = last.get("amazon-bedrock-invocationMetrics") if isinstance(last, dict) else None
        return metrics if isinstance(metrics, dict) else {}


class _Aggregated:
    """A finished ConverseStream; turned into the Converse-shaped response by the writer."""

    def __init__(self, aggregator: ConverseAggregator) -> None:
        self.aggregator = aggregator

    def build_body(self) -> dict[str, Any]:
        return self.aggregator.response()


class _ChunkList:
    """InvokeModelWithResponseStream chunk payloads; decoded into a JSON array by the writer."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def build_body(self) -> list[Any]:
        out: list[Any] = []
        for raw in self.chunks:
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                out.append(raw.decode("utf-8", "replace"))
        return out


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
