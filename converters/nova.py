"""Amazon Nova InvokeModel bodies (``schemaVersion: messages-v1``).

The request and response have the Converse shape (inline media is base64 text instead of raw
bytes, which logtap never keeps either way); the InvokeModelWithResponseStream chunks are Nova's
``messageStart`` / ``contentBlockDelta`` / ``messageStop`` / ``metadata`` events [INF: not yet
confirmed from a real log], reassembled like ConverseStream events.
"""

from __future__ import annotations

from typing import Any

from logtap.converters.converse import converse_request, converse_response, reassemble_events
from logtap.converters.model import Prompt, Response
from logtap.converters.registry import register
from logtap.converters.streams import chunk_list, guardrail_intervened


@register("request", "nova")
def nova_request(body: dict[str, Any]) -> Prompt:
    return converse_request(body)


@register("response", "nova")
def nova_response(body: Any) -> Response:
    resp = converse_response(body)
    if guardrail_intervened(body) and not resp.guardrail_intervened:
        resp = Response(resp.message, resp.stop_reason, resp.input_tokens, resp.output_tokens, True)
    return resp


@register("stream", "nova")
def nova_stream(body: Any) -> Response:
    return reassemble_events(chunk_list(body))
