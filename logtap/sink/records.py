"""Build one Bedrock invocation-log record from a finished call.

The calling thread captures a :class:`CompletedCall` (cheap: references, an orjson snapshot of the
request, counters) and the sink's writer thread turns it into the record dict here, in Bedrock's
own format (``bedrock-logs.md`` §1-§3):

- envelope: ``schemaType``, ``schemaVersion``, ``timestamp`` (second precision, UTC), ``accountId``,
  ``identity.arn`` (when known), ``region``, ``requestId``, ``operation``, ``modelId``,
  ``requestMetadata`` (only when tags were sent), ``errorCode`` (failed or abandoned calls only);
- ``input``: ``inputContentType``, ``inputBodyJson`` or ``inputBodyS3Path``, token counts;
- ``output``: ``outputContentType``, ``outputBodyJson`` or ``outputBodyS3Path``, ``outputTokenCount``.

Bodies larger than ``max_inline_bytes`` go to ``data/{requestId}_input.json.gz`` /
``_output.json.gz`` beside the record, and image / document / video bytes in a request are never
written inline: each becomes ``data/{requestId}_input_media_NN.{ext}`` and the block's ``source``
becomes ``{"s3Uri": ...}``, the way Bedrock logs documents.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

SCHEMA_TYPE = "ModelInvocationLog"
SCHEMA_VERSION = "1.0"
CONTENT_TYPE = "application/json"
#: Bedrock inlines bodies up to 100 KB and offloads larger ones to ``data/``.
DEFAULT_MAX_INLINE_BYTES = 100 * 1024
#: Account id written when the caller's account cannot be found without slowing a call.
PLACEHOLDER_ACCOUNT_ID = "000000000000"

_MEDIA_MARK = "__logtap_media__"
_MIME_EXT = {
    "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp",
    "application/pdf": "pdf", "text/plain": "txt", "text/csv": "csv", "text/html": "html",
    "text/markdown": "md", "video/mp4": "mp4",
}


@dataclass(slots=True)
class Snapshot:
    """A request or response frozen at call time: JSON bytes plus the binary values cut out of it."""

    json: bytes
    blobs: list[bytes] = field(default_factory=list)


#: Values orjson would write its own way (datetime, dataclass, numpy...) go through ``default`` instead.
PLAIN_JSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def snapshot(value: Any) -> Snapshot:
    """Serialize ``value`` now (so later mutation by the caller cannot leak into the record).

    ``bytes`` values are replaced by ``{"__logtap_media__": n}`` markers; the bytes are kept aside.
    """
    try:  # the usual case, plain JSON values only: no closure, no list
        return Snapshot(orjson.dumps(value, option=PLAIN_JSON), [])
    except orjson.JSONEncodeError:
        pass
    blobs: list[bytes] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, (bytes, bytearray, memoryview)):
            blobs.append(bytes(obj))
            return {_MEDIA_MARK: len(blobs) - 1}
        if hasattr(obj, "isoformat"):
            return obj.isoformat()
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        return str(obj)  # e.g. Decimal: logged as text rather than losing the record

    return Snapshot(orjson.dumps(value, default=default), blobs)


@dataclass(slots=True)
class CompletedCall:
    """Everything the writer needs to build one record; filled in on the calling thread."""

    operation: str
    model_id: str
    region: str
    started: float  # epoch seconds
    request_id: str
    request_metadata: dict[str, str] | None = None
    #: Converse*: a Snapshot of the request params; InvokeModel*: the raw body bytes.
    request: Snapshot | bytes | None = None
    #: Converse: Snapshot of the parsed response; InvokeModel: raw body bytes;
    #: streams: a Python object built by logtap itself (aggregated response / chunk list).
    response: Snapshot | bytes | Any = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    latency_ms: int | None = None
    error_code: str | None = None
    #: Called on the writer thread: () -> (account_id | None, identity_arn | None).
    identity: Callable[[], tuple[str | None, str | None]] | None = None


class DeferredCall:
    """A finished call whose :class:`CompletedCall` the writer thread builds (``completed()``), so the
    calling thread only hands over references and snapshots (every successful call: a stream's
    recorder, or a Converse / InvokeModel call in logtap.sink.calls)."""

    __slots__ = ()

    def completed(self) -> CompletedCall:
        raise NotImplementedError


@dataclass(slots=True)
class Attachment:
    """A file written beside the record, under the hour folder's ``data/`` prefix."""

    name: str  # file name inside data/
    content: bytes


