"""Tagging middleware over the real wire: botocore serializes, signs and parses against a local server."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

import logtap
from logtap import middleware
from support.bedrock_fixtures import new_runtime_client
from support.bedrock_server import BedrockServer, anthropic_stream_chunks

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
HEADER = "x-amzn-bedrock-request-metadata"


def converse(client: Any, **kw: Any) -> Any:
    return client.converse(modelId=MODEL, messages=MESSAGES, **kw)


def invoke(client: Any, **kw: Any) -> Any:
    response = client.invoke_model(modelId=MODEL, body=b'{"prompt": "hi"}', **kw)
    response["body"] = response["body"].read()
    return response


def sent_header(server: BedrockServer) -> dict[str, str] | None:
    raw = server.last.header(HEADER)
    return None if raw is None else json.loads(raw)


# -- Converse / ConverseStream: body field ------------------------------------------------------
def test_converse_sends_tags_in_request_metadata_body(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    client = logtap.instrument(runtime_client, tags={"project": "CustomerService"})
    assert client is runtime_client
    with logtap.tags(intent="BestPractices", priority="Medium"):
        converse(client)
    body = bedrock_server.last.json()
    assert body["requestMetadata"] == {"project": "CustomerService", "intent": "BestPractices", "priority": "Medium"}
    assert body["messages"] == MESSAGES
    assert bedrock_server.last.header(HEADER) is None


def test_converse_stream_sends_tags_in_body(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, tags={"team": "search"})
    response = runtime_client.converse_stream(modelId=MODEL, messages=MESSAGES)
    list(response["stream"])
    assert bedrock_server.last.operation == "ConverseStream"
    assert bedrock_server.last.json()["requestMetadata"] == {"team": "search"}


def test_no_tags_means_no_field(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client)
    converse(runtime_client)
    assert "requestMetadata" not in bedrock_server.last.json()
    invoke(runtime_client)
    assert bedrock_server.last.header(HEADER) is None


# -- InvokeModel*: signed header -----------------------------------------------------------------
@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_invoke_sends_signed_compact_json_header(
    bedrock_server: BedrockServer, runtime_client: Any, operation: str
) -> None:
    logtap.instrument(runtime_client, tags={"project": "P1"})
    with logtap.tags(intent="I1"):
        if operation == "InvokeModel":
            invoke(runtime_client)
        else:
            list(runtime_client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}")["body"])
    request = bedrock_server.last
    assert request.operation == operation
    assert request.header(HEADER) == '{"intent":"I1","project":"P1"}'  # compact JSON
    assert HEADER in request.signed_headers
    assert "requestMetadata" not in (request.json() or {})


def test_invoke_merges_callers_json_and_caller_wins(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, tags={"project": "P1", "env": "prod"})
    caller = json.dumps({"env": "test", "case": "c1"})
    invoke(runtime_client, requestMetadata=caller)
    assert sent_header(bedrock_server) == {"project": "P1", "env": "test", "case": "c1"}
    assert HEADER in bedrock_server.last.signed_headers


def test_invoke_leaves_unparseable_caller_value_untouched(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logtap.instrument(runtime_client, tags={"project": "P1"})
    with caplog.at_level("WARNING", logger="logtap"):
        invoke(runtime_client, requestMetadata="not json at all")
    assert bedrock_server.last.header(HEADER) == "not json at all"
    assert any("not a JSON object" in r.getMessage() for r in caplog.records)
    assert all("not json at all" not in r.getMessage() for r in caplog.records)


def test_invoke_caller_value_alone_is_sent_byte_for_byte(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client)
    caller = '{ "team" : "a" }'
    invoke(runtime_client, requestMetadata=caller)
    assert bedrock_server.last.header(HEADER) == caller


# -- botocore too old to know requestMetadata for InvokeModel* ----------------------------------
def test_old_botocore_model_really_lacks_the_parameter(bedrock_server: BedrockServer, old_botocore_session: Any) -> None:
    client = new_runtime_client(bedrock_server.url, old_botocore_session)
    members = client.meta.service_model.operation_model("InvokeModel").input_shape.members
    assert "requestMetadata" not in members
    assert "requestMetadata" in client.meta.service_model.operation_model("Converse").input_shape.members
    with pytest.raises(Exception, match="Unknown parameter"):
        client.invoke_model(modelId=MODEL, body=b"{}", requestMetadata="{}")
    assert bedrock_server.requests == []


@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_old_botocore_gets_signed_header(
    bedrock_server: BedrockServer, old_botocore_session: Any, operation: str
) -> None:
    client = logtap.instrument(new_runtime_client(bedrock_server.url, old_botocore_session), tags={"project": "Old"})
    with logtap.tags(intent="legacy"):
        if operation == "InvokeModel":
            body = client.invoke_model(modelId=MODEL, body=b"{}")["body"].read()
            assert json.loads(body)["content"][0]["text"] == "Hello from the local Bedrock."
        else:
            events = list(client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}")["body"])
            assert len(events) == len(anthropic_stream_chunks())
    assert bedrock_server.last.header(HEADER) == '{"intent":"legacy","project":"Old"}'
    assert HEADER in bedrock_server.last.signed_headers
    # Converse still uses the body field with this model.
    converse(client)
    assert bedrock_server.last.json()["requestMetadata"] == {"project": "Old"}


def test_old_botocore_merges_header_set_by_another_hook(bedrock_server: BedrockServer, old_botocore_session: Any) -> None:
    client = new_runtime_client(bedrock_server.url, old_botocore_session)

    def callers_own_header(params: dict[str, Any], **_: Any) -> None:
        params["headers"]["X-Amzn-Bedrock-Request-Metadata"] = '{"project":"Mine","x":"1"}'

    client.meta.events.register_first("before-call.bedrock-runtime.InvokeModel", callers_own_header)
    logtap.instrument(client, tags={"project": "Theirs", "env": "prod"})
    client.invoke_model(modelId=MODEL, body=b"{}")
    assert sent_header(bedrock_server) == {"project": "Mine", "env": "prod", "x": "1"}
    assert HEADER in bedrock_server.last.signed_headers


# -- precedence ---------------------------------------------------------------------------------
def test_precedence_call_over_inner_over_outer_over_instrument(
    bedrock_server: BedrockServer, runtime_client: Any
) -> None:
    logtap.instrument(runtime_client, tags={"a": "instrument", "b": "instrument", "c": "instrument", "d": "instrument"})
    with logtap.tags(a="outer", b="outer", c="outer"):
        with logtap.tags(a="inner", b="inner"):
            callers = {"a": "call"}
            converse(runtime_client, requestMetadata=callers)
            assert callers == {"a": "call"}  # the caller's dict is not mutated
            assert bedrock_server.last.json()["requestMetadata"] == {
                "a": "call", "b": "inner", "c": "outer", "d": "instrument"}
            invoke(runtime_client, requestMetadata='{"a":"call"}')
            assert sent_header(bedrock_server) == {"a": "call", "b": "inner", "c": "outer", "d": "instrument"}
        converse(runtime_client)
        assert bedrock_server.last.json()["requestMetadata"] == {
            "a": "outer", "b": "outer", "c": "outer", "d": "instrument"}
    converse(runtime_client)
    assert bedrock_server.last.json()["requestMetadata"] == {
        "a": "instrument", "b": "instrument", "c": "instrument", "d": "instrument"}


def test_tags_decorator_applies_per_call(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client)

    @logtap.tags(job="nightly")
    def run() -> None:
        converse(runtime_client)

    run()
    assert bedrock_server.last.json()["requestMetadata"] == {"job": "nightly"}
    converse(runtime_client)
    assert "requestMetadata" not in bedrock_server.last.json()


def test_context_metadata_handed_to_sink_hooks(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    seen: list[Any] = []

    def after_call(context: dict[str, Any], **_: Any) -> None:
        seen.append(context.get(middleware.CONTEXT_KEY))

    runtime_client.meta.events.register("after-call.bedrock-runtime", after_call)
    logtap.instrument(runtime_client, tags={"p": "1"})
    converse(runtime_client, requestMetadata={"c": "2"})
    invoke(runtime_client)
    logtap.instrument(runtime_client)
    converse(runtime_client)
    assert seen == [{"p": "1", "c": "2"}, {"p": "1"}, None]


# -- lifecycle ----------------------------------------------------------------------------------
def test_instrument_twice_does_not_double_and_updates(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    calls: list[int] = []
    state_hook = middleware._base_tags

    def counting(state: Any, stack: Any) -> Any:
        calls.append(1)
        return state_hook(state, stack)

    logtap.instrument(runtime_client, tags={"v": "1"})
    logtap.instrument(runtime_client, tags={"v": "2", "w": "x"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(middleware, "_base_tags", counting)
        converse(runtime_client)
        invoke(runtime_client)
    assert len(calls) == 2  # one hook run per call, not two
    assert sent_header(bedrock_server) == {"v": "2", "w": "x"}
    assert bedrock_server.requests[0].json()["requestMetadata"] == {"v": "2", "w": "x"}
    logtap.instrument(runtime_client)
    converse(runtime_client)
    assert "requestMetadata" not in bedrock_server.last.json()


def test_uninstrument_removes_every_hook(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, tags={"p": "1"})
    assert middleware.is_instrumented(runtime_client)
    assert logtap.uninstrument(runtime_client) is runtime_client
    assert not middleware.is_instrumented(runtime_client)
    with logtap.tags(q="2"):
        converse(runtime_client)
        invoke(runtime_client)
    assert "requestMetadata" not in bedrock_server.requests[0].json()
    assert bedrock_server.last.header(HEADER) is None
    logtap.uninstrument(runtime_client)  # harmless twice
    logtap.instrument(runtime_client, tags={"p": "3"})
    converse(runtime_client)
    assert bedrock_server.last.json()["requestMetadata"] == {"p": "3"}


def test_instrument_is_per_client(bedrock_server: BedrockServer, make_runtime_client: Any) -> None:
    session = boto3.Session()
    tagged = logtap.instrument(make_runtime_client(session), tags={"p": "1"})
    plain = make_runtime_client(session)
    converse(plain)
    assert "requestMetadata" not in bedrock_server.last.json()
    converse(tagged)
    assert bedrock_server.last.json()["requestMetadata"] == {"p": "1"}


def test_instrument_rejects_other_services() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(TypeError, match="bedrock-runtime"):
        logtap.instrument(s3)
    with pytest.raises(TypeError, match="client"):
        logtap.instrument(object())


@pytest.mark.parametrize("kind", ["boto3", "botocore"])
def test_instrument_session_covers_new_clients(
    bedrock_server: BedrockServer, make_runtime_client: Any, kind: str
) -> None:
    import botocore.session

    session: Any = boto3.Session() if kind == "boto3" else botocore.session.get_session()
    before = make_runtime_client(session)
    assert logtap.instrument_session(session, tags={"src": "session"}) is session
    after = make_runtime_client(session)
    assert middleware.is_instrumented(after) and not middleware.is_instrumented(before)
    with logtap.tags(inner="yes"):
        converse(after)
    assert bedrock_server.last.json()["requestMetadata"] == {"inner": "yes", "src": "session"}
    invoke(after)
    assert sent_header(bedrock_server) == {"src": "session"}
    converse(before)
    assert "requestMetadata" not in bedrock_server.last.json()
    # other services are untouched
    assert not middleware.is_instrumented(session.client("s3", region_name="us-east-1")
                                          if kind == "boto3" else session.create_client("s3", region_name="us-east-1"))
    logtap.instrument_session(session, tags={"src": "updated"})
    converse(make_runtime_client(session))
    assert bedrock_server.last.json()["requestMetadata"] == {"src": "updated"}
    middleware.uninstrument_session(session)  # lead: export as logtap.uninstrument_session
    late = make_runtime_client(session)
    assert not middleware.is_instrumented(late)
    converse(late)
    assert "requestMetadata" not in bedrock_server.last.json()
    converse(after)  # made while instrumented: stays instrumented
    assert bedrock_server.last.json()["requestMetadata"] == {"src": "session"}


# -- sink hand-off (the sink itself is tested with the sink) ---------------------------------------
def test_sink_handoff_calls_attach_and_detach(runtime_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import logtap.sink as sink_module

    calls: list[tuple[str, Any, Any]] = []
    monkeypatch.setattr(sink_module, "attach", lambda client, sink: calls.append(("attach", client, sink)),
                        raising=False)
    monkeypatch.setattr(sink_module, "detach", lambda client: calls.append(("detach", client, None)),
                        raising=False)
    logtap.instrument(runtime_client, sink="/tmp/logs-a")
    logtap.instrument(runtime_client, sink="/tmp/logs-b")  # a new sink replaces the old one
    logtap.instrument(runtime_client)  # sink=None on a later call detaches
    logtap.instrument(runtime_client, sink="/tmp/logs-c")
    logtap.uninstrument(runtime_client)
    assert [(c[0], c[2]) for c in calls] == [
        ("attach", "/tmp/logs-a"), ("attach", "/tmp/logs-b"), ("detach", None), ("attach", "/tmp/logs-c"),
        ("detach", None)]
    assert all(c[1] is runtime_client for c in calls)


def test_sink_without_attach_warns_and_tags_still_apply(
    bedrock_server: BedrockServer, runtime_client: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logtap.sink as sink_module

    monkeypatch.delattr(sink_module, "attach", raising=False)
    monkeypatch.delattr(sink_module, "detach", raising=False)
    with caplog.at_level("WARNING", logger="logtap"):
        logtap.instrument(runtime_client, tags={"p": "1"}, sink="/tmp/nowhere")
    assert any("no client-side sink" in r.getMessage() for r in caplog.records)
    converse(runtime_client)
    assert bedrock_server.last.json()["requestMetadata"] == {"p": "1"}
    logtap.uninstrument(runtime_client)


def test_botocore_knowing_the_parameter_for_only_one_invoke_operation(
    bedrock_server: BedrockServer, tmp_path: Any
) -> None:
    """The header-or-parameter choice is made per operation, so the caller's JSON is merged on both."""
    from support.bedrock_fixtures import session_with_model

    def drop_from_stream_op(model: dict[str, Any]) -> None:
        shape = model["operations"]["InvokeModelWithResponseStream"]["input"]["shape"]
        model["shapes"][shape]["members"].pop("requestMetadata")

    client = logtap.instrument(
        new_runtime_client(bedrock_server.url, session_with_model(tmp_path, drop_from_stream_op)),
        tags={"project": "P", "env": "prod"})
    invoke(client, requestMetadata='{"case":"c1","project":"Mine"}')
    assert sent_header(bedrock_server) == {"project": "Mine", "env": "prod", "case": "c1"}
    assert HEADER in bedrock_server.last.signed_headers
    with logtap.tags(intent="I"):
        list(client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}")["body"])
    assert bedrock_server.last.operation == "InvokeModelWithResponseStream"
    assert bedrock_server.last.header(HEADER) == '{"intent":"I","project":"P","env":"prod"}'
    assert HEADER in bedrock_server.last.signed_headers


