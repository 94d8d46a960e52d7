"""AI21 InvokeModel bodies [reference: reconstructed, not seen in logs].

Jamba (and other OpenAI-style chat bodies): ``messages`` with string content; response
``{"choices": [{"message": {"role", "content"}, "finish_reason"}], "usage": {...}}``; streamed as
``{"choices": [{"delta": {"content"}, "finish_reason"}]}`` chunks. Jurassic-2: ``prompt``; response
``{"completions": [{"data": {"text"}, "finishReason": {"reason"}}]}``.
"""

from __future__ import annotations

from typing import Any

from logtap.converters._text import (
    first_dict,
    required_str,
    single_turn,
    stream_text_reply,
    text_reply,
)
from logtap.converters.model import Prompt, Response, Role, Text, Turn, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise Unsupported("non-text-content", "chat message content is not text")


@register("request", "ai21-jamba")
def openai_like_request(body: dict[str, Any]) -> Prompt:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise Unsupported("unsupported-shape", "messages is missing or empty")
    system: list[str] = []
    turns: list[Turn] = []
    for m in msgs:
        role = m.get("role") if isinstance(m, dict) else None
        if role in ("tool", "function") or (isinstance(m, dict) and m.get("tool_calls")):
            raise Unsupported("tool-use", "chat message with tool calls")
        if role == "system":
            system.append(_content_text(m.get("content")))
        elif role in ("user", "assistant"):
            r: Role = role
            turns.append(Turn(r, (Text(_content_text(m.get("content"))),)))
        else:
            raise Unsupported("unsupported-shape", f"chat role {role!r}")
    return Prompt(tuple(system), tuple(turns))


def _choice(body: dict[str, Any]) -> dict[str, Any]:
    return first_dict(body.get("choices"))


@register("response", "ai21-jamba")
def openai_like_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise Unsupported("unsupported-shape", "chat output without choices")
    choice = _choice(body)
    message = choice.get("message") or {}
    if message.get("tool_calls"):
        raise Unsupported("tool-use", "chat response with tool calls")
    usage: dict[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
    return text_reply(_content_text(message.get("content") or ""), choice.get("finish_reason"),
                      as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens")),
                      guardrail_intervened(body), strip=False)


@register("stream", "ai21-jamba")
def openai_like_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    parts: list[str] = []
    stop = None
    for c in chunks:
        choice = _choice(c)
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            raise Unsupported("tool-use", "streamed chat response with tool calls")
        if isinstance(delta.get("content"), str):
            parts.append(delta["content"])
        stop = choice.get("finish_reason") or stop
    return stream_text_reply(chunks, "".join(parts), stop, strip=False)


@register("request", "ai21-jurassic")
def jurassic_request(body: dict[str, Any]) -> Prompt:
    return single_turn(required_str(body, "prompt"))


@register("response", "ai21-jurassic")
def jurassic_response(body: Any) -> Response:
    comps = body.get("completions") if isinstance(body, dict) else None
    if not isinstance(comps, list):
        raise Unsupported("unsupported-shape", "Jurassic output without completions")
    first = first_dict(comps)
    text = str((first.get("data") or {}).get("text") or "")
    reason = (first.get("finishReason") or {}).get("reason")
    return text_reply(text, reason, None, None, guardrail_intervened(body))
