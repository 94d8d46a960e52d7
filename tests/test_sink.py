"""The client-side invocation log (logtap.sink) against the local bedrock-runtime endpoint."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EventStreamError

import logtap
from logtap.sink import Sink
from logtap.sink.writer import complete_members
from support.bedrock_server import (
    Event,
    converse_reply,
    converse_stream_reply,
    error_reply,
    invoke_reply,
    invoke_stream_reply,
    stream_exception,
)
from support.sink_logs import FILE_NAME, KEY, by_operation, log_files, read_records

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "What is 2 + 2?"}]}]
ANTHROPIC_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                  "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]}


def hold_writer(sink: Sink, timeout: float) -> threading.Event:
    """Make ``sink``'s writer wait, before building each record, until the returned event is set."""
    release = threading.Event()
    real_build = sink._writer._builder.build

    def held(call: Any) -> Any:
        release.wait(timeout)
        return real_build(call)

    sink._writer._builder.build = held  # type: ignore[method-assign]
    return release


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    s = Sink(tmp_path / "logs", resolve_account=False)
    yield s
    s.close(10)


def all_four(client: Any) -> dict[str, Any]:
    """One call of each operation; returns what the caller saw."""
    seen: dict[str, Any] = {}
    seen["Converse"] = client.converse(modelId=NOVA, messages=MESSAGES)["output"]
    raw = client.invoke_model(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"]
    seen["InvokeModel"] = json.loads(raw.read())
    seen["ConverseStream"] = list(client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])
    body = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"]
    seen["InvokeModelWithResponseStream"] = [json.loads(e["chunk"]["bytes"]) for e in body]
    return seen


def test_every_operation_is_written_in_bedrocks_record_format(runtime_client: Any, sink: Sink,
                                                                tmp_path: Path) -> None:
    logtap.instrument(runtime_client, tags={"project": "support-bot"}, sink=sink)
    with logtap.tags(intent="math"):
        seen = all_four(runtime_client)
    assert sink.flush(10)
    records = read_records(tmp_path / "logs")
    assert len(records) == 4
    for key, rec in records:
        assert KEY.match(key), key
        assert FILE_NAME.match(key.rsplit("/", 1)[1])
        assert key.startswith("AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/")
        assert rec["schemaType"] == "ModelInvocationLog" and rec["schemaVersion"] == "1.0"
        assert rec["accountId"] == "000000000000" and rec["region"] == "us-east-1"
        assert rec["requestMetadata"] == {"project": "support-bot", "intent": "math"}
        assert rec["requestId"].startswith("local-")
        assert rec["timestamp"].endswith("Z") and len(rec["timestamp"]) == 20
        assert rec["input"]["inputContentType"] == "application/json"
        assert rec["input"]["inputTokenCount"] == 12 and rec["output"]["outputTokenCount"] == 7
        assert "errorCode" not in rec
    ops = by_operation(records)
    converse = ops["Converse"]
    assert converse["modelId"] == NOVA
    assert converse["input"]["inputBodyJson"] == {"messages": MESSAGES}  # no modelId / requestMetadata
    assert converse["output"]["outputBodyJson"]["output"] == seen["Converse"]
    assert converse["output"]["outputBodyJson"]["stopReason"] == "end_turn"
    assert "ResponseMetadata" not in converse["output"]["outputBodyJson"]
    invoke = ops["InvokeModel"]
    assert invoke["input"]["inputBodyJson"] == ANTHROPIC_BODY
    assert invoke["output"]["outputBodyJson"] == seen["InvokeModel"]
    stream = ops["ConverseStream"]["output"]["outputBodyJson"]
    assert stream["output"]["message"] == {"role": "assistant", "content": [{"text": "Hello from the stream."}]}
    assert stream["stopReason"] == "end_turn" and stream["usage"]["totalTokens"] == 19
    assert len(seen["ConverseStream"]) == 7  # the caller got every event
    chunks = ops["InvokeModelWithResponseStream"]["output"]["outputBodyJson"]
    assert chunks == seen["InvokeModelWithResponseStream"]
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 7
    assert sink.stats["written"] == 4 and sink.stats["dropped"] == 0


def test_invoke_model_body_stays_fully_readable_in_pieces(runtime_client: Any, bedrock_server: Any,
                                                          sink: Sink, tmp_path: Path) -> None:
    payload = {"generation": "x" * 5000, "prompt_token_count": 3, "generation_token_count": 900}
    reply = invoke_reply(payload)
    reply.headers = {"Content-Type": "application/json"}  # no token headers: counts come from the body
    bedrock_server.enqueue(reply)
    logtap.instrument(runtime_client, sink=sink)
    body = runtime_client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=b'{"prompt": "hi"}')["body"]
    pieces = []
    while piece := body.read(1000):
        pieces.append(piece)
    assert json.loads(b"".join(pieces)) == payload
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["output"]["outputBodyJson"] == payload
    assert rec["input"]["inputTokenCount"] == 3 and rec["output"]["outputTokenCount"] == 900


