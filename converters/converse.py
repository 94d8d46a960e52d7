"""Converse and ConverseStream bodies (also the base of Amazon Nova's ``messages-v1`` shape).

Requests: ``messages`` with content blocks, optional ``system``. Responses: the Converse response
object (ConverseStream is logged aggregated, in the same shape); should a ConverseStream output be
an event array, it is reassembled from ``messageStart`` / ``contentBlockDelta`` / ``messageStop`` /
``metadata`` events, the same events Nova streams through InvokeModelWithResponseStream.
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
    Video,
    blocks_of,
)
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened, metrics_tokens

_IGNORED_BLOCKS = frozenset({"cachePoint"})


def _media_source(source: Any) -> tuple[str | None, str | None]:
    """(uri, bucketOwner) of a media source; (None, None) for inline bytes."""
    if not isinstance(source, dict):
        raise Unsupported("unsupported-shape", "media block without a source")
    loc = source.get("s3Location")
    if isinstance(loc, dict) and isinstance(loc.get("uri"), str):
        return loc["uri"], loc.get("bucketOwner")
    if isinstance(source.get("s3Uri"), str):  # how invocation logs replace offloaded bytes
        return source["s3Uri"], None
    return None, None


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Unsupported("unsupported-shape", f"{what} is not a string")
    return value


def block(raw: Any) -> Block | None:
    """One Converse content block; None for blocks that carry no content (cachePoint)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise Unsupported("unsupported-shape", "content block is not a single-key object")
    (key, value), = raw.items()
    if key in _IGNORED_BLOCKS:
        return None
    if key == "text":
        return Text(_str(value, "text block"))
    if not isinstance(value, dict):
        raise Unsupported("unsupported-shape", f"{key} block is not an object")
    if key == "guardContent":
        inner = value.get("text")
        if isinstance(inner, dict):
            return Text(_str(inner.get("text"), "guardContent text"))
        if isinstance(value.get("image"), dict):
            uri, owner = _media_source(value["image"].get("source"))
            return Image(str(value["image"].get("format", "")), uri, owner)
        raise Unsupported("unsupported-shape", "guardContent block")
    if key == "image":
        uri, owner = _media_source(value.get("source"))
        return Image(str(value.get("format", "")), uri, owner)
    if key == "document":
        uri, owner = _media_source(value.get("source"))
        return Document(str(value.get("format", "")), str(value.get("name", "")), uri, owner)
    if key == "video":
        uri, owner = _media_source(value.get("source"))
        return Video(str(value.get("format", "")), uri, owner)
    if key == "toolUse":
        return ToolUse(_str(value.get("toolUseId"), "toolUseId"), _str(value.get("name"), "tool name"),
                       value.get("input"))
    if key == "toolResult":
        content: list[Block] = []
        js: list[Any] = []
        for item in value.get("content") or []:
            if isinstance(item, dict) and "json" in item:
                js.append(item["json"])
                continue
            b = block(item)
            if b is not None:
                content.append(b)
        status = value.get("status")
        return ToolResult(_str(value.get("toolUseId"), "toolUseId"), tuple(content),
                          status if isinstance(status, str) else None, tuple(js))
    if key == "reasoningContent":
        if "redactedContent" in value:
            return Reasoning("", None, redacted=True)
        rt = value.get("reasoningText")
        if isinstance(rt, dict):
            sig = rt.get("signature")
            return Reasoning(_str(rt.get("text"), "reasoning text"), sig if isinstance(sig, str) else None)
        raise Unsupported("unsupported-shape", "reasoningContent block")
    raise Unsupported("unsupported-shape", f"content block {key!r}")


def blocks(raw: Any) -> tuple[Block, ...]:
    if type(raw) is list:
        return blocks_of(raw, block, None)
    if isinstance(raw, str):
        return (Text(raw),)
    if not isinstance(raw, list):
        raise Unsupported("unsupported-shape", "message content is not a list")
    return tuple(b for b in (block(item) for item in raw) if b is not None)


def system_texts(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,) if raw else ()
    if not isinstance(raw, list):
        raise Unsupported("unsupported-shape", "system is neither a string nor a list")
    out: list[str] = []
    for item in raw:
        if type(item) is dict and len(item) == 1:
            text = item.get("text")
            if type(text) is str:
                out.append(text)
                continue
        b = block(item)
        if b is None:
            continue
        if not isinstance(b, Text):
            raise Unsupported("non-text-content", "system block is not text")
        out.append(b.text)
    return tuple(out)


