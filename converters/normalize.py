"""One invocation-log record -> one normalized ``Conversation`` (or ``Unsupported`` with a reason).

Picks the converter from the registry (``registry.detect_format``), reads the request, and reads
the response from an ``outputBodyJson`` object (Converse, ConverseStream, InvokeModel) or chunk
array (InvokeModelWithResponseStream). A record whose output is missing, errored or offloaded
and not fetched gets ``response=None`` and ``meta["no_response"]`` naming why.
"""

from __future__ import annotations

import json
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
from logtap.converters.model import Conversation, Response, Unsupported
from logtap.converters.registry import CONVERSE_OPERATIONS, detect_format, lookup
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


def _field(record: dict[str, Any], key: str) -> str:
    """A top-level text field ("" where it is missing)."""
    value = record.get(key)
    return value if type(value) is str else str(value or "")


def normalize(record: dict[str, Any]) -> Conversation:
    operation = _field(record, "operation")
    model_id = _field(record, "modelId")
    if operation not in OPERATIONS:
        raise Unsupported("unsupported-operation", f"operation {operation or '(none)'!r}")
    section = record.get("input")
    body = section.get("inputBodyJson") if type(section) is dict else None
    if type(body) is not dict:  # the general path: missing, offloaded, JSON text, not an object
        body, why = _body(section, "inputBodyJson", "inputBodyS3Path")
        if why == "offloaded":
            raise Unsupported("body-unavailable", "input body offloaded to S3 and not fetched")
        if body is None or not isinstance(body, dict):
            raise Unsupported("unsupported-shape", "request body is missing or not an object")
    fmt = "converse" if operation in CONVERSE_OPERATIONS else detect_format(operation, _family(model_id), body)
    prompt = lookup("request", fmt)(body)
    meta: dict[str, Any] = {}
    response = None
    error = record.get("errorCode")
    section = record.get("output")
    out = section.get("outputBodyJson") if type(section) is dict else None
    out_why = None
    if out is None or isinstance(out, str):
        out, out_why = _body(section, "outputBodyJson", "outputBodyS3Path")
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
            r = response  # dataclasses.replace(response, incomplete=True), without its ~2 us of introspection
            response = Response(r.message, r.stop_reason, r.input_tokens, r.output_tokens, r.guardrail_intervened,
                                True)
    return Conversation(_field(record, "requestId"), _field(record, "timestamp"), model_id, operation, fmt, prompt,
                        response, meta)