class GatedEvent(Event):
    """An event the server only sends once ``gate`` is open."""

    gate: threading.Event

    def encode(self) -> bytes:
        self.gate.wait(10)
        return super().encode()


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_each_chunk_reaches_the_caller_before_the_next_is_sent(runtime_client: Any, bedrock_server: Any,
                                                                sink: Sink, tmp_path: Path,
                                                                operation: str) -> None:
    gate = threading.Event()
    reply = converse_stream_reply() if operation == "ConverseStream" else invoke_stream_reply()
    events = list(reply.events or [])
    for event in events[2:]:
        event.__class__ = GatedEvent
        event.gate = gate  # type: ignore[attr-defined]
    reply.events = events
    bedrock_server.enqueue(reply)
    logtap.instrument(runtime_client, sink=sink)
    if operation == "ConverseStream":
        stream = runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]
    else:
        stream = runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")["body"]
    received = []
    gate_open_at_second_event = None
    for event in stream:
        received.append(event)
        if len(received) == 2:
            gate_open_at_second_event = gate.is_set()
            gate.set()
    assert gate_open_at_second_event is False  # events 1-2 arrived while the server held back the rest
    assert len(received) == len(events)
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert "errorCode" not in rec and rec["output"]["outputTokenCount"] == 7


def test_abandoned_stream_is_recorded_as_such(runtime_client: Any, bedrock_server: Any, sink: Sink,
                                              tmp_path: Path) -> None:
    bedrock_server.enqueue(converse_stream_reply(["one", " two", " three"]))
    logtap.instrument(runtime_client, sink=sink)
    stream = runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]
    for event in stream:
        if "contentBlockDelta" in event:
            break
    stream.close()
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["errorCode"] == "StreamAbandoned"
    assert rec["output"]["outputBodyJson"]["output"]["message"]["content"] == [{"text": "one"}]
    assert "stopReason" not in rec["output"]["outputBodyJson"]


def test_dropped_stream_is_recorded_when_collected(runtime_client: Any, bedrock_server: Any, sink: Sink,
                                                   tmp_path: Path) -> None:
    import gc

    logtap.instrument(runtime_client, sink=sink)
    stream = runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=b"{}")["body"]
    first = next(iter(stream))
    assert "chunk" in first
    del stream
    gc.collect()
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["errorCode"] == "StreamAbandoned"
    assert rec["output"]["outputBodyJson"][0]["type"] == "message_start"


def test_stream_failing_midway_is_recorded_and_the_error_reaches_the_caller(
        runtime_client: Any, bedrock_server: Any, sink: Sink, tmp_path: Path) -> None:
    reply = converse_stream_reply(["partial"])
    reply.events = (reply.events or [])[:2] + [stream_exception("modelStreamErrorException", "boom")]
    bedrock_server.enqueue(reply)
    logtap.instrument(runtime_client, sink=sink)
    got = []
    with pytest.raises(EventStreamError) as caught:
        for event in runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"]:
            got.append(event)
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert len(got) == 2
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["errorCode"] == "modelStreamErrorException"
    assert rec["output"]["outputBodyJson"]["output"]["message"]["content"] == [{"text": "partial"}]


def test_failed_calls_are_skipped_unless_asked_and_the_error_is_unchanged(
        runtime_client: Any, bedrock_server: Any, tmp_path: Path) -> None:
    quiet, loud = Sink(tmp_path / "quiet", resolve_account=False), Sink(
        tmp_path / "loud", resolve_account=False, record_errors=True)
    for target in (quiet, loud):
        bedrock_server.enqueue(error_reply("ThrottlingException", "slow down"))
        logtap.instrument(runtime_client, sink=target)
        with pytest.raises(ClientError) as caught:
            runtime_client.converse(modelId=NOVA, messages=MESSAGES)
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        assert caught.value.response["Error"]["Message"] == "slow down"
        target.flush(10)
    assert read_records(tmp_path / "quiet") == []
    [(_, rec)] = read_records(tmp_path / "loud")
    assert rec["errorCode"] == "ThrottlingException" and "output" not in rec
    assert rec["input"]["inputBodyJson"] == {"messages": MESSAGES}
    quiet.close(5)
    loud.close(5)


def test_large_bodies_are_offloaded_to_data(runtime_client: Any, bedrock_server: Any, tmp_path: Path) -> None:
    small = Sink(tmp_path / "logs", resolve_account=False, max_inline_bytes=2000)
    big_prompt = [{"role": "user", "content": [{"text": "word " * 1000}]}]
    logtap.instrument(runtime_client, sink=small)
    runtime_client.converse(modelId=NOVA, messages=big_prompt)
    small.flush(10)
    [(key, rec)] = read_records(tmp_path / "logs")
    assert "inputBodyJson" not in rec["input"]
    path = rec["input"]["inputBodyS3Path"]
    hour = key.rsplit("/", 1)[0]
    assert path.endswith(f"{hour}/data/{rec['requestId']}_input.json.gz")
    local = Path(path.removeprefix("file://"))
    assert json.loads(gzip.decompress(local.read_bytes())) == {"messages": big_prompt}
    assert rec["output"]["outputBodyJson"]["stopReason"] == "end_turn"  # the small output stays inline
    small.close(5)