def _class_snapshot() -> dict[str, dict[str, int]]:
    import botocore.client
    import botocore.endpoint
    import botocore.hooks
    import botocore.serialize
    import botocore.session
    import botocore.signers

    classes = [botocore.client.BaseClient, botocore.client.ClientCreator, botocore.endpoint.Endpoint,
               botocore.hooks.HierarchicalEmitter, botocore.session.Session, botocore.signers.RequestSigner,
               botocore.serialize.RestJSONSerializer, boto3.Session]
    return {cls.__qualname__: {name: id(value) for name, value in vars(cls).items()} for cls in classes}


def test_no_global_patching_of_botocore(bedrock_server: BedrockServer, make_runtime_client: Any) -> None:
    import botocore.handlers

    before, handlers_before = _class_snapshot(), list(botocore.handlers.BUILTIN_HANDLERS)
    session = boto3.Session()
    tagged = logtap.instrument(make_runtime_client(session), tags={"p": "1"})
    logtap.instrument_session(boto3.Session(), tags={"s": "1"})
    with logtap.tags(q="2"):
        converse(tagged)
        invoke(tagged)
    assert _class_snapshot() == before
    assert botocore.handlers.BUILTIN_HANDLERS == handlers_before
    fresh = make_runtime_client(session)  # the same session, created after instrument(): untouched
    with logtap.tags(q="2"):
        converse(fresh)
    assert "requestMetadata" not in bedrock_server.last.json()
    assert not middleware.is_instrumented(fresh)


