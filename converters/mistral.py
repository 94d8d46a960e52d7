"""Mistral InvokeModel bodies.

Text completion: ``prompt`` = ``<s>[INST] ... [/INST]`` (multi-turn interleaves answers ending in
``</s>``); response ``{"outputs": [{"text", "stop_reason"}]}``, streamed as an array of such
chunks. Chat (Mistral Large): ``messages`` with string content; response ``{"choices": [...]}``,
read like AI21 Jamba's OpenAI-style body.
"""

from __future__ import annotations

from typing import Any

from logtap.converters._text import completion_text, parse_inst
from logtap.converters.ai21 import openai_like_request, openai_like_response, openai_like_stream
from logtap.converters.model import Prompt, Response, Text, Turn, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened, metrics_tokens


@register("request", "mistral")
def mistral_request(body: dict[str, Any]) -> Prompt:
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise Unsupported("unsupported-shape", "prompt is not a string")
    return parse_inst(prompt, "Mistral")


def _first_output(body: dict[str, Any]) -> dict[str, Any]:
    outputs = body.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
        return outputs[0]
    return {}


def _response(text: str, stop: Any, tin: int | None, tout: int | None, guard: bool) -> Response:
    text = completion_text(text)
    return Response(Turn("assistant", (Text(text),)) if text else None,
                    stop if isinstance(stop, str) else None, tin, tout, guard)


@register("response", "mistral")
def mistral_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list):
        raise Unsupported("unsupported-shape", "Mistral output without outputs")
    out = _first_output(body)
    return _response(str(out.get("text") or ""), out.get("stop_reason"), None, None, guardrail_intervened(body))


@register("stream", "mistral")
def mistral_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    outs = [_first_output(c) for c in chunks]
    text = "".join(str(o.get("text") or "") for o in outs)
    stop = next((o["stop_reason"] for o in reversed(outs) if o.get("stop_reason")), None)
    tin, tout = metrics_tokens(chunks)
    return _response(text, stop, tin, tout, guardrail_intervened(chunks))


register("request", "mistral-chat")(openai_like_request)
register("response", "mistral-chat")(openai_like_response)
register("stream", "mistral-chat")(openai_like_stream)
