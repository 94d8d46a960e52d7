"""A local HTTP server that plays ``bedrock-runtime`` for tests and benchmarks.

botocore really serializes, signs and parses against it, including binary event streams
(``application/vnd.amazon.eventstream``, encoded here from scratch: prelude with total and
header lengths, prelude CRC32, string headers, payload, message CRC32).

API
---
``BedrockServer()`` (also a context manager) binds 127.0.0.1 on a free port:

* ``server.start()`` / ``server.stop()``; ``server.url`` (``http://127.0.0.1:<port>``) is the
  ``endpoint_url`` for ``boto3.client("bedrock-runtime", endpoint_url=server.url, ...)``.
* ``server.requests``: every request received, in order, as ``RecordedRequest`` (``method``,
  ``path``, ``headers`` (lower-case names), ``body`` bytes; ``.json()``, ``.operation``
  (``"Converse"``, ``"ConverseStream"``, ``"InvokeModel"``, ``"InvokeModelWithResponseStream"``),
  ``.model_id``, ``.header(name)``, ``.signed_headers`` (from the SigV4 ``Authorization``)).
  ``server.clear()`` forgets them and any queued replies.
* What to answer, checked in this order for each request:
  1. ``server.enqueue(reply, ...)``: a FIFO of ``Reply`` objects, one per request;
  2. ``server.handler = fn``: ``fn(RecordedRequest) -> Reply``;
  3. a default per operation (``default_reply(operation)``): a small successful answer.
* ``server.delay = 0.05``: seconds to wait before every answer (or ``Reply(delay=...)``).
* Reply builders: ``converse_reply(text, ...)``, ``converse_stream_reply(chunks, ...)``,
  ``invoke_reply(body)``, ``invoke_stream_reply(chunks)``, ``anthropic_stream_chunks(texts)``,
  ``error_reply(code, message, status=None)`` (AWS JSON error body + ``x-amzn-ErrorType``;
  statuses known for ThrottlingException 429, ValidationException 400, AccessDeniedException
  403, ...). Streaming replies take ``chunk_delay`` (seconds between events) and may contain
  ``stream_exception(type, message)`` events, which botocore raises mid-stream.
* ``encode_event(headers, payload)`` is the bare event-stream message encoder.
"""

from __future__ import annotations

import base64
import json
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = [
    "BedrockServer",
    "Event",
    "RecordedRequest",
    "Reply",
    "anthropic_stream_chunks",
    "converse_reply",
    "converse_stream_reply",
    "default_reply",
    "encode_event",
    "error_reply",
    "invoke_reply",
    "invoke_stream_reply",
    "stream_exception",
]

EVENTSTREAM = "application/vnd.amazon.eventstream"
_OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}
ERROR_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelNotReadyException": 429,
    "ModelErrorException": 424,
}


# -- event stream encoding ---------------------------------------------------------------------
def _header_bytes(headers: Mapping[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", 7, len(raw_value)) + raw_value  # 7 = string
    return bytes(out)


def encode_event(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message."""
    header_block = _header_bytes(headers)
    total = 12 + len(header_block) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_block))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_block + payload
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


@dataclass
class Event:
    """One event of a streaming reply. ``message_type`` is ``event`` or ``exception``."""

    event_type: str
    payload: Any
    message_type: str = "event"

    def encode(self) -> bytes:
        body = self.payload if isinstance(self.payload, bytes) else json.dumps(self.payload).encode()
        if self.message_type == "exception":
            headers = {
                ":exception-type": self.event_type,
                ":content-type": "application/json",
                ":message-type": "exception",
            }
        else:
            headers = {
                ":event-type": self.event_type,
                ":content-type": "application/json",
                ":message-type": "event",
            }
        return encode_event(headers, body)


@dataclass
class Reply:
    """One HTTP answer. ``events`` makes it an event stream (sent chunked, one event per chunk)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def operation(self) -> str | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "model":
            return _OPERATIONS.get(parts[2])
        return None

    @property
    def model_id(self) -> str | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        return unquote(parts[1]) if len(parts) == 3 and parts[0] == "model" else None

    @property
    def signed_headers(self) -> list[str]:
        auth = self.header("authorization") or ""
        for part in auth.split(","):
            part = part.strip()
            if part.startswith("SignedHeaders="):
                return part[len("SignedHeaders="):].split(";")
        return []


# -- reply builders ----------------------------------------------------------------------------
def _json_reply(body: Any, status: int = 200, extra: Mapping[str, str] | None = None) -> Reply:
    headers = {"Content-Type": "application/json"}
    headers.update(extra or {})
    return Reply(status=status, body=json.dumps(body).encode(), headers=headers)


def converse_reply(
    text: str = "Hello from the local Bedrock.", *, input_tokens: int = 12, output_tokens: int = 7,
    stop_reason: str = "end_turn", latency_ms: int = 42,
) -> Reply:
    return _json_reply({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                  "totalTokens": input_tokens + output_tokens},
        "metrics": {"latencyMs": latency_ms},
    })


def converse_stream_reply(
    chunks: Iterable[str] = ("Hello", " from", " the stream."), *, input_tokens: int = 12,
    output_tokens: int = 7, stop_reason: str = "end_turn", chunk_delay: float = 0.0,
    extra_events: Iterable[Event] = (),
) -> Reply:
    events = [Event("messageStart", {"role": "assistant"})]
    events += [Event("contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": 0}) for text in chunks]
    events += [
        Event("contentBlockStop", {"contentBlockIndex": 0}),
        Event("messageStop", {"stopReason": stop_reason}),
        Event("metadata", {
            "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                      "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": 42},
        }),
    ]
    events += list(extra_events)
    return Reply(headers={"Content-Type": EVENTSTREAM}, events=events, chunk_delay=chunk_delay)


def invoke_reply(body: Any = None, *, content_type: str = "application/json") -> Reply:
    if body is None:
        body = {
            "id": "msg_local", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "Hello from the local Bedrock."}],
            "model": "claude-local", "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 7},
        }
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(body=raw, headers={
        "Content-Type": content_type,
        "X-Amzn-Bedrock-Input-Token-Count": "12",
        "X-Amzn-Bedrock-Output-Token-Count": "7",
    })


