"""Overhead of the tagging middleware: instrumented vs raw bedrock-runtime client, local endpoint.

    .venv/bin/python benchmarks/middleware.py            # 2,000 calls each
    .venv/bin/python benchmarks/middleware.py --quick    # 200 calls each (smoke run)

1. Converse end to end against tests/support/bedrock_server.py (real serialize/sign/HTTP/parse),
   raw and instrumented clients interleaved in small blocks so drift hits all alike; tags from
   ``instrument(tags=...)`` plus a ``logtap.tags(...)`` context. The target (the issue's
   definition) compares the instrumented client with the RAW UNTAGGED client: added time < 2% of
   a raw call and < 30 us. A third client passes the same requestMetadata by hand, which shows
   what botocore itself charges for carrying tags (logtap avoids most of it for Converse by
   splicing the tags into the serialized body). The same for InvokeModel (header), for reference.
2. The hook functions alone (the per-call tag-resolution path), many iterations, since the HTTP
   noise of (1) can exceed the overhead itself.
3. Import time of ``import logtap`` vs ``import boto3`` in fresh interpreters (median wall time,
   minus an empty interpreter's start-up).
Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

MODEL = "amazon.nova-lite-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Summarize our refund policy in one line."}]}]
INVOKE_BODY = b'{"messages": [{"role": "user", "content": "Summarize our refund policy in one line."}]}'
STATIC_TAGS = {"project": "CustomerService", "env": "prod", "team": "support-bots"}
CONTEXT_TAGS = {"intent": "BestPractices", "priority": "Medium"}
BLOCK = 10
MAX_ADDED_US = 30.0
MAX_ADDED_PCT = 2.0


def timed_calls(client: Any, n: int, operation: str = "converse", **extra: Any) -> list[float]:
    out = []
    method = getattr(client, operation)
    args: dict[str, Any] = {"modelId": MODEL, "messages": MESSAGES} if operation == "converse" else {
        "modelId": MODEL, "body": INVOKE_BODY}
    for _ in range(n):
        start = time.perf_counter_ns()
        response = method(**args, **extra)
        if operation == "invoke_model":
            response["body"].read()
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def end_to_end(calls: int, operation: str = "converse") -> dict[str, float]:
    """Median us per call for three clients, interleaved in rotating blocks.

    ``raw``: no tags. ``by hand``: raw client, the same requestMetadata passed by the caller
    (botocore's own cost of carrying tags). ``instrumented``: logtap adds the same tags.
    ``paired vs raw`` / ``paired vs by hand``: median over rounds of the difference of the two
    clients' block medians in that round (robust to drift).
    """
    import json

    import logtap
    from support.bedrock_fixtures import new_runtime_client
    from support.bedrock_server import BedrockServer

    same_tags = {**CONTEXT_TAGS, **STATIC_TAGS}  # what logtap sends: inner layers first
    by_hand_value: Any = same_tags if operation == "converse" else json.dumps(same_tags, separators=(",", ":"))
    with BedrockServer() as server:
        raw = new_runtime_client(server.url)
        by_hand = new_runtime_client(server.url)
        tagged = logtap.instrument(new_runtime_client(server.url), tags=STATIC_TAGS)
        series: dict[str, tuple[Any, dict[str, Any]]] = {
            "raw": (raw, {}),
            "by hand": (by_hand, {"requestMetadata": by_hand_value}),
            "instrumented": (tagged, {}),
        }
        times: dict[str, list[float]] = {name: [] for name in series}
        paired: dict[str, list[float]] = {"raw": [], "by hand": []}
        names = list(series)
        with logtap.tags(**CONTEXT_TAGS):
            for client, extra in series.values():
                timed_calls(client, 50, operation, **extra)  # warm up connections and botocore caches
            for block in range(calls // BLOCK):
                shift = block % len(names)  # rotate which client goes first
                round_medians = {}
                for name in names[shift:] + names[:shift]:
                    client, extra = series[name]
                    block_times = timed_calls(client, BLOCK, operation, **extra)
                    times[name].extend(block_times)
                    round_medians[name] = statistics.median(block_times)
                for other in paired:
                    paired[other].append(round_medians["instrumented"] - round_medians[other])
            timed_calls(tagged, 1, operation)
        last = server.last
        if operation == "converse":
            assert last.json()["requestMetadata"] == same_tags, last.body
            assert last.body.count(b'"requestMetadata"') == 1
        else:
            assert json.loads(last.header("x-amzn-bedrock-request-metadata") or "") == same_tags
        server.clear()
    medians = {name: statistics.median(values) for name, values in times.items()}
    for other, values in paired.items():
        medians[f"paired vs {other}"] = statistics.median(values)
    return medians


def hook_alone(iterations: int) -> dict[str, float]:
    import boto3

    import logtap
    from logtap.middleware import _state_of

    client = logtap.instrument(
        boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x"),
        tags=STATIC_TAGS,
    )
    state = _state_of(client)
    assert state is not None
    body = client._serializer.serialize_to_request(
        {"modelId": MODEL, "messages": MESSAGES}, client.meta.service_model.operation_model("Converse"))["body"]

    def converse(**extra: Any) -> None:  # before-parameter-build + before-call (the splice)
        context: dict[str, Any] = {}
        state.on_converse_params(params={"modelId": MODEL, **extra}, context=context)
        state.on_before_call_body(params={"headers": {}, "body": body}, context=context)

    def invoke() -> None:  # before-call: the header into the serialized request
        state.on_before_call_header(params={"headers": {"X-Amzn-Bedrock-Accept": "*/*"}}, context={})

    cases = {
        "converse, tags from instrument + context (resolve + splice into body)": lambda: converse(),
        "converse, plus the call's own requestMetadata (merge into params)":
            lambda: converse(requestMetadata={"c": "1"}),
        "invoke_model (JSON header value)": invoke,
    }
    results = {}
    with logtap.tags(**CONTEXT_TAGS):
        for name, run in cases.items():
            for _ in range(1000):
                run()
            start = time.perf_counter_ns()
            for _ in range(iterations):
                run()
            results[name] = (time.perf_counter_ns() - start) / iterations / 1000
    return results


def emit_level(iterations: int) -> tuple[float, float]:
    """us per ``provide-client-params`` + ``before-call`` emission: raw vs instrumented client.

    This is everything logtap adds inside botocore for a call (dispatch + hooks), without HTTP.
    """
    import boto3

    import logtap

    def make() -> Any:
        return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="x")

    raw, tagged = make(), logtap.instrument(make(), tags=STATIC_TAGS)
    model = raw.meta.service_model.operation_model("Converse")
    body = raw._serializer.serialize_to_request({"modelId": MODEL, "messages": MESSAGES}, model)["body"]
    out = []
    with logtap.tags(**CONTEXT_TAGS):
        for client in (raw, tagged):
            events = client.meta.events

            def once(events: Any = events) -> None:
                params = {"modelId": MODEL, "messages": MESSAGES}
                context: dict[str, Any] = {}
                events.emit("provide-client-params.bedrock-runtime.Converse", params=params, model=model,
                            context=context)
                events.emit("before-parameter-build.bedrock-runtime.Converse", params=params, model=model,
                            context=context)
                events.emit_until_response("before-call.bedrock-runtime.Converse", model=model,
                                           params={"headers": {}, "body": body}, request_signer=None,
                                           context=context)

            for _ in range(1000):
                once()
            start = time.perf_counter_ns()
            for _ in range(iterations):
                once()
            out.append((time.perf_counter_ns() - start) / iterations / 1000)
    return out[0], out[1]


def import_time(runs: int) -> dict[str, float]:
    def wall(code: str) -> float:
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)

    empty = wall("pass")
    return {
        "python -c pass (baseline)": empty,
        "import logtap": wall("import logtap") - empty,
        "import logtap; logtap.instrument (middleware loaded)": wall("import logtap; logtap.instrument") - empty,
        "import boto3": wall("import boto3") - empty,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 calls instead of 2,000 (smoke run)")
    parser.add_argument("--calls", type=int, default=None, help="calls per client (default 2000)")
    args = parser.parse_args(argv)
    calls = args.calls or (200 if args.quick else 2000)
    iterations = 20_000 if args.quick else 200_000

    medians = end_to_end(calls)
    raw, by_hand, tagged = medians["raw"], medians["by hand"], medians["instrumented"]
    added = tagged - raw  # the definition: instrumented vs the same raw client, untagged
    pct = 100 * added / raw
    paired_raw, paired_hand = medians["paired vs raw"], medians["paired vs by hand"]
    print(f"end to end, Converse with {len(STATIC_TAGS) + len(CONTEXT_TAGS)} tags, {calls} calls each, "
          f"interleaved blocks of {BLOCK}:")
    print(f"  median raw (no tags)                 {raw:9.1f} us")
    print(f"  median raw + same tags by hand       {by_hand:9.1f} us  (botocore carrying the tags as a "
          f"parameter: {by_hand - raw:+.1f} us)")
    print(f"  median instrumented                  {tagged:9.1f} us")
    print(f"  added vs raw untagged (TARGET)       {added:9.1f} us  ({pct:+.2f} % of a raw call); "
          f"paired blocks {paired_raw:+.1f} us ({100 * paired_raw / raw:+.2f} %)")
    print(f"  added vs raw + tags by hand          {tagged - by_hand:9.1f} us  "
          f"({100 * (tagged - by_hand) / raw:+.2f} %); paired blocks {paired_hand:+.1f} us "
          f"({100 * paired_hand / raw:+.2f} %)")

    inv = end_to_end(max(calls // 2, BLOCK), "invoke_model")
    inv_added = inv["instrumented"] - inv["raw"]
    print(f"end to end, InvokeModel (tags in the header), {max(calls // 2, BLOCK)} calls each, for reference:")
    print(f"  median raw {inv['raw']:.1f} us, by hand {inv['by hand']:.1f} us "
          f"({inv['by hand'] - inv['raw']:+.1f} us), instrumented {inv['instrumented']:.1f} us: "
          f"added vs raw {inv_added:+.1f} us ({100 * inv_added / inv['raw']:+.2f} %), paired "
          f"{inv['paired vs raw']:+.1f} us")

    hooks = hook_alone(iterations)
    print(f"hook alone ({iterations} iterations each, per call):")
    for name, us in hooks.items():
        print(f"  {us:6.2f} us  {name}")

    emit_raw, emit_tagged = emit_level(iterations // 4)
    print(f"botocore event emission per call ({iterations // 4} iterations): raw {emit_raw:.2f} us, "
          f"instrumented {emit_tagged:.2f} us, added {emit_tagged - emit_raw:.2f} us")

    imports = import_time(3 if args.quick else 7)
    print("import time (fresh interpreter, median wall ms):")
    for name, ms in imports.items():
        print(f"  {ms:7.1f} ms  {name}")

    logtap_cost = max(max(hooks.values()), emit_tagged - emit_raw)
    cost_pct = 100 * logtap_cost / raw
    hooks_ok = logtap_cost < MAX_ADDED_US and cost_pct < MAX_ADDED_PCT
    ok = added < MAX_ADDED_US and pct < MAX_ADDED_PCT
    print(f"target: instrumented vs raw untagged client, added < {MAX_ADDED_US:.0f} us and "
          f"< {MAX_ADDED_PCT:.0f} % of a raw call")
    print(f"  Converse end to end (difference of medians): {added:+.1f} us = {pct:+.2f} % -> "
          f"{'OK' if ok else 'MISSED'}")
    print(f"  (paired-block estimate: {paired_raw:+.1f} us = {100 * paired_raw / raw:+.2f} %; vs the same tags "
          f"passed by hand: {tagged - by_hand:+.1f} us)")
    print(f"  logtap's own per-call cost (hook / emission, no HTTP): {logtap_cost:.2f} us = {cost_pct:.3f} % "
          f"-> {'OK' if hooks_ok else 'MISSED'}")
    ok = ok and hooks_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
