"""Seeded generator of realistic Bedrock invocation logs in Bedrock's S3 layout (shared by benchmarks).

``generate(root, records=540_000, seed=42, workers=2)`` writes gzipped JSON-lines files under
``root/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/2025/06/DD/HH/`` (7 days, ~11 files
per hour, 150-450 records each) with mixed operations (Converse 35%, ConverseStream 25%,
InvokeModel 25%, InvokeModelWithResponseStream 15%) and providers (Anthropic, Meta, Nova, Titan,
Mistral). 80% of records carry requestMetadata; ``project=code-review`` selects about 10%.
Output is identical whatever ``workers`` is (each hour is generated from its own seed).
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

WORDS = ("the model returns a concise answer about data pipelines and query engines with examples "
         "latency throughput token cost budget review code function class error retry batch stream "
         "customer support ticket refund policy shipping café naïve résumé \"quoted\" value").split()
PROJECTS = ["code-review"] * 12 + ["support"] * 30 + ["search"] * 25 + ["analytics"] * 13
MODELS = {
    "anthropic": ["anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                  "anthropic.claude-3-haiku-20240307-v1:0"],
    "meta": ["meta.llama3-1-70b-instruct-v1:0", "us.meta.llama3-3-70b-instruct-v1:0"],
    "nova": ["amazon.nova-pro-v1:0", "us.amazon.nova-lite-v1:0"],
    "titan": ["amazon.titan-text-express-v1"],
    "mistral": ["mistral.mistral-large-2402-v1:0"],
}
ACCOUNT, REGION, START = "123456789012", "us-east-1", datetime(2025, 6, 1, tzinfo=timezone.utc)


def text(rng: random.Random, lo: int, hi: int) -> str:
    n = int(rng.uniform(lo, hi) / 6)
    words = [rng.choice(WORDS) for _ in range(max(n, 3))]
    for i in range(0, len(words), 14):
        words[i] = words[i] + rng.choice([".\n", ". ", ", "])
    return " ".join(words)


def _converse(rng: random.Random, stream: bool) -> tuple[str, dict, dict, int, int]:
    model = rng.choice(MODELS["anthropic"] + MODELS["nova"])
    p, a = text(rng, 40, 1000), text(rng, 40, 1000)
    inp = {"messages": [{"role": "user", "content": [{"text": p}]}], "inferenceConfig": {"maxTokens": 1024}}
    if rng.random() < 0.4:
        inp["system"] = [{"text": text(rng, 40, 300)}]
    out = {"output": {"message": {"role": "assistant", "content": [{"text": a}]}}, "stopReason": "end_turn",
           "metrics": {"latencyMs": rng.randint(200, 9000)},
           "usage": {"inputTokens": len(p) // 4, "outputTokens": len(a) // 4, "totalTokens": (len(p) + len(a)) // 4}}
    return model, inp, out, len(p) // 4, len(a) // 4


def _invoke(rng: random.Random, stream: bool) -> tuple[str, dict, object, int, int]:
    family = rng.choice(["anthropic", "anthropic", "meta", "nova", "titan", "mistral"])
    model = rng.choice(MODELS[family])
    p, a = text(rng, 40, 1000), text(rng, 40, 1000)
    ti, to = len(p) // 4, len(a) // 4
    inp: dict
    out: object
    if family == "anthropic":
        content: object = p if rng.random() < 0.5 else [{"type": "text", "text": p}]
        inp = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1024, "messages": [{"role": "user", "content": content}]}
        if stream:
            parts = [a[i:i + rng.randint(60, 250)] for i in range(0, len(a), 150)]
            out = [{"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": [],
                                                        "usage": {"input_tokens": ti, "output_tokens": 1}}},
                   *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": x}} for x in parts),
                   {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": ti, "outputTokenCount": to,
                                                                                "invocationLatency": 900, "firstByteLatency": 200}}]
        else:
            out = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": a}],
                   "stop_reason": "end_turn", "usage": {"input_tokens": ti, "output_tokens": to}}
    elif family == "meta":
        inp = {"prompt": f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>{p}<|eot_id|>", "max_gen_len": 1024}
        out = {"generation": a, "prompt_token_count": ti, "generation_token_count": to, "stop_reason": "stop"}
        if stream:
            out = [{"generation": a[i:i + 150], "stop_reason": None} for i in range(0, len(a), 150)]
    elif family == "nova":
        inp = {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": p}]}]}
        out = {"output": {"message": {"role": "assistant", "content": [{"text": a}]}}, "stopReason": "end_turn",
               "usage": {"inputTokens": ti, "outputTokens": to}}
    elif family == "titan":
        inp = {"inputText": p, "textGenerationConfig": {"maxTokenCount": 1024}}
        out = {"inputTextTokenCount": ti, "results": [{"tokenCount": to, "outputText": a, "completionReason": "FINISH"}]}
    else:
        inp = {"prompt": f"<s>[INST] {p} [/INST]", "max_tokens": 1024}
        out = {"outputs": [{"text": a, "stop_reason": "stop"}]}
    return model, inp, out, ti, to


def record(rng: random.Random, ts: datetime) -> dict:
    r = rng.random()
    op = ("Converse" if r < 0.35 else "ConverseStream" if r < 0.60 else "InvokeModel" if r < 0.85
          else "InvokeModelWithResponseStream")
    model, inp, out, ti, to = (_converse if op.startswith("Converse") else _invoke)(rng, op.endswith("Stream"))
    rec: dict = {"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "accountId": ACCOUNT, "region": REGION,
                 "requestId": str(uuid.UUID(int=rng.getrandbits(128))), "operation": op, "modelId": model,
                 "identity": {"arn": f"arn:aws:iam::{ACCOUNT}:user/app"}}
    if rng.random() < 0.8:
        md = {"project": rng.choice(PROJECTS), "team": rng.choice(["a", "b", "c"])}
        if rng.random() < 0.1:
            md["experiment"] = f"exp-{rng.randint(1, 9)}"
        rec["requestMetadata"] = md
    rec["input"] = {"inputContentType": "application/json", "inputBodyJson": inp, "inputTokenCount": ti}
    if rng.random() < 0.01:
        rec["errorCode"] = "ThrottlingException"
    else:
        rec["output"] = {"outputContentType": "application/json", "outputBodyJson": out, "outputTokenCount": to}
    rec["schemaType"], rec["schemaVersion"] = "ModelInvocationLog", "1.0"
    return rec


def _hour(args: tuple[str, int, int, int]) -> int:
    root, hour_index, n_records, seed = args
    rng = random.Random(seed * 100_003 + hour_index)
    hour = START + timedelta(hours=hour_index)
    folder = Path(root) / f"AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/{REGION}" / hour.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    left, i, written = n_records, 0, 0
    while left > 0:
        n = min(left, rng.randint(150, 450))
        secs = sorted(rng.randrange(3600) for _ in range(n))
        lines = [json.dumps(record(rng, hour + timedelta(seconds=s)), ensure_ascii=False, separators=(",", ":"))
                 for s in secs]
        name = (hour + timedelta(seconds=secs[-1] + 60)).strftime("%Y%m%dT%H%M%S000Z") + f"_{rng.getrandbits(64):016x}.json.gz"
        (folder / name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0))
        left -= n
        written += sum(len(x) + 1 for x in lines)
        i += 1
    return written


def generate(root: Path, records: int = 540_000, seed: int = 42, workers: int = 2, hours: int = 168) -> int:
    """Write the dataset (if ``root/.done`` is missing); returns uncompressed bytes."""
    done = Path(root) / ".done"
    if done.exists():
        return int(done.read_text())
    per_hour = records // hours
    jobs = [(str(root), h, per_hour, seed) for h in range(hours)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(_hour, jobs))
    done.write_text(str(total))
    return total


if __name__ == "__main__":
    print(generate(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 540_000))
