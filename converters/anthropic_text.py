"""Anthropic Text Completions bodies: ``prompt`` = ``[system]\\n\\nHuman: ...\\n\\nAssistant:``.

The prompt is parsed back into turns (text before the first ``Human:`` is the system prompt);
the response is ``{"completion", "stop_reason"}``, streamed as an array of such chunks.
"""

from __future__ import annotations

import re
from typing import Any

from logtap.converters._text import (
    build_prompt,
    last_value,
    required_str,
    stream_text_reply,
    text_reply,
)
from logtap.converters.model import Prompt, Response, Role, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened

_MARKER = re.compile(r"\n\n(Human|Assistant):")
_ROLES: dict[str, Role] = {"Human": "user", "Assistant": "assistant"}


@register("request", "anthropic-text")
def text_request(body: dict[str, Any]) -> Prompt:
    pieces = _MARKER.split(required_str(body, "prompt"))
    if len(pieces) < 3:
        raise Unsupported("unsupported-shape", "Anthropic text prompt without \\n\\nHuman:")
    system = pieces[0].strip()
    segments = [(_ROLES[pieces[i]], pieces[i + 1].strip()) for i in range(1, len(pieces), 2)]
    return build_prompt(system, segments, "Anthropic text")


@register("response", "anthropic-text")
def text_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("completion", ""), str):
        raise Unsupported("unsupported-shape", "Anthropic completion output")
    return text_reply(body.get("completion", ""), body.get("stop_reason"), None, None,
                      guardrail_intervened(body))


@register("stream", "anthropic-text")
def text_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join(c.get("completion") or "" for c in chunks)
    return stream_text_reply(chunks, text, last_value(chunks, "stop_reason"))
