"""Seeded generator of the sample invocation logs under ``samples/logs/`` (Bedrock's S3 layout).

    .venv/bin/python samples/generate.py            # rewrite samples/logs (byte-identical every run)
    .venv/bin/python samples/generate.py --out DIR  # somewhere else

Covers every logged shape logtap reads: Converse / ConverseStream (single- and multi-turn, system,
tool use, an S3 image, guardrail), InvokeModel bodies for Anthropic Messages and Text Completions,
Llama 3 and 2, Nova, Titan, Mistral, Cohere and AI21, InvokeModelWithResponseStream chunk arrays,
an error record, an empty answer, a truncated answer, a duplicate prompt, an input body offloaded
to ``data/``, and one corrupt line. Records carry ``requestMetadata`` tags (project, env).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "bedrock-logs-123456789012-us-east-1"
LAYOUT = f"AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/{REGION}"

QUESTIONS = [
    "How do I reset my password?", "What is your refund policy?", "Can I change my delivery address?",
    "Why was my card declined?", "How do I cancel my subscription?", "Where is my order?",
    "Do you ship to Canada?", "How do I update my billing email?", "Is there a student discount?",
    "How long does a refund take?", "Can I pause my plan?", "How do I export my data?",
]
ANSWERS = [
    "Open Settings > Security and choose Reset password; we email you a link.",
    "You can return any item within 30 days for a full refund.",
    "Yes. Go to Orders, pick the order and choose Change address before it ships.",
    "Banks decline cards for many reasons; please check the card's expiry date and limit first.",
    "Go to Account > Subscription and choose Cancel; you keep access until the period ends.",
    "Your order page shows live tracking once the parcel has left our warehouse.",
]
CONTEXT = ["Hi,", "Hello there.", "Quick question:", "I'm on the Pro plan.", "I ordered last week.",
           "Sorry to bother you.", "My account is under my work email.", "I'm writing from Berlin."]
REVIEW = ["Review this function: def add(a, b): return a - b", "Is `for i in range(len(xs))` idiomatic Python?"]


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.records: list[dict[str, Any]] = []
        self.data: dict[str, bytes] = {}
        self.minute = 0

    def rid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ts(self) -> str:
        self.minute += self.rng.randint(1, 9)
        day, rest = divmod(self.minute, 24 * 60)
        hour, minute = divmod(rest, 60)
        return f"2025-06-{1 + day:02d}T{hour:02d}:{minute:02d}:{self.rng.randint(0, 59):02d}Z"

    def add(self, op: str, model: str, inp: Any, out: Any, tags: dict[str, str] | None, *,
            tin: int = 20, tout: int = 40, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0", "timestamp": self.ts(),
            "accountId": ACCOUNT, "identity": {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/App/worker"},
            "region": REGION, "requestId": self.rid(), "operation": op, "modelId": model,
            "input": {"inputContentType": "application/json", "inputBodyJson": inp, "inputTokenCount": tin},
        }
        if out is not None:
            rec["output"] = {"outputContentType": "application/json", "outputBodyJson": out, "outputTokenCount": tout}
        if tags is not None:
            rec["requestMetadata"] = tags
        rec.update(extra)
        self.records.append(rec)
        return rec

    def q(self) -> str:
        return f"{self.rng.choice(CONTEXT)} {self.rng.choice(QUESTIONS)}"

    def a(self) -> str:
        return self.rng.choice(ANSWERS)


def _conv_out(text: str, stop: str = "end_turn", content: list[Any] | None = None) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": content or [{"text": text}]}},
            "stopReason": stop, "metrics": {"latencyMs": 812},
            "usage": {"inputTokens": 20, "outputTokens": 40, "totalTokens": 60}}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def build(seed: int = 7) -> Gen:
    g = Gen(seed)
    sup = {"project": "support", "env": "prod"}
    nova_pro, claude = "amazon.nova-pro-v1:0", "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    system = [{"text": "You are a friendly support agent for Acme. Answer in two sentences."}]
    # Converse, single turn, the teacher (Nova Pro), support/prod: the bulk of the demo set.
    for _ in range(10):
        g.add("Converse", nova_pro, {"system": system, "messages": [_user(g.q())],
                                     "inferenceConfig": {"maxTokens": 512, "temperature": 0.3}},
              _conv_out(g.a()), sup)
    first = g.records[0]["input"]["inputBodyJson"]
    g.add("Converse", nova_pro, json.loads(json.dumps(first)), _conv_out(g.a()), sup)  # duplicate prompt
    # ConverseStream (logged aggregated), via a cross-Region profile ID
    for _ in range(3):
        g.add("ConverseStream", "us.amazon.nova-pro-v1:0", {"system": system, "messages": [_user(g.q())]},
              _conv_out(g.a()), sup)
    # multi-turn
    g.add("Converse", nova_pro, {"system": system, "messages": [
        _user("I was charged twice."), {"role": "assistant", "content": [{"text": "Sorry! Which order number?"}]},
        _user("Order 1042.")]}, _conv_out("Thanks, I have refunded the duplicate charge on order 1042."), sup)
    # tool use
    g.add("Converse", nova_pro, {"messages": [
        _user("Where is order 1042?"),
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "track_order",
                                                       "input": {"order": "1042"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1",
                                                     "content": [{"json": {"status": "in transit"}}]}}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "track_order", "inputSchema": {"json": {}}}}]}},
        _conv_out("Order 1042 is in transit."), sup)
    # image referenced in S3
    g.add("Converse", nova_pro, {"messages": [{"role": "user", "content": [
        {"image": {"format": "png", "source": {"s3Location": {"uri": f"s3://{BUCKET}/media/receipt.png"}}}},
        {"text": "Is this receipt valid?"}]}]}, _conv_out("Yes, the receipt shows a valid purchase."), sup)
    # guardrail, error, empty, truncated
    g.add("Converse", nova_pro, {"messages": [_user("Tell me another customer's address.")]},
          {"output": {"message": {"role": "assistant", "content": [{"text": "Sorry, I can't share that."}]}},
           "stopReason": "guardrail_intervened", "trace": {"guardrail": {"inputAssessment": {}}},
           "usage": {"inputTokens": 9, "outputTokens": 0, "totalTokens": 9}}, sup)
    g.add("Converse", nova_pro, {"messages": [_user(g.q())]}, None, sup, errorCode="ThrottlingException")
    g.add("Converse", nova_pro, {"messages": [_user(g.q())]},
          {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": "end_turn"}, sup)
    g.add("Converse", nova_pro, {"messages": [_user("Explain every clause of our terms of service.")]},
          _conv_out("Clause 1 says", "max_tokens"), sup)
    # another model under the same tag (teacher mismatch), and other projects / untagged
    g.add("Converse", claude, {"messages": [_user(g.q())]}, _conv_out(g.a()), sup)
    g.add("Converse", claude, {"messages": [_user(REVIEW[0])]}, _conv_out("It subtracts; use a + b."),
          {"project": "code-review", "env": "prod"})
    g.add("Converse", nova_pro, {"messages": [_user(g.q())]}, _conv_out(g.a()), {"project": "support", "env": "dev"})
    g.add("Converse", nova_pro, {"messages": [_user("hello")]}, _conv_out("Hi!"), None)
    # InvokeModel bodies
    g.add("InvokeModel", "anthropic.claude-3-haiku-20240307-v1:0",
          {"anthropic_version": "bedrock-2023-05-31", "system": "You review code.", "max_tokens": 512,
           "messages": [{"role": "user", "content": [{"type": "text", "text": REVIEW[1]}]}]},
          {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
           "content": [{"type": "text", "text": "Prefer `for x in xs` or enumerate()."}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 25, "output_tokens": 12}}, {"project": "code-review", "env": "prod"})
    g.add("InvokeModel", "anthropic.claude-v2:1",
          {"prompt": "\n\nHuman: Summarize: the meeting moved to 3pm.\n\nAssistant:", "max_tokens_to_sample": 200,
           "anthropic_version": "bedrock-2023-05-31"},
          {"type": "completion", "completion": " The meeting is now at 3pm.", "stop_reason": "stop_sequence",
           "stop": "\n\nHuman:"}, {"project": "notes", "env": "prod"})
    g.add("InvokeModel", "meta.llama3-1-70b-instruct-v1:0",
          {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of Sudan?"
                     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "max_gen_len": 256},
          {"generation": "\n\nThe capital of Sudan is Khartoum.", "prompt_token_count": 15,
           "generation_token_count": 9, "stop_reason": "stop"}, {"project": "trivia", "env": "prod"})
    g.add("InvokeModel", "meta.llama2-13b-chat-v1",
          {"prompt": "<s>[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\nName a prime number [/INST]",
           "max_gen_len": 64}, {"generation": " 7", "stop_reason": "stop"}, {"project": "trivia", "env": "dev"})
    g.add("InvokeModel", "amazon.nova-lite-v1:0",
          {"schemaVersion": "messages-v1", "system": system, "messages": [_user(g.q())],
           "inferenceConfig": {"maxTokens": 300}}, _conv_out(g.a()), sup)
    g.add("InvokeModel", "amazon.titan-text-express-v1",
          {"inputText": "User: Write a subject line for a sale email\nBot:", "textGenerationConfig": {"maxTokenCount": 50}},
          {"inputTextTokenCount": 12, "results": [{"tokenCount": 8, "outputText": " Summer sale: 30% off",
                                                    "completionReason": "FINISH"}]}, {"project": "marketing"})
    g.add("InvokeModel", "mistral.mistral-7b-instruct-v0:2",
          {"prompt": "<s>[INST] What is your favourite condiment? [/INST]", "max_tokens": 200},
          {"outputs": [{"text": " I'm quite partial to mustard.", "stop_reason": "stop"}]}, {"project": "trivia"})
    g.add("InvokeModel", "cohere.command-r-v1:0",
          {"message": "And in winter?", "preamble": "You are a travel agent.",
           "chat_history": [{"role": "USER", "message": "Best time to visit Oslo?"},
                            {"role": "CHATBOT", "message": "Summer."}]},
          {"response_id": "r1", "text": "Winter is great for skiing.", "finish_reason": "COMPLETE"},
          {"project": "travel"})
    g.add("InvokeModel", "ai21.jamba-1-5-mini-v1:0",
          {"messages": [{"role": "user", "content": "Greet me formally"}], "max_tokens": 50},
          {"id": "j1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Good day to you."},
                                    "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}, {"project": "travel"})
    # InvokeModelWithResponseStream chunk arrays
    metrics = {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 20, "outputTokenCount": 12,
                                                    "invocationLatency": 900, "firstByteLatency": 200}}
    q = g.q()
    g.add("InvokeModelWithResponseStream", "anthropic.claude-3-haiku-20240307-v1:0",
          {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "messages": [{"role": "user", "content": q}]},
          [{"type": "message_start", "message": {"role": "assistant", "content": [], "usage": {"input_tokens": 20}}},
           {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
           {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Please see "}},
           {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "our help centre."}},
           {"type": "content_block_stop", "index": 0},
           {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}},
           {"type": "message_stop", **metrics}], {"project": "support", "env": "staging"})
    g.add("InvokeModelWithResponseStream", "anthropic.claude-v2:1",
          {"prompt": "\n\nHuman: Hello\n\nAssistant:", "max_tokens_to_sample": 300},
          [{"completion": " Hello", "stop_reason": None}, {"completion": "!", "stop_reason": None},
           {"completion": "", "stop_reason": "stop_sequence", "stop": "\n\nHuman:", **metrics}], {"project": "notes"})
    g.add("InvokeModelWithResponseStream", "us.meta.llama3-3-70b-instruct-v1:0",
          {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nSay hi<|eot_id|>"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n", "max_gen_len": 32},
          [{"generation": "Hi", "stop_reason": None}, {"generation": " there!", "stop_reason": "stop", **metrics}],
          {"project": "trivia"})
    g.add("InvokeModelWithResponseStream", "amazon.titan-text-lite-v1",
          {"inputText": "Write a haiku about rain", "textGenerationConfig": {"maxTokenCount": 100}},
          [{"outputText": "Rain taps", "index": 0, "completionReason": None, "inputTextTokenCount": 6},
           {"outputText": " the tin roof", "index": 0, "completionReason": "FINISH", **metrics}], {"project": "marketing"})
    g.add("InvokeModelWithResponseStream", "amazon.nova-micro-v1:0",
          {"messages": [_user(g.q())], "inferenceConfig": {"maxTokens": 100}},
          [{"messageStart": {"role": "assistant"}},
           {"contentBlockDelta": {"delta": {"text": "Our team "}, "contentBlockIndex": 0}},
           {"contentBlockDelta": {"delta": {"text": "will help you."}, "contentBlockIndex": 0}},
           {"contentBlockStop": {"contentBlockIndex": 0}}, {"messageStop": {"stopReason": "end_turn"}},
           {"metadata": {"usage": {"inputTokens": 10, "outputTokens": 6}}, **metrics}], sup)
    g.add("InvokeModelWithResponseStream", "mistral.mixtral-8x7b-instruct-v0:1",
          {"prompt": "<s>[INST] Hi [/INST] Hello!</s>[INST] Tell a joke [/INST]", "max_tokens": 100},
          [{"outputs": [{"text": " Why did the chicken", "stop_reason": None}]},
           {"outputs": [{"text": " cross the road?", "stop_reason": "stop"}], **metrics}], {"project": "trivia"})
    # an input body offloaded to data/ (the record names it; the object sits in the data folder)
    big = g.add("Converse", nova_pro, None, _conv_out(g.a()), sup)
    body = {"system": system, "messages": [_user("Here is my full chat transcript, please summarize: "
                                                 + " ".join(g.q() for _ in range(40)))]}
    hour = big["timestamp"][:13].replace("-", "/").replace("T", "/")
    key = f"{LAYOUT}/{hour}/data/{big['requestId']}_input.json.gz"
    del big["input"]["inputBodyJson"]
    big["input"]["inputBodyS3Path"] = f"s3://{BUCKET}/{key}"
    g.data[key] = gzip.compress(json.dumps(body).encode(), mtime=0)
    return g


def write(g: Gen, root: Path) -> list[Path]:
    """Write the records as gzipped JSON lines per hour folder (plus data/ objects and one corrupt line)."""
    by_hour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in g.records:
        by_hour[rec["timestamp"][:13]].append(rec)
    paths = []
    for n, (hour, recs) in enumerate(sorted(by_hour.items())):
        folder = root / LAYOUT / hour[:4] / hour[5:7] / hour[8:10] / hour[11:13]
        folder.mkdir(parents=True, exist_ok=True)
        stamp = recs[0]["timestamp"].replace("-", "").replace(":", "")[:15]
        path = folder / f"{stamp}000Z_{n:016x}.json.gz"
        lines = [json.dumps(r, ensure_ascii=False) for r in recs]
        if n == 1:
            lines.insert(1, '{"schemaType": "ModelInvocationLog", "requestId": "truncated-line", "oper')
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(("\n".join(lines) + "\n").encode())
        path.write_bytes(buf.getvalue())
        paths.append(path)
    for key, data in g.data.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "logs")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    g = build(args.seed)
    paths = write(g, args.out)
    print(f"wrote {len(g.records)} records in {len(paths)} files under {args.out}")


if __name__ == "__main__":
    main()
