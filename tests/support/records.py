"""Realistic Bedrock invocation-log records for tests, and writers for Bedrock's folder layout.

Builders (all keyword arguments optional; each returns one record dict shaped like the
reference's real/observed examples):

* ``converse(...)``, ``converse_stream(...)``: Converse request body and aggregated response.
* ``invoke_anthropic_messages(...)``, ``invoke_anthropic_text(...)`` (legacy ``\\n\\nHuman:``),
  ``invoke_llama(...)``, ``invoke_titan(...)``, ``invoke_nova(...)``, ``invoke_mistral(...)``.
* ``stream_anthropic_messages(...)``, ``stream_titan(...)``, ``stream_llama(...)``, ``stream_mistral(...)``:
  InvokeModelWithResponseStream records whose ``outputBodyJson`` is the chunk array, last chunk with
  ``amazon-bedrock-invocationMetrics``.
* ``invoke_cohere_command(...)``, ``invoke_cohere_chat(...)``, ``invoke_ai21_jurassic(...)``,
  ``invoke_ai21_jamba(...)``: the reference's reconstructed Cohere / AI21 bodies.
* ``converse_stream_2026(...)``: the 2026 real-log shape (other key order, ``inferenceRegion``, ARN
  ``modelId``, cache counts, a document block replaced by ``source.s3Uri``).
* ``ALL_SHAPES``: one builder per provider shape, for parametrised tests.

Common keywords: ``request_id``, ``timestamp`` (ISO string), ``model_id``, ``tags`` (requestMetadata;
omitted when None), ``account``, ``region``, ``prompt``, ``answer``.

Writers:

* ``hour_dir(root, timestamp, account=..., region=...)``: ``<root>/AWSLogs/<acct>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH``.
* ``write_logs(root, records)``: groups records by (account, region, hour) and writes one gzipped
  JSON-lines file per group in the layout; returns the paths.
* ``write_s3_logs(client, bucket, records, prefix="")``: the same into S3; returns the keys.
* ``offload_input(record, root_or_client, ...)``: moves a record's input body to ``data/<id>_input.json.gz``.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _envelope(operation: str, model_id: str, inp: Any, out: Any, *, request_id: str | None, timestamp: str,
              tags: dict[str, str] | None, account: str, region: str, in_tokens: int, out_tokens: int,
              cache: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp": timestamp,
        "accountId": account, "identity": {"arn": f"arn:aws:iam::{account}:user/tester"}, "region": region,
        "requestId": request_id or str(uuid.uuid4()), "operation": operation, "modelId": model_id,
        "input": {"inputContentType": "application/json", "inputBodyJson": inp, "inputTokenCount": in_tokens},
        "output": {"outputContentType": "application/json", "outputBodyJson": out, "outputTokenCount": out_tokens},
    }
    if cache:
        rec["input"].update(cacheReadInputTokenCount=0, cacheWriteInputTokenCount=0)
    if tags is not None:
        rec["requestMetadata"] = dict(tags)
    return rec


def _common(kw: dict[str, Any], model: str) -> dict[str, Any]:
    return {"request_id": kw.get("request_id"), "timestamp": kw.get("timestamp", "2025-06-01T10:15:00Z"),
            "tags": kw.get("tags"), "account": kw.get("account", ACCOUNT), "region": kw.get("region", REGION),
            "in_tokens": kw.get("in_tokens", 12), "out_tokens": kw.get("out_tokens", 30)} | {"_m": model}


def _build(operation: str, default_model: str, inp: Any, out: Any, kw: dict[str, Any], cache: bool = False
           ) -> dict[str, Any]:
    c = _common(kw, default_model)
    model = kw.get("model_id", c.pop("_m"))
    return _envelope(operation, model, inp, out, cache=cache, **{k: v for k, v in c.items() if k != "_m"})


def converse(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is DuckDB?"), kw.get("answer", "An in-process SQL database.")
    inp = {"messages": [{"role": "user", "content": [{"text": p}]}],
           "system": [{"text": "You are concise."}],
           "inferenceConfig": {"maxTokens": 512, "temperature": 0.7}}
    out = {"output": {"message": {"role": "assistant", "content": [{"text": a}]}}, "stopReason": "end_turn",
           "metrics": {"latencyMs": 300}, "usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42}}
    return _build("Converse", "anthropic.claude-3-5-sonnet-20240620-v1:0", inp, out, kw)


def converse_stream(**kw: Any) -> dict[str, Any]:
    rec = converse(**kw)
    rec["operation"] = "ConverseStream"
    rec["modelId"] = kw.get("model_id", "us.amazon.nova-lite-v1:0")
    rec["input"].update(cacheReadInputTokenCount=0, cacheWriteInputTokenCount=0)
    return rec


def invoke_anthropic_messages(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is 2 + 2?"), kw.get("answer", "4")
    inp = {"anthropic_version": "bedrock-2023-05-31", "system": "You are helpful.", "max_tokens": 256,
           "messages": [{"role": "user", "content": [{"type": "text", "text": p}]}]}
    out = {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-3-sonnet-20240229",
           "content": [{"type": "text", "text": a}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 12, "output_tokens": 30}}
    return _build("InvokeModel", "anthropic.claude-3-sonnet-20240229-v1:0", inp, out, kw)


def invoke_anthropic_text(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "Hello"), kw.get("answer", " Hello!")
    inp = {"prompt": f"\n\nHuman: {p}\n\nAssistant:", "max_tokens_to_sample": 300,
           "stop_sequences": ["\n\nHuman:"], "anthropic_version": "bedrock-2023-05-31"}
    out = {"type": "completion", "completion": a, "stop_reason": "stop_sequence", "stop": "\n\nHuman:"}
    return _build("InvokeModel", "anthropic.claude-v2:1", inp, out, kw)


def invoke_llama(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is the capital of Sudan?"), kw.get("answer", "Khartoum.")
    inp = {"prompt": f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>{p}<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>", "temperature": 0.1, "max_gen_len": 2048}
    out = {"generation": a, "prompt_token_count": 15, "generation_token_count": 12, "stop_reason": "stop"}
    return _build("InvokeModel", "meta.llama3-1-70b-instruct-v1:0", inp, out, kw)


def invoke_titan(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "Say hello"), kw.get("answer", " Hello!")
    inp = {"inputText": p, "textGenerationConfig": {"temperature": 0, "topP": 1, "maxTokenCount": 512}}
    out = {"inputTextTokenCount": 7, "results": [{"tokenCount": 11, "outputText": a, "completionReason": "FINISH"}]}
    return _build("InvokeModel", "amazon.titan-text-express-v1", inp, out, kw)


def invoke_nova(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is machine learning?"), kw.get("answer", "Machine learning is ...")
    inp = {"schemaVersion": "messages-v1", "system": [{"text": "You are concise."}],
           "messages": [{"role": "user", "content": [{"text": p}]}], "inferenceConfig": {"maxTokens": 512}}
    out = {"output": {"message": {"role": "assistant", "content": [{"text": a}]}}, "stopReason": "end_turn",
           "usage": {"inputTokens": 12, "outputTokens": 40, "totalTokens": 52}}
    return _build("InvokeModel", "amazon.nova-pro-v1:0", inp, out, kw)


def invoke_mistral(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is your favourite condiment?"), kw.get("answer", " Mustard.")
    inp = {"prompt": f"<s>[INST] {p} [/INST]", "max_tokens": 200}
    out = {"outputs": [{"text": a, "stop_reason": "stop"}]}
    return _build("InvokeModel", "mistral.mistral-large-2402-v1:0", inp, out, kw)


def _metrics(i: int, o: int) -> dict[str, Any]:
    return {"amazon-bedrock-invocationMetrics": {"inputTokenCount": i, "outputTokenCount": o,
                                                 "invocationLatency": 900, "firstByteLatency": 300}}


def stream_anthropic_messages(**kw: Any) -> dict[str, Any]:
    rec = invoke_anthropic_messages(**kw)
    a = kw.get("answer", "4")
    rec["operation"] = "InvokeModelWithResponseStream"
    rec["output"]["outputBodyJson"] = [
        {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant",
                                              "content": [], "model": "claude-3-haiku-48k-20240307",
                                              "usage": {"input_tokens": 12, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": a}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 30}},
        {"type": "message_stop", **_metrics(12, 30)},
    ]
    return rec


def stream_titan(**kw: Any) -> dict[str, Any]:
    rec = invoke_titan(**kw)
    rec["operation"] = "InvokeModelWithResponseStream"
    rec["output"]["outputBodyJson"] = [
        {"outputText": " Hel", "index": 0, "totalOutputTextTokenCount": None, "completionReason": None,
         "inputTextTokenCount": 7},
        {"outputText": "lo!", "index": 0, "totalOutputTextTokenCount": 11, "completionReason": "FINISH",
         "inputTextTokenCount": None, **_metrics(7, 11)},
    ]
    return rec


def stream_llama(**kw: Any) -> dict[str, Any]:
    rec = invoke_llama(**kw)
    rec["operation"] = "InvokeModelWithResponseStream"
    rec["output"]["outputBodyJson"] = [
        {"generation": "Khar", "prompt_token_count": 15, "generation_token_count": 1, "stop_reason": None},
        {"generation": "toum.", "prompt_token_count": None, "generation_token_count": 12, "stop_reason": "stop",
         **_metrics(15, 12)},
    ]
    return rec


def stream_mistral(**kw: Any) -> dict[str, Any]:
    rec = invoke_mistral(**kw)
    rec["operation"] = "InvokeModelWithResponseStream"
    rec["output"]["outputBodyJson"] = [
        {"outputs": [{"text": " Mus", "stop_reason": None}]},
        {"outputs": [{"text": "tard.", "stop_reason": "stop"}], **_metrics(12, 30)},
    ]
    return rec


def invoke_cohere_command(**kw: Any) -> dict[str, Any]:
    """Cohere Command (legacy text generation), reconstructed from the model parameters page."""
    p, a = kw.get("prompt", "Write a haiku about logs."), kw.get("answer", "Lines of JSON fall")
    inp = {"prompt": p, "max_tokens": 100, "temperature": 0.5, "p": 0.9, "k": 0, "stop_sequences": [],
           "return_likelihoods": "NONE"}
    out = {"generations": [{"finish_reason": "COMPLETE", "id": "gen-1", "text": a, "index": 0}],
           "id": "resp-1", "prompt": p}
    return _build("InvokeModel", "cohere.command-text-v14", inp, out, kw)


def invoke_cohere_chat(**kw: Any) -> dict[str, Any]:
    """Cohere Command R/R+ (chat: ``message`` + ``chat_history``), reconstructed."""
    p, a = kw.get("prompt", "And in French?"), kw.get("answer", "Bonjour.")
    inp = {"message": p, "chat_history": [{"role": "USER", "message": "Say hello"},
                                          {"role": "CHATBOT", "message": "Hello."}],
           "preamble": "You are concise.", "max_tokens": 256}
    out = {"response_id": "r-1", "text": a, "generation_id": "g-1", "finish_reason": "COMPLETE",
           "chat_history": [{"role": "USER", "message": p}, {"role": "CHATBOT", "message": a}]}
    return _build("InvokeModel", "cohere.command-r-v1:0", inp, out, kw)


def invoke_ai21_jurassic(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "Summarize: DuckDB is fast."), kw.get("answer", "DuckDB is fast.")
    inp = {"prompt": p, "maxTokens": 200, "temperature": 0.7}
    out = {"id": 1234, "prompt": {"text": p, "tokens": []},
           "completions": [{"data": {"text": a, "tokens": []}, "finishReason": {"reason": "endoftext"}}]}
    return _build("InvokeModel", "ai21.j2-ultra-v1", inp, out, kw)


def invoke_ai21_jamba(**kw: Any) -> dict[str, Any]:
    p, a = kw.get("prompt", "What is Jamba?"), kw.get("answer", "A hybrid SSM-Transformer model.")
    inp = {"messages": [{"role": "user", "content": p}], "max_tokens": 256}
    out = {"id": "chat-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": a},
                                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}}
    return _build("InvokeModel", "ai21.jamba-1-5-mini-v1:0", inp, out, kw)


def converse_stream_2026(**kw: Any) -> dict[str, Any]:
    """The 2026 real-log shape: ``timestamp`` first and ``schemaType``/``schemaVersion`` last (key order is not
    stable), ``inferenceRegion``, an inference-profile ARN as ``modelId``, cache token counts, an API-key
    identity, and a Converse document block whose bytes Bedrock replaced by ``source.s3Uri``."""
    rec = converse_stream(**{"model_id": "arn:aws:bedrock:us-west-2:565521294060:inference-profile/"
                                         "global.anthropic.claude-opus-4-7", **kw})
    rec["input"].update(inputTokenCount=3, cacheReadInputTokenCount=0, cacheWriteInputTokenCount=24479)
    rec["input"]["inputBodyJson"]["messages"][0]["content"].append(
        {"document": {"format": "pdf", "name": "guide",
                      "source": {"s3Uri": f"s3://logs/AWSLogs/{rec['accountId']}/BedrockModelInvocationLogs/"
                                          f"{rec['region']}/2026/04/19/23/data/{rec['requestId']}_input_media_00.pdf"}}})
    rec["identity"] = {"arn": f"arn:aws:iam::{rec['accountId']}:user/your-br-api-key"}
    rec["inferenceRegion"] = "us-east-2"
    first = ("timestamp", "accountId", "region", "requestId", "operation", "modelId", "input", "output",
             "identity", "inferenceRegion")
    rest = [k for k in rec if k not in first and k not in ("schemaType", "schemaVersion")]
    return {k: rec[k] for k in (*first, *rest, "schemaType", "schemaVersion")}


ALL_SHAPES: dict[str, Callable[..., dict[str, Any]]] = {
    "stream_mistral": stream_mistral, "invoke_cohere_command": invoke_cohere_command,
    "invoke_cohere_chat": invoke_cohere_chat, "invoke_ai21_jurassic": invoke_ai21_jurassic,
    "invoke_ai21_jamba": invoke_ai21_jamba, "converse_stream_2026": converse_stream_2026,
    "converse": converse, "converse_stream": converse_stream,
    "invoke_anthropic_messages": invoke_anthropic_messages, "invoke_anthropic_text": invoke_anthropic_text,
    "invoke_llama": invoke_llama, "invoke_titan": invoke_titan, "invoke_nova": invoke_nova,
    "invoke_mistral": invoke_mistral, "stream_anthropic_messages": stream_anthropic_messages,
    "stream_titan": stream_titan, "stream_llama": stream_llama,
}


def hour_key(timestamp: str, account: str = ACCOUNT, region: str = REGION) -> str:
    """``AWSLogs/<acct>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH`` for a record time."""
    d, t = timestamp[:10], timestamp[11:13]
    return f"AWSLogs/{account}/BedrockModelInvocationLogs/{region}/{d.replace('-', '/')}/{t}"


def hour_dir(root: Path, timestamp: str, account: str = ACCOUNT, region: str = REGION) -> Path:
    return Path(root) / hour_key(timestamp, account, region)


def _groups(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[hour_key(rec["timestamp"], rec.get("accountId", ACCOUNT), rec.get("region", REGION))].append(rec)
    return groups


def gz_lines(records: Iterable[dict[str, Any]]) -> bytes:
    return gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())


def _file_name(recs: list[dict[str, Any]], n: int) -> str:
    ts = recs[0]["timestamp"]
    return f"{ts[:10].replace('-', '')}T{ts[11:19].replace(':', '')}000Z_{n:016x}.json.gz"


def write_logs(root: Path, records: Iterable[dict[str, Any]]) -> list[Path]:
    paths = []
    for n, (key, recs) in enumerate(sorted(_groups(records).items())):
        folder = Path(root) / key
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / _file_name(recs, n)
        path.write_bytes(gz_lines(recs))
        paths.append(path)
    return paths


def write_s3_logs(client: Any, bucket: str, records: Iterable[dict[str, Any]], prefix: str = "") -> list[str]:
    keys = []
    for n, (key, recs) in enumerate(sorted(_groups(records).items())):
        full = f"{prefix}{key}/{_file_name(recs, n)}"
        client.put_object(Bucket=bucket, Key=full, Body=gz_lines(recs))
        keys.append(full)
    return keys


def offload_input(rec: dict[str, Any], bucket: str, prefix: str = "") -> tuple[str, bytes]:
    """Replace ``inputBodyJson`` by ``inputBodyS3Path``; returns (key, gzipped body) to store."""
    key = f"{prefix}{hour_key(rec['timestamp'], rec['accountId'], rec['region'])}/data/{rec['requestId']}_input.json.gz"
    body = gzip.compress(json.dumps(rec["input"].pop("inputBodyJson")).encode())
    rec["input"]["inputBodyS3Path"] = f"s3://{bucket}/{key}"
    return key, body