@dataclass(slots=True)
class BuiltRecord:
    record: dict[str, Any]
    account_id: str
    hour_prefix: str  # YYYY/MM/DD/HH
    attachments: list[Attachment]


def hour_prefix(epoch: float) -> str:
    return _stamps(epoch)[1]


_LAST_STAMPS: tuple[int, str, str] = (-1, "", "")


def _stamps(epoch: float) -> tuple[str, str]:
    """(record ``timestamp``, hour folder) of ``epoch``; the last second's pair is reused."""
    global _LAST_STAMPS
    second = int(epoch)
    last = _LAST_STAMPS  # one tuple, replaced whole: safe with several writer threads
    if last[0] != second:
        moment = time.gmtime(second)
        last = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", moment), time.strftime("%Y/%m/%d/%H", moment))
        _LAST_STAMPS = last
    return last[1], last[2]


def log_prefix(account_id: str, region: str, hour: str) -> str:
    """The key prefix of an hour folder, relative to the sink root."""
    return f"AWSLogs/{account_id}/BedrockModelInvocationLogs/{region}/{hour}"


def account_from_model_arn(model_id: str) -> str | None:
    """The account id inside an ARN model id (inference profiles, provisioned/custom models)."""
    parts = model_id.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "bedrock" and parts[4].isdigit():
        return parts[4]
    return None


