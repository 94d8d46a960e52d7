"""Shared pieces for InvokeModelWithResponseStream chunk arrays.

Bedrock logs a streamed InvokeModel response as a JSON array of the decoded chunk payloads, in
order; the last one carries ``amazon-bedrock-invocationMetrics``. Each provider module registers
its own ``("stream", fmt)`` reassembler; these helpers are what they share.
"""

from __future__ import annotations

from typing import Any

from logtap.converters.model import Unsupported

METRICS_KEY = "amazon-bedrock-invocationMetrics"
GUARDRAIL_ACTION_KEY = "amazon-bedrock-guardrailAction"


def chunk_list(body: Any) -> list[dict[str, Any]]:
    """The dict chunks of a logged stream (``"[DONE]"`` markers dropped); others are an error.

    A stream exception event (``{"modelStreamErrorException": {...}}``, ``internalServerException``,
    ...) in place of a chunk means the call failed mid-stream: ``Unsupported("error")``.
    """
    if not isinstance(body, list):
        raise Unsupported("unsupported-shape", "streamed output is not a chunk array")
    chunks: list[dict[str, Any]] = []
    for item in body:
        if isinstance(item, dict):
            for k in item:
                if isinstance(k, str) and k.endswith("Exception"):
                    raise Unsupported("error", f"stream ended with {k}")
            chunks.append(item)
        elif item == "[DONE]":
            continue
        else:
            raise Unsupported("unsupported-shape", f"stream chunk of type {type(item).__name__}")
    return chunks


def as_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def metrics_tokens(chunks: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(input, output) token counts from the last chunk carrying invocation metrics."""
    for chunk in reversed(chunks):
        metrics = chunk.get(METRICS_KEY)
        if isinstance(metrics, dict):
            return as_int(metrics.get("inputTokenCount")), as_int(metrics.get("outputTokenCount"))
    return None, None


def guardrail_intervened(obj: Any) -> bool:
    """True when an InvokeModel body (or any stream chunk) says a guardrail intervened."""
    if isinstance(obj, list):
        for c in obj:
            if isinstance(c, dict):
                if c.get(GUARDRAIL_ACTION_KEY) == "INTERVENED":
                    return True
            elif isinstance(c, list) and guardrail_intervened(c):
                return True
        return False
    return isinstance(obj, dict) and obj.get(GUARDRAIL_ACTION_KEY) == "INTERVENED"