def test_images_and_documents_are_never_inline(runtime_client: Any, bedrock_server: Any, sink: Sink,
                                               tmp_path: Path) -> None:
    png, pdf = b"\x89PNG\r\n\x1a\nfake-image", b"%PDF-1.4 fake"
    messages = [{"role": "user", "content": [
        {"text": "Describe these"},
        {"image": {"format": "png", "source": {"bytes": png}}},
        {"document": {"format": "pdf", "name": "spec", "source": {"bytes": pdf}}},
    ]}]
    claude_body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user",
                   "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                           "data": base64.b64encode(b"jpeg-bytes").decode()}},
                               {"type": "text", "text": "What is it?"}]}]}
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=messages)
    runtime_client.invoke_model(modelId=CLAUDE, body=json.dumps(claude_body))
    sink.flush(10)
    ops = by_operation(read_records(tmp_path / "logs"))
    content = ops["Converse"]["input"]["inputBodyJson"]["messages"][0]["content"]
    image_uri = content[1]["image"]["source"]["s3Uri"]
    doc_uri = content[2]["document"]["source"]["s3Uri"]
    rid = ops["Converse"]["requestId"]
    assert image_uri.endswith(f"/data/{rid}_input_media_00.png")
    assert doc_uri.endswith(f"/data/{rid}_input_media_01.pdf")
    assert content[2]["document"]["name"] == "spec" and content[2]["document"]["format"] == "pdf"
    assert Path(image_uri.removeprefix("file://")).read_bytes() == png
    assert Path(doc_uri.removeprefix("file://")).read_bytes() == pdf
    block = ops["InvokeModel"]["input"]["inputBodyJson"]["messages"][0]["content"][0]
    assert block["type"] == "image" and set(block["source"]) == {"s3Uri"}
    assert Path(block["source"]["s3Uri"].removeprefix("file://")).read_bytes() == b"jpeg-bytes"
    raw = b"".join(p.read_bytes() for p in log_files(tmp_path / "logs"))
    assert base64.b64encode(b"jpeg-bytes") not in gzip.decompress(raw)