_ROLES = ("user", "assistant")


def turns(raw: Any) -> tuple[Turn, ...]:
    if not isinstance(raw, list) or not raw:
        raise Unsupported("unsupported-shape", "messages is missing or empty")
    out: list[Turn] = []
    for msg in raw:
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in _ROLES:
            raise Unsupported("unsupported-shape", f"message role {msg.get('role') if isinstance(msg, dict) else msg!r}")
        out.append(Turn(role, blocks(msg.get("content"))))
    return tuple(out)


@register("request", "converse")
def converse_request(body: dict[str, Any]) -> Prompt:
    system = body.get("system")
    return Prompt(system_texts(system) if system is not None else (), turns(body.get("messages")))


@register("response", "converse")
def converse_response(body: Any) -> Response:
    if not isinstance(body, dict):
        raise Unsupported("unsupported-shape", "Converse output is not an object")
    stop = body.get("stopReason")
    output = body.get("output")
    msg = output.get("message") if isinstance(output, dict) else None
    message = Turn("assistant", blocks(msg.get("content"))) if isinstance(msg, dict) else None
    usage = body.get("usage")
    tin = tout = None
    if isinstance(usage, dict):
        tin = usage.get("inputTokens")
        if type(tin) is not int:
            tin = as_int(tin)
        tout = usage.get("outputTokens")
        if type(tout) is not int:
            tout = as_int(tout)
    return Response(message, stop if isinstance(stop, str) else None, tin, tout,
                    stop == "guardrail_intervened")


def reassemble_events(chunks: list[dict[str, Any]]) -> Response:
    """Rebuild a Converse-shaped response from Converse/Nova stream events."""
    parts: dict[int, dict[str, Any]] = {}
    stop: str | None = None
    tin = tout = None
    for ev in chunks:
        if "contentBlockStart" in ev:
            start = ev["contentBlockStart"]
            idx = int(start.get("contentBlockIndex", 0))
            tool = (start.get("start") or {}).get("toolUse")
            if isinstance(tool, dict):
                parts[idx] = {"kind": "tool", "id": tool.get("toolUseId", ""), "name": tool.get("name", ""), "buf": []}
        elif "contentBlockDelta" in ev:
            d = ev["contentBlockDelta"]
            idx = int(d.get("contentBlockIndex", 0))
            delta = d.get("delta") or {}
            if "text" in delta:
                parts.setdefault(idx, {"kind": "text", "buf": []})["buf"].append(delta["text"])
            elif "toolUse" in delta:
                parts.setdefault(idx, {"kind": "tool", "id": "", "name": "", "buf": []})["buf"].append(
                    delta["toolUse"].get("input", ""))
            elif "reasoningContent" in delta:
                p = parts.setdefault(idx, {"kind": "reasoning", "buf": [], "sig": None})
                rc = delta["reasoningContent"]
                if "text" in rc:
                    p["buf"].append(rc["text"])
                if "signature" in rc:
                    p["sig"] = rc["signature"]
        elif "messageStop" in ev:
            stop = ev["messageStop"].get("stopReason")
        elif "metadata" in ev:
            usage = ev["metadata"].get("usage") or {}
            tin, tout = as_int(usage.get("inputTokens")), as_int(usage.get("outputTokens"))
    content: list[Block] = []
    for idx in sorted(parts):
        p = parts[idx]
        text = "".join(p["buf"])
        if p["kind"] == "text":
            content.append(Text(text))
        elif p["kind"] == "reasoning":
            content.append(Reasoning(text, p.get("sig")))
        else:
            try:
                tool_input = json.loads(text) if text else {}
            except ValueError:
                raise Unsupported("unsupported-shape", "streamed tool input is not JSON") from None
            content.append(ToolUse(p["id"], p["name"], tool_input))
    mtin, mtout = metrics_tokens(chunks)
    return Response(Turn("assistant", tuple(content)) if content else None, stop,
                    tin if tin is not None else mtin, tout if tout is not None else mtout,
                    guardrail_intervened=stop == "guardrail_intervened" or guardrail_intervened(chunks))


@register("stream", "converse")
def converse_stream(body: Any) -> Response:
    return reassemble_events(chunk_list(body))
