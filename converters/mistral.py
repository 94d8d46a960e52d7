"""Mistral InvokeModel bodies.

Text completion: ``prompt`` = ``<s>[INST] ... [/INST]`` (multi-turn interleaves answers ending in
``</s>``); response ``{"outputs": [{"text", "stop_reason"}]}``, streamed as an array of such
chunks. Chat (Mistral Large): ``messages`` with string content; response ``{"choices": [...]}``,
read like AI21 Jamba's OpenAI-style body.
"""

from __future__ import annotations

from typing import Any

from logtap.converters._text import (
    first_dict,
    last_value,
    parse_inst,
    required_str,
    stream_text_reply,
    text_reply,
)
from logtap.converters.ai21 import openai_like_request, openai_like_response, openai_like_stream
from logtap.converters.model import Prompt, Response, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened


@register("request", "mistral")
def mistral_request(body: dict[str, Any]) -> Prompt:
    return parse_inst(required_str(body, "prompt"), "Mistral")


def _first_output(body: dict[str, Any]) -> dict[str, Any]:
    return first_dict(body.get("outputs"))


@register("response", "mistral")
def mistral_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        raise Unsupported("unsupported-shape", "Mistral output without outputs")
    out = _first_output(body)
    return text_reply(str(out.get("text") or ""), out.get("stop_reason"), None, None,
                      guardrail_intervened(body))


@register("stream", "mistral")
def mistral_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    outs = [_first_output(c) for c in chunks]
    text = "".join(str(o.get("text") or "") for o in outs)
    return stream_text_reply(chunks, text, last_value(outs, "stop_reason"))


register("request", "mistral-chat")(openai_like_request)
register("response", "mistral-chat")(openai_like_response)
register("stream", "mistral-chat")(openai_like_stream)