def test_request_is_recorded_as_sent_even_if_the_caller_mutates_it_later(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    logtap.instrument(runtime_client, sink=sink)
    messages = [{"role": "user", "content": [{"text": "first"}]}]
    reply = runtime_client.converse(modelId=NOVA, messages=messages)
    messages.append(reply["output"]["message"])
    messages.append({"role": "user", "content": [{"text": "second"}]})
    sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["input"]["inputBodyJson"]["messages"] == [{"role": "user", "content": [{"text": "first"}]}]


def test_a_stalled_sink_drops_and_counts_but_never_blocks_a_call(runtime_client: Any, tmp_path: Path) -> None:
    stalled = Sink(tmp_path / "logs", resolve_account=False, max_queue=2)
    release = hold_writer(stalled, 30)
    logtap.instrument(runtime_client, sink=stalled)
    for _ in range(6):
        runtime_client.converse(modelId=NOVA, messages=MESSAGES)  # returns although the writer is stuck
    stats = stalled.stats
    assert stats["submitted"] + stats["dropped"] == 6
    assert stats["dropped"] >= 3 and stats["submitted"] <= 3
    release.set()
    assert stalled.flush(10)
    assert len(read_records(tmp_path / "logs")) == stalled.stats["written"] == stats["submitted"]
    stalled.close(5)


def test_a_failing_sink_never_fails_a_call(runtime_client: Any, tmp_path: Path) -> None:
    broken = Sink(tmp_path / "logs", resolve_account=False)

    def explode(local: Path, key: str) -> None:
        raise OSError("disk full")

    broken._dest.publish = explode  # type: ignore[method-assign]
    logtap.instrument(runtime_client, sink=broken)
    seen = all_four(runtime_client)
    assert seen["InvokeModel"]["content"][0]["text"] == "Hello from the local Bedrock."
    broken.flush(10)
    assert broken.stats["failed"] == 4 and broken.stats["written"] == 4
    broken.close(5)


def test_files_roll_over_by_size_and_every_closed_file_is_complete_gzip(runtime_client: Any,
                                                                         tmp_path: Path) -> None:
    rolling = Sink(tmp_path / "logs", resolve_account=False, max_file_bytes=3000)
    logtap.instrument(runtime_client, sink=rolling)
    for _ in range(12):
        runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    rolling.flush(10)
    files = log_files(tmp_path / "logs")
    assert len(files) >= 3
    total = 0
    for path in files:
        data = path.read_bytes()
        assert complete_members(data) == len(data)
        lines = gzip.decompress(data).splitlines()
        assert sum(len(line) + 1 for line in lines) <= 3000 or len(lines) == 1
        total += len(lines)
    assert total == 12
    assert not list((tmp_path / "logs").rglob("*.part"))
    rolling.close(5)


def test_flush_makes_records_visible_and_later_records_go_to_new_files(runtime_client: Any, sink: Sink,
                                                                        tmp_path: Path) -> None:
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert logtap.flush(10)
    assert len(read_records(tmp_path / "logs")) == 1
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert logtap.flush(10)
    assert len(log_files(tmp_path / "logs")) == 2 and len(read_records(tmp_path / "logs")) == 2


def test_attach_replaces_and_uninstrument_detaches(runtime_client: Any, tmp_path: Path) -> None:
    first, second = Sink(tmp_path / "a", resolve_account=False), Sink(tmp_path / "b", resolve_account=False)
    logtap.instrument(runtime_client, sink=first)
    logtap.instrument(runtime_client, sink=second)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    logtap.uninstrument(runtime_client)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    logtap.flush(10)
    assert read_records(tmp_path / "a") == []
    assert len(read_records(tmp_path / "b")) == 1
    first.close(5)
    second.close(5)


def test_account_id_comes_from_an_arn_model_id(runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    arn = "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
    logtap.instrument(runtime_client, sink=sink)
    runtime_client.converse(modelId=arn, messages=MESSAGES)
    sink.flush(10)
    [(key, rec)] = read_records(tmp_path / "logs")
    assert rec["accountId"] == "111122223333" and key.startswith("AWSLogs/111122223333/")
    assert rec["modelId"] == arn


def test_complete_members_cuts_a_torn_tail() -> None:
    one = zlib.compressobj(6, zlib.DEFLATED, 31)
    first = one.compress(b'{"a": 1}\n') + one.flush()
    two = zlib.compressobj(6, zlib.DEFLATED, 31)
    second = two.compress(b'{"b": 2}\n') + two.flush()
    assert complete_members(first + second) == len(first) + len(second)
    assert complete_members(first + second[:-3]) == len(first)
    assert complete_members(second[:5]) == 0


CHILD = """
import json, os, sys, time
sys.path.insert(0, {tests!r})
from support.bedrock_fixtures import new_runtime_client
import logtap
from logtap.sink import Sink
sink = Sink({root!r}, resolve_account=False)
client = logtap.instrument(new_runtime_client({url!r}), tags={{"run": "child"}}, sink=sink)
for _ in range(3):
    client.converse(modelId="amazon.nova-lite-v1:0", messages=[{{"role": "user", "content": [{{"text": "hi"}}]}}])
while sink.stats["written"] < 3:
    time.sleep(0.01)
time.sleep(0.3)  # the batch's gzip member is finished right after the last write
{ending}
"""


def run_child(tmp_path: Path, url: str, ending: str) -> None:
    tests = str(Path(__file__).parent)
    code = CHILD.format(tests=tests, root=str(tmp_path / "logs"), url=url, ending=ending)
    env = {**os.environ, "PYTHONPATH": tests}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_pending_records_are_written_at_interpreter_exit(bedrock_server: Any, tmp_path: Path) -> None:
    run_child(tmp_path, bedrock_server.url, "")
    records = read_records(tmp_path / "logs")
    assert len(records) == 3 and all(rec["requestMetadata"] == {"run": "child"} for _, rec in records)


def test_a_stream_still_open_at_exit_is_recorded_as_abandoned(bedrock_server: Any, tmp_path: Path) -> None:
    open_stream = ("stream = client.converse_stream(modelId='amazon.nova-lite-v1:0', messages=[{'role': 'user', "
                   "'content': [{'text': 'hi'}]}])['stream']\nevents = iter(stream)\nnext(events)\nnext(events)")
    run_child(tmp_path, bedrock_server.url, open_stream)
    records = [rec for _, rec in read_records(tmp_path / "logs")]
    assert len(records) == 4
    [abandoned] = [rec for rec in records if rec["operation"] == "ConverseStream"]
    assert abandoned["errorCode"] == "StreamAbandoned"
    assert abandoned["output"]["outputBodyJson"]["output"]["message"]["content"] == [{"text": "Hello"}]


def test_a_crash_loses_nothing_already_written_to_the_part_file(bedrock_server: Any, tmp_path: Path) -> None:
    run_child(tmp_path, bedrock_server.url, "os._exit(0)")
    assert read_records(tmp_path / "logs") == []  # nothing published: the file was still open
    assert list((tmp_path / "logs" / ".logtap-staging").rglob("*.part"))
    recovering = Sink(tmp_path / "logs", resolve_account=False)
    assert recovering.flush(10)
    records = read_records(tmp_path / "logs")
    assert len(records) == 3
    assert recovering.stats["recovered_files"] == 1
    assert not list((tmp_path / "logs" / ".logtap-staging").rglob("*.part"))
    recovering.close(5)


def test_records_go_to_their_hour_and_past_hours_files_close_by_themselves(tmp_path: Path) -> None:
    import time

    from logtap.sink.records import CompletedCall, snapshot
    from logtap.sink.writer import FolderDestination, Writer

    writer = Writer(FolderDestination(tmp_path / "logs"), batch_interval=0.05, max_file_age=3600)
    now = time.time()
    for started, rid in ((now - 7200, "old"), (now, "new")):
        writer.submit(CompletedCall("Converse", NOVA, "eu-west-1", started, rid, None,
                                    snapshot({"messages": MESSAGES}), snapshot({"stopReason": "end_turn"})))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not log_files(tmp_path / "logs"):
        time.sleep(0.05)
    [closed] = log_files(tmp_path / "logs")  # the past hour's file closed without a flush
    assert time.strftime("/%Y/%m/%d/%H/", time.gmtime(now - 7200)) in closed.as_posix()
    assert writer.flush(10)
    records = read_records(tmp_path / "logs")
    hours = {rec["requestId"]: key.split("/")[4:8] for key, rec in records}
    assert hours["old"] == time.strftime("%Y/%m/%d/%H", time.gmtime(now - 7200)).split("/")
    assert hours["new"] == time.strftime("%Y/%m/%d/%H", time.gmtime(now)).split("/")
    assert all(rec["region"] == "eu-west-1" and "/eu-west-1/" in key for key, rec in records)
    writer.close(5)


def test_files_close_after_max_file_age(tmp_path: Path) -> None:
    import time

    from logtap.sink.records import CompletedCall, snapshot
    from logtap.sink.writer import FolderDestination, Writer

    writer = Writer(FolderDestination(tmp_path / "logs"), batch_interval=0.05, max_file_age=0.2)
    writer.submit(CompletedCall("Converse", NOVA, "us-east-1", time.time(), "r1", None,
                                snapshot({"messages": MESSAGES}), snapshot({"stopReason": "end_turn"})))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not log_files(tmp_path / "logs"):
        time.sleep(0.05)
    assert len(read_records(tmp_path / "logs")) == 1
    writer.close(5)


def test_converse_stream_reasoning_tool_use_and_redacted_bytes_are_aggregated(
        runtime_client: Any, bedrock_server: Any, sink: Sink, tmp_path: Path) -> None:
    secret = b"\x00\x01redacted-bytes"
    reply = converse_stream_reply([])
    events = list(reply.events or [])
    events[1:1] = [
        Event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Think "}}}),
        Event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hard."}}}),
        Event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
        Event("contentBlockStart", {"contentBlockIndex": 1,
                                    "start": {"toolUse": {"toolUseId": "t1", "name": "calc"}}}),
        Event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a": '}}}),
        Event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "2}"}}}),
        Event("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"reasoningContent": {
            "redactedContent": base64.b64encode(secret).decode()}}}),
    ]
    reply.events = events
    bedrock_server.enqueue(reply)
    logtap.instrument(runtime_client, sink=sink)
    got = list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])
    assert len(got) == len(events)
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert "errorCode" not in rec
    assert rec["output"]["outputBodyJson"]["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Think hard.", "signature": "sig"}}},
        {"toolUse": {"toolUseId": "t1", "name": "calc", "input": {"a": 2}}},
        {"reasoningContent": {"redactedContent": base64.b64encode(secret).decode()}},
    ]