def anthropic_stream_chunks(texts: Iterable[str] = ("Hello", " there.")) -> list[dict[str, Any]]:
    """Anthropic Messages streaming chunks, ending with Bedrock's invocation metrics."""
    texts = list(texts)
    chunks: list[dict[str, Any]] = [
        {"type": "message_start", "message": {
            "id": "msg_local", "type": "message", "role": "assistant", "content": [],
            "model": "claude-local", "stop_reason": None,
            "usage": {"input_tokens": 12, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    chunks += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
               for t in texts]
    chunks += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 7}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": 12, "outputTokenCount": 7, "invocationLatency": 42,
            "firstByteLatency": 10}},
    ]
    return chunks


def invoke_stream_reply(
    chunks: Iterable[Any] | None = None, *, chunk_delay: float = 0.0, extra_events: Iterable[Event] = (),
) -> Reply:
    """``chunk`` events whose payload is ``{"bytes": base64(json(chunk))}`` (bytes sent as given)."""
    events = []
    for chunk in anthropic_stream_chunks() if chunks is None else chunks:
        raw = chunk if isinstance(chunk, bytes) else json.dumps(chunk).encode()
        events.append(Event("chunk", {"bytes": base64.b64encode(raw).decode()}))
    events += list(extra_events)
    return Reply(
        headers={"Content-Type": EVENTSTREAM, "X-Amzn-Bedrock-Content-Type": "application/json"},
        events=events, chunk_delay=chunk_delay,
    )


def error_reply(code: str, message: str, status: int | None = None) -> Reply:
    """An AWS rest-json error, as bedrock-runtime sends it."""
    return _json_reply(
        {"message": message}, status=status or ERROR_STATUS.get(code, 400),
        extra={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def stream_exception(exception_type: str, message: str) -> Event:
    """A mid-stream exception event (e.g. ``throttlingException``, ``modelStreamErrorException``)."""
    return Event(exception_type, {"message": message}, message_type="exception")


def default_reply(operation: str | None) -> Reply:
    if operation == "Converse":
        return converse_reply()
    if operation == "ConverseStream":
        return converse_stream_reply()
    if operation == "InvokeModel":
        return invoke_reply()
    if operation == "InvokeModelWithResponseStream":
        return invoke_stream_reply()
    return error_reply("UnknownOperationException", "the local bedrock-runtime does not know this path", 404)


# -- the server --------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body writes
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command, path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
        )
        owner = self.server.owner
        with owner._lock:
            owner.requests.append(request)
        reply = owner._next_reply(request)
        wait = reply.delay or owner.delay
        if wait:
            time.sleep(wait)
        self.send_response(reply.status)
        headers = {"x-amzn-RequestId": f"local-{len(owner.requests)}", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.events is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for index, event in enumerate(reply.events):
            if index and reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: BedrockServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-stream (an abandoned stream) is normal here, not an error."""
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class BedrockServer:
    """See the module docstring."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.handler: Callable[[RecordedRequest], Reply] | None = None
        self.delay = 0.0
        self._queue: queue.SimpleQueue[Reply] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("BedrockServer is not started")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> BedrockServer:
        self._server = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="bedrock-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> BedrockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *replies: Reply) -> None:
        for reply in replies:
            self._queue.put(reply)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
        self.handler = None
        self.delay = 0.0

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def _next_reply(self, request: RecordedRequest) -> Reply:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        if self.handler is not None:
            return self.handler(request)
        return default_reply(request.operation)
