"""Writer: ``bedrock-conversation-2024`` records (``schemaVersion``, optional ``system``, ``messages``).

Media is written as ``s3Location`` references only; a block without an S3 URI raises
``Unsupported("inline-media")`` (shaping skips those records first).
"""

from __future__ import annotations

from typing import Any

from logtap.converters.model import (
    Block,
    Document,
    Example,
    Image,
    Reasoning,
    Text,
    ToolResult,
    ToolUse,
    Unsupported,
    Video,
)
from logtap.converters.validate import SCHEMA_VERSION

NAME = "bedrock"


def _location(uri: str | None, owner: str | None) -> dict[str, Any]:
    if not uri:
        raise Unsupported("inline-media", "media without an S3 location")
    loc: dict[str, Any] = {"uri": uri}
    if owner:
        loc["bucketOwner"] = owner
    return {"s3Location": loc}


def block(b: Block) -> dict[str, Any]:
    if isinstance(b, Text):
        return {"text": b.text}
    if isinstance(b, Image):
        return {"image": {"format": b.format, "source": _location(b.uri, b.bucket_owner)}}
    if isinstance(b, Document):
        return {"document": {"format": b.format, "name": b.name, "source": _location(b.uri, b.bucket_owner)}}
    if isinstance(b, Video):
        return {"video": {"format": b.format, "source": _location(b.uri, b.bucket_owner)}}
    if isinstance(b, ToolUse):
        return {"toolUse": {"toolUseId": b.tool_use_id, "name": b.name, "input": b.input}}
    if isinstance(b, ToolResult):
        content: list[dict[str, Any]] = [block(x) for x in b.content] + [{"json": j} for j in b.json]
        result: dict[str, Any] = {"toolUseId": b.tool_use_id, "content": content}
        if b.status:
            result["status"] = b.status
        return {"toolResult": result}
    if isinstance(b, Reasoning):
        if b.redacted:
            raise Unsupported("reasoning", "redacted reasoning cannot be written")
        rt: dict[str, Any] = {"text": b.text}
        if b.signature:
            rt["signature"] = b.signature
        return {"reasoningContent": {"reasoningText": rt}}
    raise Unsupported("unsupported-shape", f"block {type(b).__name__}")


def record(example: Example) -> dict[str, Any]:
    out: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    if example.system:
        out["system"] = [{"text": s} for s in example.system]
    messages = []
    for t in example.turns:
        content = []
        for b in t.content:
            content.append({"text": b.text} if type(b) is Text else block(b))  # type: ignore[union-attr]
        messages.append({"role": t.role, "content": content})
    out["messages"] = messages
    return out