def test_large_responses_are_offloaded_to_data_too(runtime_client: Any, bedrock_server: Any,
                                                   tmp_path: Path) -> None:
    small = Sink(tmp_path / "logs", resolve_account=False, max_inline_bytes=2000)
    answer = "long answer " * 400
    bedrock_server.enqueue(converse_reply(answer), invoke_reply({"completion": answer}))
    logtap.instrument(runtime_client, sink=small)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert json.loads(runtime_client.invoke_model(modelId=CLAUDE, body=b'{"prompt": "hi"}')["body"].read()) == {
        "completion": answer}
    assert small.flush(10)
    ops = by_operation(read_records(tmp_path / "logs"))
    for operation, expected_text in (("Converse", None), ("InvokeModel", answer)):
        rec = ops[operation]
        assert "outputBodyJson" not in rec["output"] and "inputBodyJson" in rec["input"]
        path = rec["output"]["outputBodyS3Path"]
        assert path.endswith(f"/data/{rec['requestId']}_output.json.gz")
        stored = json.loads(gzip.decompress(Path(path.removeprefix("file://")).read_bytes()))
        if expected_text is None:
            assert stored["output"]["message"]["content"] == [{"text": answer}]
        else:
            assert stored == {"completion": expected_text}
    small.close(5)