def test_tagging_imports_nothing_of_the_query_side(bedrock_server: BedrockServer) -> None:
    """A Lambda that only tags calls: instrument, tags, real calls, uninstrument; no duckdb or click."""
    import subprocess
    import sys

    code = f"""
import sys, boto3, logtap
client = logtap.instrument(boto3.client("bedrock-runtime", endpoint_url={bedrock_server.url!r}), tags={{"p": "1"}})
with logtap.tags(q="2"):
    client.converse(modelId="m", messages=[{{"role": "user", "content": [{{"text": "hi"}}]}}])
    client.invoke_model(modelId="m", body=b"{{}}")["body"].read()
logtap.uninstrument(client)
print(",".join(m for m in ("duckdb", "click", "logtap.engine", "logtap.cli") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == ""
    assert [r.operation for r in bedrock_server.requests] == ["Converse", "InvokeModel"]
    assert bedrock_server.requests[0].json()["requestMetadata"] == {"q": "2", "p": "1"}
    assert sent_header(bedrock_server) == {"q": "2", "p": "1"}


# -- InvokeModel*: the header written in before-call, cached JSON per tag set ----------------------
@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_invoke_tags_go_straight_into_the_signed_header_not_through_the_parameter(
    bedrock_server: BedrockServer, runtime_client: Any, operation: str
) -> None:
    """botocore never sees a requestMetadata parameter logtap added (no validation or serialization of
    it per call): the header is written into the serialized request, before signing."""
    seen: list[Any] = []

    def later_hook(params: dict[str, Any], **_: Any) -> None:
        seen.append(params.get("requestMetadata"))

    logtap.instrument(runtime_client, tags={"project": "P1"})
    runtime_client.meta.events.register(f"provide-client-params.bedrock-runtime.{operation}", later_hook)
    runtime_client.meta.events.register(f"before-parameter-build.bedrock-runtime.{operation}", later_hook)
    if operation == "InvokeModel":
        invoke(runtime_client)
    else:
        list(runtime_client.invoke_model_with_response_stream(modelId=MODEL, body=b"{}")["body"])
    assert seen == [None, None]
    assert bedrock_server.last.header(HEADER) == '{"project":"P1"}'
    assert HEADER in bedrock_server.last.signed_headers


def test_invoke_header_cache_never_serves_another_calls_tags(
    bedrock_server: BedrockServer, runtime_client: Any
) -> None:
    """Tag sets alternate call by call (contexts, nesting, the call's own metadata, instrument updates):
    every request carries exactly its own call's tags; a change is seen by the very next call."""
    logtap.instrument(runtime_client, tags={"base": "0"})
    expected: list[dict[str, str]] = []
    for i in range(3):
        with logtap.tags(round=str(i)):
            invoke(runtime_client)
            expected.append({"round": str(i), "base": "0"})
            with logtap.tags(round="inner", x=str(i)):
                invoke(runtime_client)
                expected.append({"round": "inner", "x": str(i), "base": "0"})
            invoke(runtime_client, requestMetadata=json.dumps({"own": str(i)}))
            expected.append({"round": str(i), "base": "0", "own": str(i)})
            invoke(runtime_client)
            expected.append({"round": str(i), "base": "0"})
        invoke(runtime_client)
        expected.append({"base": "0"})
        logtap.instrument(runtime_client, tags={"base": str(i + 1)})
        invoke(runtime_client)
        expected.append({"base": str(i + 1)})
        logtap.instrument(runtime_client, tags={"base": "0"})
    sent = [json.loads(r.header(HEADER)) for r in bedrock_server.requests]
    assert sent == expected
    assert [list(s) for s in sent] == [list(e) for e in expected]  # innermost first, instrument tags, own


def test_invoke_header_per_thread_context(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    """Threads calling one client at once with their own logtap.tags: each request has its thread's tags."""
    import threading

    logtap.instrument(runtime_client, tags={"base": "0"})
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with logtap.tags(worker=str(n)):
                for i in range(10):
                    runtime_client.invoke_model(modelId=MODEL, body=json.dumps({"w": n, "i": i}))["body"].read()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    requests = [r for r in bedrock_server.requests if r.operation == "InvokeModel"]
    assert len(requests) == 40
    for request in requests:
        assert json.loads(request.header(HEADER)) == {"worker": str(request.json()["w"]), "base": "0"}