class RecordBuilder:
    """Turns CompletedCall into BuiltRecord. ``uri_for(key)`` names a file relative to the sink root."""

    def __init__(self, uri_for: Callable[[str], str], *, max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
                 account_id: str | None = None) -> None:
        self._uri_for = uri_for
        self._max_inline = max_inline_bytes
        self._account_id = account_id
        #: model id -> account id when no identity is known (an ARN's account, else the placeholder)
        self._model_accounts: dict[str, str] = {}

    def build(self, call: CompletedCall) -> BuiltRecord:
        account, arn = self._identity(call)
        timestamp, hour = _stamps(call.started)
        # Where data/ files go: (account, region, hour), made into a prefix only if a body is offloaded.
        where = (account, call.region, hour)
        attachments: list[Attachment] = []
        record: dict[str, Any] = {
            "schemaType": SCHEMA_TYPE,
            "schemaVersion": SCHEMA_VERSION,
            "timestamp": timestamp,
            "accountId": account,
        }
        if arn:
            record["identity"] = {"arn": arn}
        record["region"] = call.region
        record["requestId"] = call.request_id
        record["operation"] = call.operation
        record["modelId"] = call.model_id
        if call.request_metadata:
            record["requestMetadata"] = dict(call.request_metadata)
        if call.error_code:
            record["errorCode"] = call.error_code

        # The response first: a stream's response also fills in the call's token counts.
        has_response = call.response is not None
        response = self._output_body(call) if has_response else None
        if has_response and call.input_tokens is None and call.output_tokens is None:
            call.input_tokens, call.output_tokens = tokens_from_body(response)

        inp: dict[str, Any] = {"inputContentType": CONTENT_TYPE}
        body = self._input_body(call, where, attachments)
        if body is not None:
            self._place(inp, "input", body, call.request_id, where, attachments)
        if call.input_tokens is not None:
            inp["inputTokenCount"] = call.input_tokens
        if call.cache_read_tokens is not None:
            inp["cacheReadInputTokenCount"] = call.cache_read_tokens
        if call.cache_write_tokens is not None:
            inp["cacheWriteInputTokenCount"] = call.cache_write_tokens
        record["input"] = inp

        if has_response:
            out: dict[str, Any] = {"outputContentType": CONTENT_TYPE}
            if response is not None:
                self._place(out, "output", response, call.request_id, where, attachments)
            if call.output_tokens is not None:
                out["outputTokenCount"] = call.output_tokens
            record["output"] = out
        return BuiltRecord(record, account, hour, attachments)

    # -- identity -------------------------------------------------------------------------------
    def _identity(self, call: CompletedCall) -> tuple[str, str | None]:
        account: str | None = self._account_id
        arn: str | None = None
        if call.identity is not None:
            found, arn = call.identity()
            account = account or found
        if not account:
            account = self._model_accounts.get(call.model_id)
            if account is None:
                account = account_from_model_arn(call.model_id) or PLACEHOLDER_ACCOUNT_ID
                if len(self._model_accounts) < 1024:
                    self._model_accounts[call.model_id] = account
        return account, arn

    # -- bodies ---------------------------------------------------------------------------------
    def _media(self, call: CompletedCall, where: tuple[str, str, str],
               attachments: list[Attachment]) -> Callable[[str, bytes], str]:
        """``media(ext, content) -> uri``: the next ``data/{requestId}_input_media_NN.{ext}`` file."""
        data_prefix = f"{log_prefix(*where)}/data"
        counter = [0]

        def media(ext: str, content: bytes) -> str:
            name = f"{call.request_id}_input_media_{counter[0]:02d}.{ext}"
            counter[0] += 1
            attachments.append(Attachment(name, content))
            return self._uri_for(f"{data_prefix}/{name}")

        return media

    def _input_body(self, call: CompletedCall, where: tuple[str, str, str], attachments: list[Attachment]) -> Any:
        req = call.request
        if isinstance(req, Snapshot):
            if not req.blobs:  # the snapshot already left out modelId and requestMetadata
                return _Raw(req.json)
            params = orjson.loads(req.json)
            if isinstance(params, dict):
                params.pop("modelId", None)
                params.pop("requestMetadata", None)
            return _replace_media(params, req.blobs, self._media(call, where, attachments))
        if isinstance(req, (bytes, bytearray)):
            try:
                body = orjson.loads(req)
            except orjson.JSONDecodeError:
                return _NotJson(bytes(req))
            if _plain_line(req) and req.find(b'"base64"') < 0 and req.find(b'"bytes"') < 0:
                return _Raw(bytes(req))
            return _replace_media(body, [], self._media(call, where, attachments))
        return None

    def _output_body(self, call: CompletedCall) -> Any:
        resp = call.response
        if isinstance(resp, Snapshot):
            if not resp.blobs:
                return _Raw(resp.json)
            value = orjson.loads(resp.json)
            if isinstance(value, dict):
                value.pop("ResponseMetadata", None)
            return _inline_blobs(value, resp.blobs)
        if isinstance(resp, (bytes, bytearray)):
            try:
                value = orjson.loads(resp)
            except orjson.JSONDecodeError:
                return _NotJson(bytes(resp))
            return _Raw(bytes(resp)) if _plain_line(resp) else value
        build = getattr(resp, "build_body", None)  # a stream's response, built here off the calling thread
        if callable(build):
            body = build()
            fill = getattr(resp, "fill_tokens", None)  # and its token counts, unless already known
            if callable(fill):
                fill(call, body)
            return body
        return _inline_blobs(resp, [])

    def _place(self, target: dict[str, Any], side: str, body: Any, request_id: str, where: tuple[str, str, str],
               attachments: list[Attachment]) -> None:
        """Put ``body`` inline, or offload it to ``data/{requestId}_{side}.json.gz`` when too big."""
        if isinstance(body, _Raw):
            raw = body.json
        elif isinstance(body, _NotJson):
            raw = body.content
        else:
            raw = orjson.dumps(body, default=_json_default)
        if len(raw) <= self._max_inline and not isinstance(body, _NotJson):
            target[_BODY_JSON[side]] = orjson.Fragment(raw)  # serialized once, here
            return
        name = f"{request_id}_{side}.json.gz"
        attachments.append(Attachment(name, gzip.compress(raw, compresslevel=6)))
        target[f"{side}BodyS3Path"] = self._uri_for(f"{log_prefix(*where)}/data/{name}")


_BODY_JSON = {"input": "inputBodyJson", "output": "outputBodyJson"}