def test_stream_token_counts_come_from_the_last_events_and_late_events_are_left_out(
        runtime_client: Any, bedrock_server: Any, sink: Sink, tmp_path: Path) -> None:
    # ConverseStream: usage (cache counts included) from the metadata event, built on the writer.
    reply = converse_stream_reply(["Hello", " there"])
    events = list(reply.events or [])
    events[-1] = Event("metadata", {"usage": {"inputTokens": 11, "outputTokens": 5, "totalTokens": 16,
                                              "cacheReadInputTokens": 4, "cacheWriteInputTokens": 2},
                                    "metrics": {"latencyMs": 9}})
    reply.events = events
    bedrock_server.enqueue(reply)
    # InvokeModelWithResponseStream, abandoned after the first chunk: nothing read later is kept.
    bedrock_server.enqueue(invoke_stream_reply())
    logtap.instrument(runtime_client, sink=sink)
    assert len(list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])) == len(events)
    stream = runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"]
    next(iter(stream))
    stream.close()
    assert sink.flush(10)
    records = by_operation(read_records(tmp_path / "logs"))
    conv = records["ConverseStream"]
    assert conv["input"]["inputTokenCount"] == 11 and conv["output"]["outputTokenCount"] == 5
    assert conv["input"]["cacheReadInputTokenCount"] == 4 and conv["input"]["cacheWriteInputTokenCount"] == 2
    assert conv["output"]["outputBodyJson"]["output"]["message"]["content"] == [{"text": "Hello there"}]
    assert conv["output"]["outputBodyJson"]["usage"]["cacheReadInputTokens"] == 4
    abandoned = records["InvokeModelWithResponseStream"]
    assert abandoned["errorCode"] == "StreamAbandoned"
    assert len(abandoned["output"]["outputBodyJson"]) == 1


def test_events_another_thread_reads_after_the_stream_finished_are_not_recorded() -> None:
    from logtap.sink.streams import StreamRecorder

    done: list[Any] = []
    recorder = StreamRecorder("InvokeModelWithResponseStream", lambda rec, code: done.append((rec.response(), code)))
    recorder.on_event({"chunk": {"bytes": b'{"n": 1}'}})
    recorder.abandon()
    recorder.on_event({"chunk": {"bytes": b'{"n": 2}'}})  # a second reader still pulling events
    recorder.finish(None)  # only the first finish counts
    [(response, code)] = done
    recorder.on_event({"chunk": {"bytes": b'{"n": 3}'}})  # and after the writer got the response
    assert code == "StreamAbandoned"
    assert response.build_body() == [{"n": 1}]


def test_the_caller_keeps_its_own_stream_object_and_logtap_uses_botocores_own_loop(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    from botocore.eventstream import EventStream

    from logtap.sink import streams

    # logtap repeats botocore's EventStream.__iter__ loop with the append inside (one generator per
    # event, not two): this fails when a botocore upgrade changes that loop, so the copy is looked at
    assert streams._INLINE_ITER
    raw = runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)
    logtap.instrument(runtime_client, sink=sink)
    response = runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)
    stream = response["stream"]
    assert isinstance(stream, EventStream) and type(stream) is not EventStream
    assert list(stream) == list(raw["stream"])
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["output"]["outputBodyJson"]["output"]["message"]["content"] == [{"text": "Hello from the stream."}]
    assert rec["requestId"] == response["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize("operation", ["ConverseStream", "InvokeModelWithResponseStream"])
def test_streams_are_recorded_the_same_when_botocores_loop_is_not_the_known_one(
        runtime_client: Any, sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    from logtap.sink import streams

    monkeypatch.setattr(streams, "_INLINE_ITER", False)  # wrap botocore's own generator instead
    logtap.instrument(runtime_client, tags={"team": "a"}, sink=sink)
    if operation == "ConverseStream":
        events = list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])
        assert events[-1]["metadata"]["usage"]["outputTokens"] == 7
    else:
        body = runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))
        events = list(body["body"])
        assert json.loads(events[0]["chunk"]["bytes"])["type"] == "message_start"
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["operation"] == operation and "errorCode" not in rec
    assert rec["requestMetadata"] == {"team": "a"}
    assert rec["input"]["inputTokenCount"] == 12 and rec["output"]["outputTokenCount"] == 7
    out = rec["output"]["outputBodyJson"]
    assert len(out) == len(events) if operation != "ConverseStream" else out["stopReason"] == "end_turn"


def test_a_stream_whose_record_cannot_be_built_is_counted_as_failed_and_the_next_is_written(
        runtime_client: Any, sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logtap.sink import calls

    real = calls._StreamCall.completed
    broken = {"once": True}

    def completed(self: Any) -> Any:  # the record of the first stream fails on the writer thread
        if broken.pop("once", False):
            raise RuntimeError("cannot build")
        return real(self)

    monkeypatch.setattr(calls._StreamCall, "completed", completed)
    logtap.instrument(runtime_client, sink=sink)
    first = list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])
    second = list(runtime_client.converse_stream(modelId=NOVA, messages=MESSAGES)["stream"])
    assert first == second and len(first) == 7  # the callers never noticed
    assert sink.flush(10)
    assert sink.stats["failed"] == 1 and sink.stats["written"] == 1
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["operation"] == "ConverseStream" and "errorCode" not in rec


