"""Anthropic Messages API bodies on InvokeModel (``anthropic_version: bedrock-2023-05-31``).

Request ``system`` is a string or text blocks; message ``content`` is a string or typed blocks
(``text``, ``image``, ``document``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``). Streams are ``message_start`` / ``content_block_*`` / ``message_delta`` /
``message_stop`` events; text, tool input (``input_json_delta``) and thinking are reassembled per
block index.
"""

from __future__ import annotations

import json
from typing import Any

from logtap.converters.model import (
    Block,
    Document,
    Image,
    Prompt,
    Reasoning,
    Response,
    Text,
    ToolResult,
    ToolUse,
    Turn,
    Unsupported,
    blocks_of,
)
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened, metrics_tokens


def _media(source: Any) -> tuple[str, str | None]:
    """(format, uri) of an Anthropic media source; base64 data is never kept (uri None)."""
    if not isinstance(source, dict):
        raise Unsupported("unsupported-shape", "media block without a source")
    fmt = str(source.get("media_type", "")).rsplit("/", 1)[-1]
    uri = source.get("s3Uri") or source.get("url")  # logs may replace offloaded bytes by a URI
    return fmt, uri if isinstance(uri, str) and uri.startswith("s3://") else None


def block(raw: Any) -> Block | None:
    if isinstance(raw, str):
        return Text(raw)
    if not isinstance(raw, dict):
        raise Unsupported("unsupported-shape", "content block is not an object")
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str):
            raise Unsupported("unsupported-shape", "text block without text")
        return Text(text)
    if kind == "image":
        fmt, uri = _media(raw.get("source"))
        return Image(fmt, uri)
    if kind == "document":
        fmt, uri = _media(raw.get("source"))
        return Document(fmt or "txt", str(raw.get("title") or raw.get("name") or ""), uri)
    if kind == "tool_use":
        return ToolUse(str(raw.get("id", "")), str(raw.get("name", "")), raw.get("input"))
    if kind == "tool_result":
        content = raw.get("content")
        items = blocks(content) if content is not None else ()
        return ToolResult(str(raw.get("tool_use_id", "")), items, "error" if raw.get("is_error") else None)
    if kind == "thinking":
        sig = raw.get("signature")
        return Reasoning(str(raw.get("thinking", "")), sig if isinstance(sig, str) else None)
    if kind == "redacted_thinking":
        return Reasoning("", None, redacted=True)
    raise Unsupported("unsupported-shape", f"Anthropic content block type {kind!r}")


def blocks(raw: Any) -> tuple[Block, ...]:
    if type(raw) is list:
        return blocks_of(raw, block, "text")
    if isinstance(raw, str):
        return (Text(raw),)
    if not isinstance(raw, list):
        raise Unsupported("unsupported-shape", "message content is neither a string nor a list")
    return tuple(b for b in (block(item) for item in raw) if b is not None)


@register("request", "anthropic-messages")
def anthropic_request(body: dict[str, Any]) -> Prompt:
    system_raw = body.get("system")
    system: tuple[str, ...] = ()
    if isinstance(system_raw, str):
        system = (system_raw,) if system_raw else ()
    elif isinstance(system_raw, list):
        parts = blocks(system_raw)
        if any(not isinstance(b, Text) for b in parts):
            raise Unsupported("non-text-content", "system block is not text")
        system = tuple(b.text for b in parts if isinstance(b, Text))
    elif system_raw is not None:
        raise Unsupported("unsupported-shape", "system is neither a string nor a list")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise Unsupported("unsupported-shape", "messages is missing or empty")
    turns: list[Turn] = []
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise Unsupported("unsupported-shape", "message role is not user/assistant")
        turns.append(Turn(m["role"], blocks(m.get("content"))))
    return Prompt(system, tuple(turns))


@register("response", "anthropic-messages")
def anthropic_response(body: Any) -> Response:
    if not isinstance(body, dict):
        raise Unsupported("unsupported-shape", "Anthropic output is not an object")
    content = body.get("content")
    message = Turn("assistant", blocks(content)) if isinstance(content, list) else None
    usage: dict[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
    stop = body.get("stop_reason")
    return Response(message, stop if isinstance(stop, str) else None, as_int(usage.get("input_tokens")),
                    as_int(usage.get("output_tokens")), guardrail_intervened(body))


@register("stream", "anthropic-messages")
def anthropic_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    parts: dict[int, dict[str, Any]] = {}
    stop: str | None = None
    tin = tout = None
    for ev in chunks:
        kind = ev.get("type")
        if kind == "content_block_delta":  # the common event first (the kinds are exclusive)
            idx = ev.get("index", 0)
            if type(idx) is not int:
                idx = int(idx)
            p = parts.get(idx)
            if p is None:
                p = parts[idx] = {"type": "text", "buf": [], "sig": None}
            delta = ev.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                p["buf"].append(delta.get("text", ""))
            elif dtype == "input_json_delta":
                p["buf"].append(delta.get("partial_json", ""))
            elif dtype == "thinking_delta":
                p["buf"].append(delta.get("thinking", ""))
            elif dtype == "signature_delta":
                p["sig"] = delta.get("signature")
        elif kind == "message_start":
            usage = (ev.get("message") or {}).get("usage") or {}
            tin = as_int(usage.get("input_tokens"))
        elif kind == "content_block_start":
            cb = ev.get("content_block") or {}
            parts[int(ev.get("index", 0))] = {"type": cb.get("type"), "id": cb.get("id", ""),
                                              "name": cb.get("name", ""), "buf": [cb.get("text", "")],
                                              "sig": None}
        elif kind == "message_delta":
            stop = (ev.get("delta") or {}).get("stop_reason") or stop
            tout = as_int((ev.get("usage") or {}).get("output_tokens")) or tout
    content: list[Block] = []
    for idx in sorted(parts):
        p = parts[idx]
        text = "".join([x for x in p["buf"] if isinstance(x, str)])
        if p["type"] == "tool_use":
            try:
                content.append(ToolUse(p["id"], p["name"], json.loads(text) if text else {}))
            except ValueError:
                raise Unsupported("unsupported-shape", "streamed tool input is not JSON") from None
        elif p["type"] == "thinking":
            content.append(Reasoning(text, p["sig"]))
        elif p["type"] == "redacted_thinking":
            content.append(Reasoning("", None, redacted=True))
        else:
            content.append(Text(text))
    mtin, mtout = metrics_tokens(chunks)
    return Response(Turn("assistant", tuple(content)) if content else None, stop,
                    mtin if mtin is not None else tin, mtout if mtout is not None else tout,
                    guardrail_intervened(chunks))