def _json_default(obj: Any) -> Any:
    """Values orjson cannot write in a body logtap built itself: bytes as base64, the rest as text."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    return str(obj)


class _Raw:
    """A body already serialized as valid one-line JSON: embedded in the record as is."""

    def __init__(self, json: bytes) -> None:
        self.json = json


def _plain_line(raw: bytes | bytearray) -> bool:
    # find(), not ``in``: ``bytes in bytes`` first tries the needle as an int and builds a TypeError
    return raw.find(b"\n") < 0 and raw.find(b"\r") < 0


class _NotJson:
    """A body that is not JSON: always offloaded as is."""

    def __init__(self, content: bytes) -> None:
        self.content = content


def tokens_from_body(body: Any) -> tuple[int | None, int | None]:
    """Token counts from a model-native response body (or stream chunk array), when the headers had none."""
    if isinstance(body, _Raw):
        body = orjson.loads(body.json)
    if isinstance(body, list):
        for chunk in reversed(body):
            if isinstance(chunk, dict) and isinstance(chunk.get("amazon-bedrock-invocationMetrics"), dict):
                metrics = chunk["amazon-bedrock-invocationMetrics"]
                return int_or_none(metrics.get("inputTokenCount")), int_or_none(metrics.get("outputTokenCount"))
        return None, None
    if not isinstance(body, dict):
        return None, None
    usage = body.get("usage")
    if isinstance(usage, dict):
        pairs = (("input_tokens", "output_tokens"), ("inputTokens", "outputTokens"),
                 ("prompt_tokens", "completion_tokens"))
        for i, o in pairs:
            if i in usage or o in usage:
                return int_or_none(usage.get(i)), int_or_none(usage.get(o))
    if "prompt_token_count" in body or "generation_token_count" in body:  # Meta Llama
        return int_or_none(body.get("prompt_token_count")), int_or_none(body.get("generation_token_count"))
    if "inputTextTokenCount" in body:  # Amazon Titan
        found = body.get("results")
        results: list[Any] = found if isinstance(found, list) else []
        out = sum(r.get("tokenCount", 0) for r in results if isinstance(r, dict)
                  and isinstance(r.get("tokenCount"), int))
        return int_or_none(body.get("inputTextTokenCount")), out if results else None
    return None, None


def int_or_none(value: Any) -> int | None:
    """An int token count as is; anything else (a bool too) None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _media_index(value: Any) -> int | None:
    if isinstance(value, dict) and len(value) == 1 and _MEDIA_MARK in value:
        index = value[_MEDIA_MARK]
        return index if isinstance(index, int) else None
    return None


def _ext(fmt: Any, mime: Any = None) -> str:
    if isinstance(mime, str) and mime in _MIME_EXT:
        return _MIME_EXT[mime]
    if isinstance(fmt, str) and fmt.isalnum():
        return fmt.lower()
    return "bin"


def _replace_media(node: Any, blobs: list[bytes], media: Callable[[str, bytes], str]) -> Any:
    """Cut binary content out of a request body: Converse ``source.bytes`` (raw, as markers),
    Nova-invoke ``source.bytes`` (base64 text) and Anthropic ``source`` ``{"type": "base64"}``."""
    if isinstance(node, list):
        return [_replace_media(item, blobs, media) for item in node]
    if not isinstance(node, dict):
        return node
    source = node.get("source")
    if isinstance(source, dict):
        content: bytes | None = None
        index = _media_index(source.get("bytes"))
        if index is not None and index < len(blobs):
            content = blobs[index]
        elif isinstance(source.get("bytes"), str):
            content = _b64(source["bytes"])
        elif source.get("type") == "base64" and isinstance(source.get("data"), str):
            content = _b64(source["data"])
        if content is not None:
            out = {k: _replace_media(v, blobs, media) for k, v in node.items() if k != "source"}
            out["source"] = {"s3Uri": media(_ext(node.get("format"), source.get("media_type")), content)}
            return out
    index = _media_index(node)
    if index is not None and index < len(blobs):
        return base64.b64encode(blobs[index]).decode("ascii")
    return {k: _replace_media(v, blobs, media) for k, v in node.items()}


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _inline_blobs(node: Any, blobs: list[bytes]) -> Any:
    """Response bytes (rare: e.g. redacted reasoning) are logged as base64 text."""
    if isinstance(node, list):
        return [_inline_blobs(item, blobs) for item in node]
    if isinstance(node, dict):
        index = _media_index(node)
        if index is not None and index < len(blobs):
            return base64.b64encode(blobs[index]).decode("ascii")
        return {k: _inline_blobs(v, blobs) for k, v in node.items()}
    return node