def test_a_converse_stream_request_is_recorded_as_it_was_when_the_call_was_made(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    logtap.instrument(runtime_client, sink=sink)
    messages = [{"role": "user", "content": [{"text": "first"}]}]
    stream = runtime_client.converse_stream(modelId=NOVA, messages=messages)["stream"]
    messages.append({"role": "assistant", "content": [{"text": "changed before the stream was read"}]})
    messages[0]["content"][0]["text"] = "mutated"
    list(stream)
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["input"]["inputBodyJson"] == {"messages": [{"role": "user", "content": [{"text": "first"}]}]}
    assert rec["modelId"] == NOVA and "requestMetadata" not in rec["input"]["inputBodyJson"]


def test_observers_get_a_streams_token_counts_at_once_and_its_record_is_still_written(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    from logtap.sink import add_observer, remove_observer

    seen: list[Any] = []
    logtap.instrument(runtime_client, tags={"team": "a"}, sink=sink)
    add_observer(runtime_client, "test", seen.append)
    body = runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"]
    list(body)
    [summary] = seen  # delivered when the stream ended, on the caller's thread
    assert summary.operation == "InvokeModelWithResponseStream" and summary.ok and summary.tag_keys == ["team"]
    assert summary.input_tokens == 12 and summary.output_tokens == 7
    remove_observer(runtime_client, "test")
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["input"]["inputTokenCount"] == 12 and rec["output"]["outputTokenCount"] == 7
    assert rec["requestMetadata"] == {"team": "a"} and "errorCode" not in rec


def test_an_invoke_model_body_is_recorded_as_sent_even_if_the_caller_changes_it_later(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    logtap.instrument(runtime_client, sink=sink)
    release = hold_writer(sink, 10)  # the writer builds the record only after the caller changed its body
    body = bytearray(json.dumps(ANTHROPIC_BODY).encode())
    runtime_client.invoke_model(modelId=CLAUDE, body=body)["body"].read()
    body[:] = b'{"changed": true}'
    text = json.dumps({"prompt": "h\u00e9llo \u2603"}, ensure_ascii=False)  # a str body: recorded as its UTF-8
    runtime_client.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=text)["body"].read()
    release.set()
    assert sink.flush(10)
    first, second = (rec for _, rec in read_records(tmp_path / "logs"))
    assert first["input"]["inputBodyJson"] == ANTHROPIC_BODY
    assert second["input"]["inputBodyJson"] == {"prompt": "h\u00e9llo \u2603"}


def test_a_converse_response_the_caller_changes_is_recorded_as_received_with_its_token_counts(
        runtime_client: Any, bedrock_server: Any, sink: Sink, tmp_path: Path) -> None:
    logtap.instrument(runtime_client, sink=sink)
    release = hold_writer(sink, 10)
    bedrock_server.enqueue(converse_reply("Four.", input_tokens=21, output_tokens=2))
    reply = runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    reply["output"]["message"]["content"][0]["text"] = "edited by the caller"
    reply["usage"]["inputTokens"] = 999
    del reply["stopReason"]
    release.set()
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    out = rec["output"]["outputBodyJson"]
    assert out["output"]["message"]["content"] == [{"text": "Four."}] and out["stopReason"] == "end_turn"
    assert out["usage"]["inputTokens"] == 21
    assert rec["input"]["inputTokenCount"] == 21 and rec["output"]["outputTokenCount"] == 2


def test_invoke_model_token_headers_are_read_into_the_record_and_bad_values_left_out(
        runtime_client: Any, bedrock_server: Any, sink: Sink, tmp_path: Path) -> None:
    reply = invoke_reply()
    reply.headers.update({"X-Amzn-Bedrock-Cache-Read-Input-Token-Count": "40",
                          "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "5"})
    bad = invoke_reply()
    bad.headers.update({"X-Amzn-Bedrock-Input-Token-Count": "many",
                        "X-Amzn-Bedrock-Cache-Read-Input-Token-Count": ""})
    bedrock_server.enqueue(reply, bad)
    logtap.instrument(runtime_client, sink=sink)
    for _ in range(2):
        runtime_client.invoke_model(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"].read()
    assert sink.flush(10)
    good, worse = (rec for _, rec in read_records(tmp_path / "logs"))
    assert good["input"]["inputTokenCount"] == 12 and good["output"]["outputTokenCount"] == 7
    assert good["input"]["cacheReadInputTokenCount"] == 40 and good["input"]["cacheWriteInputTokenCount"] == 5
    assert "inputTokenCount" not in worse["input"] and "cacheReadInputTokenCount" not in worse["input"]
    assert worse["output"]["outputTokenCount"] == 7


def test_converse_and_invoke_model_records_are_built_on_the_writer_thread(
        runtime_client: Any, sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logtap.sink import calls

    built_on: list[str] = []
    real = calls._PlainCall.completed

    def completed(self: Any) -> Any:
        built_on.append(threading.current_thread().name)
        return real(self)

    monkeypatch.setattr(calls._PlainCall, "completed", completed)
    logtap.instrument(runtime_client, tags={"team": "a"}, sink=sink)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    runtime_client.invoke_model(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"].read()
    assert sink.flush(10)
    assert built_on == ["logtap-sink-writer", "logtap-sink-writer"]
    records = by_operation(read_records(tmp_path / "logs"))
    assert records["Converse"]["requestMetadata"] == {"team": "a"} == records["InvokeModel"]["requestMetadata"]


def test_observers_get_converse_and_invoke_model_token_counts_at_once(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    from logtap.sink import add_observer, remove_observer

    seen: list[Any] = []
    logtap.instrument(runtime_client, sink=sink)
    add_observer(runtime_client, "test", seen.append)
    runtime_client.converse(modelId=NOVA, messages=MESSAGES)
    assert [(s.operation, s.input_tokens, s.output_tokens) for s in seen] == [("Converse", 12, 7)]
    runtime_client.invoke_model(modelId=CLAUDE, body=json.dumps(ANTHROPIC_BODY))["body"].read()
    assert [(s.operation, s.input_tokens, s.output_tokens, s.ok) for s in seen][1] == ("InvokeModel", 12, 7, True)
    remove_observer(runtime_client, "test")
    assert sink.flush(10)
    records = by_operation(read_records(tmp_path / "logs"))
    assert records["Converse"]["input"]["inputTokenCount"] == 12
    assert records["InvokeModel"]["output"]["outputTokenCount"] == 7


def test_a_queued_stream_keeps_chunk_payloads_only_and_not_the_callers_parameters(
        runtime_client: Any, sink: Sink, tmp_path: Path) -> None:
    """Until the writer takes it, a finished InvokeModelWithResponseStream call holds each chunk's payload
    bytes (not botocore's event dicts) and none of the caller's parameters: fewer live objects for the
    garbage collector. The record is the same."""
    import gc
    import io
    import weakref

    from logtap.sink.calls import _StreamCall

    sink._writer.batch_interval = 3600.0  # the writer leaves the queue alone until flush()
    logtap.instrument(runtime_client, tags={"team": "a"}, sink=sink)
    body = io.BytesIO(json.dumps(ANTHROPIC_BODY).encode())
    body_ref = weakref.ref(body)
    events = list(runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"])
    payloads = [event["chunk"]["bytes"] for event in events]
    [queued] = list(sink._writer._pending)
    assert isinstance(queued, _StreamCall)
    assert queued.events == payloads and all(type(entry) is bytes for entry in queued.events)
    del body, events
    gc.collect()
    assert body_ref() is None  # the caller's request body object is not kept by the queued call
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["input"]["inputBodyJson"] == ANTHROPIC_BODY
    assert rec["output"]["outputBodyJson"] == [json.loads(p) for p in payloads]
    assert rec["requestMetadata"] == {"team": "a"}
    assert (rec["input"]["inputTokenCount"], rec["output"]["outputTokenCount"]) == (12, 7)


def test_chunk_list_takes_payloads_and_events_alike() -> None:
    """The writer decodes what the recording streams keep (payload bytes) and whole events (other
    recorders, non-chunk events) the same way; what is not a chunk payload is left out."""
    from logtap.sink.streams import StreamRecorder, _ChunkList

    entries = [b'{"a": 1}', {"chunk": {"bytes": b'{"b" : 2}'}}, {"other": 1}, "x", {"chunk": {"bytes": "str"}},
               b"not json", b"\xff", {"chunk": {"bytes": b'{"amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}'}}]
    assert _ChunkList(entries).build_body() == [
        {"a": 1}, {"b": 2}, "not json", "\ufffd", {"amazon-bedrock-invocationMetrics": {"inputTokenCount": 3}}]
    recorder = StreamRecorder("InvokeModelWithResponseStream")
    for entry in (b'{"a": 1}', b'{"amazon-bedrock-invocationMetrics": {"outputTokenCount": 9}}'):
        recorder.on_event(entry)
    assert recorder.invocation_metrics() == {"outputTokenCount": 9}


@pytest.mark.parametrize("kind", ["str", "bytes", "bytearray"])
def test_stream_request_body_is_recorded_as_sent_whatever_its_type(
        runtime_client: Any, sink: Sink, tmp_path: Path, kind: str) -> None:
    """An immutable body (str, bytes) is kept by reference and a str encoded by the writer; a mutable
    one is copied at once, so changing it after the call does not change the record."""
    text = json.dumps({**ANTHROPIC_BODY, "note": "h\u00e9llo \u2603"}, ensure_ascii=False)
    body: Any = {"str": text, "bytes": text.encode(), "bytearray": bytearray(text.encode())}[kind]
    logtap.instrument(runtime_client, sink=sink)
    list(runtime_client.invoke_model_with_response_stream(modelId=CLAUDE, body=body)["body"])
    if kind == "bytearray":
        body[:] = b'{"changed": true}'
    assert sink.flush(10)
    [(_, rec)] = read_records(tmp_path / "logs")
    assert rec["input"]["inputBodyJson"] == json.loads(text)
