"""Cohere InvokeModel bodies [reference: reconstructed, not seen in logs].

Command (legacy): ``prompt`` (one user turn); response ``{"generations": [{"text",
"finish_reason"}]}``; streamed chunks carry ``generations`` or ``text`` / ``is_finished`` /
``finish_reason``. Command R/R+: ``message`` + ``chat_history`` (``USER`` / ``CHATBOT``) +
``preamble`` (the system prompt); response ``{"text", "finish_reason"}``; streamed as
``text-generation`` / ``stream-end`` events. RAG ``documents`` and tools cannot be written to a
conversation dataset faithfully and are skipped with a reason.
"""

from __future__ import annotations

from typing import Any

from logtap.converters._text import (
    build_prompt,
    first_dict,
    required_str,
    single_turn,
    stream_text_reply,
    text_reply,
)
from logtap.converters.model import Prompt, Response, Role, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened

_CHAT_ROLES: dict[str, Role] = {"USER": "user", "CHATBOT": "assistant"}


@register("request", "cohere-command")
def command_request(body: dict[str, Any]) -> Prompt:
    return single_turn(required_str(body, "prompt"))


@register("response", "cohere-command")
def command_response(body: Any) -> Response:
    gens = body.get("generations") if isinstance(body, dict) else None
    if not isinstance(gens, list):
        raise Unsupported("unsupported-shape", "Cohere output without generations")
    first = first_dict(gens)
    return text_reply(str(first.get("text") or ""), first.get("finish_reason"), None, None,
                      guardrail_intervened(body))


@register("stream", "cohere-command")
def command_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    parts: list[str] = []
    stop = None
    for c in chunks:
        gens = c.get("generations")
        if isinstance(gens, list) and gens and isinstance(gens[0], dict):
            parts.append(str(gens[0].get("text") or ""))
            stop = gens[0].get("finish_reason") or stop
        elif isinstance(c.get("text"), str) and not c.get("is_finished"):
            parts.append(c["text"])
        stop = c.get("finish_reason") or stop
    return stream_text_reply(chunks, "".join(parts), stop)


@register("request", "cohere-chat")
def chat_request(body: dict[str, Any]) -> Prompt:
    if body.get("documents"):
        raise Unsupported("non-text-content", "Cohere chat with RAG documents")
    if body.get("tools") or body.get("tool_results"):
        raise Unsupported("tool-use", "Cohere chat with tools")
    message = body.get("message")
    if not isinstance(message, str):
        raise Unsupported("unsupported-shape", "Cohere chat message is not a string")
    preamble = body.get("preamble")
    segments: list[tuple[Role, str]] = []
    for item in body.get("chat_history") or []:
        role = _CHAT_ROLES.get(str(item.get("role", "")).upper()) if isinstance(item, dict) else None
        if role is None or not isinstance(item.get("message"), str):
            raise Unsupported("unsupported-shape", "Cohere chat_history item")
        segments.append((role, item["message"]))
    segments.append(("user", message))
    return build_prompt(preamble if isinstance(preamble, str) else "", segments, "Cohere chat")


@register("response", "cohere-chat")
def chat_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("text", ""), str):
        raise Unsupported("unsupported-shape", "Cohere chat output")
    if body.get("tool_calls"):
        raise Unsupported("tool-use", "Cohere chat response with tool calls")
    return text_reply(body.get("text", ""), body.get("finish_reason"), None, None, guardrail_intervened(body))


@register("stream", "cohere-chat")
def chat_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join(str(c.get("text") or "") for c in chunks if c.get("event_type") == "text-generation")
    stop = next((c.get("finish_reason") for c in reversed(chunks) if c.get("event_type") == "stream-end"), None)
    return stream_text_reply(chunks, text, stop)
