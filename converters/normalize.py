"""One invocation-log record -> one normalized ``Conversation`` (or ``Unsupported`` with a reason).

Picks the converter from the registry (``registry.detect_format``), reads the request, and reads
the response from an ``outputBodyJson`` object (Converse, ConverseStream, InvokeModel) or chunk
array (InvokeModelWithResponseStream). A record whose output is missing, errored or offloaded
and not fetched gets ``response=None`` and ``meta["no_response"]`` naming why.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from typing import Any

# Importing the converter modules registers them.
from logtap.converters import (  # noqa: F401
    ai21,
    anthropic_messages,
    anthropic_text,
    cohere,
    converse,
    llama,
    mistral,
    nova,
    titan,
)
from logtap.converters.model import Conversation, Unsupported
from logtap.converters.registry import detect_format, lookup
from logtap.models import model_family

_family = lru_cache(maxsize=1024)(model_family)

OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})


def _body(section: Any, key: str, s3_key: str) -> tuple[Any, str | None]:
    """(body, why-missing) of an input/output section."""
    if not isinstance(section, dict):
        return None, "missing"
    body = section.get(key)
    if body is None:
        return None, "offloaded" if section.get(s3_key) else "missing"
    if isinstance(body, str):
        try:
            return json.loads(body), None
        except ValueError:
            return None, "not-json"
    return body, None


def normalize(record: dict[str, Any]) -> Conversation:
    operation = str(record.get("operation") or "")
    model_id = str(record.get("modelId") or "")
    if operation not in OPERATIONS:
        raise Unsupported("unsupported-operation", f"operation {operation or '(none)'!r}")
    body, why = _body(record.get("input"), "inputBodyJson", "inputBodyS3Path")
    if why == "offloaded":
        raise Unsupported("body-unavailable", "input body offloaded to S3 and not fetched")
    if body is None or not isinstance(body, dict):
        raise Unsupported("unsupported-shape", "request body is missing or not an object")
    fmt = detect_format(operation, _family(model_id), body)
    prompt = lookup("request", fmt)(body)
    meta: dict[str, Any] = {}
    response = None
    error = record.get("errorCode")
    out, out_why = _body(record.get("output"), "outputBodyJson", "outputBodyS3Path")
    if error:
        meta["no_response"] = "error"
        meta["error"] = str(error)
    elif out_why == "offloaded":
        meta["no_response"] = "body-unavailable"
    elif out is None:
        meta["no_response"] = "no-response"
    else:
        streamed = isinstance(out, list)
        if streamed and operation in ("Converse", "InvokeModel"):
            raise Unsupported("unsupported-shape", f"{operation} output is an array")
        response = lookup("stream" if streamed else "response", fmt)(out)
        if streamed and response.stop_reason is None:
            response = replace(response, incomplete=True)
    return Conversation(
        request_id=str(record.get("requestId") or ""),
        timestamp=str(record.get("timestamp") or ""),
        model_id=model_id,
        operation=operation,
        body_format=fmt,
        prompt=prompt,
        response=response,
        meta=meta,
    )
