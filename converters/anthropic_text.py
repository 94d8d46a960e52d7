"""Anthropic Text Completions bodies: ``prompt`` = ``[system]\\n\\nHuman: ...\\n\\nAssistant:``.

The prompt is parsed back into turns (text before the first ``Human:`` is the system prompt);
the response is ``{"completion", "stop_reason"}``, streamed as an array of such chunks.
"""

from __future__ import annotations

import re
from typing import Any

from logtap.converters._text import build_prompt, completion_text
from logtap.converters.model import Prompt, Response, Role, Text, Turn, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened, metrics_tokens

_MARKER = re.compile(r"\n\n(Human|Assistant):")
_ROLES: dict[str, Role] = {"Human": "user", "Assistant": "assistant"}


@register("request", "anthropic-text")
def text_request(body: dict[str, Any]) -> Prompt:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise Unsupported("unsupported-shape", "prompt is not a string")
    pieces = _MARKER.split(prompt)
    if len(pieces) < 3:
        raise Unsupported("unsupported-shape", "Anthropic text prompt without \\n\\nHuman:")
    system = pieces[0].strip()
    segments = [(_ROLES[pieces[i]], pieces[i + 1].strip()) for i in range(1, len(pieces), 2)]
    return build_prompt(system, segments, "Anthropic text")


def _response(text: str, stop: Any, tin: int | None, tout: int | None, guard: bool) -> Response:
    text = completion_text(text)
    message = Turn("assistant", (Text(text),)) if text else None
    return Response(message, stop if isinstance(stop, str) else None, tin, tout, guard)


@register("response", "anthropic-text")
def text_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("completion", ""), str):
        raise Unsupported("unsupported-shape", "Anthropic completion output")
    return _response(body.get("completion", ""), body.get("stop_reason"), None, None, guardrail_intervened(body))


@register("stream", "anthropic-text")
def text_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join(c.get("completion") or "" for c in chunks)
    stop = next((c["stop_reason"] for c in reversed(chunks) if c.get("stop_reason")), None)
    tin, tout = metrics_tokens(chunks)
    return _response(text, stop, tin, tout, guardrail_intervened(chunks))
