"""Tag limits from the service model, dropped-tag warnings, strict mode, threads and asyncio."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logtap
from logtap import tagrules
from logtap.errors import TagError
from support.bedrock_fixtures import new_runtime_client, session_with_model
from support.bedrock_server import BedrockServer

MODEL = "amazon.nova-lite-v1:0"
HEADER = "x-amzn-bedrock-request-metadata"
SECRET = "s3cr3t-value"


def converse(client: Any, text: str = "hi", **kw: Any) -> Any:
    return client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": text}]}], **kw)


def logtap_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "logtap" and r.levelno == logging.WARNING]


def warned_keys(caplog: pytest.LogCaptureFixture) -> list[str]:
    return sorted(re.search(r"tag '([^']*)'", r.getMessage()).group(1)  # type: ignore[union-attr]
                  for r in logtap_warnings(caplog))


def assert_no_value_logged(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    for record in caplog.records:
        text = record.getMessage()
        for value in values:
            assert value not in text, f"value leaked into the log: {text}"


# -- limits come from the service model -----------------------------------------------------------
def test_rules_read_from_the_installed_model(runtime_client: Any) -> None:
    rules = tagrules.rules_from_service_model(runtime_client.meta.service_model)
    shape = runtime_client.meta.service_model.operation_model("Converse").input_shape.members["requestMetadata"]
    assert rules.source == "service model"
    assert (rules.min_entries, rules.max_entries) == (shape.metadata["min"], shape.metadata["max"]) == (1, 16)
    assert (rules.key_min, rules.key_max) == (1, 256)
    assert (rules.value_min, rules.value_max) == (0, 256)
    assert rules.key_pattern == shape.key.metadata["pattern"]
    assert rules.json_max == 8500


def _tighten(model: dict[str, Any]) -> None:
    shapes = model["shapes"]
    shapes["RequestMetadata"]["max"] = 3
    shapes["RequestMetadataKeyString"]["max"] = 5
    shapes["RequestMetadataKeyString"]["pattern"] = "[a-z]{1,5}"
    shapes["RequestMetadataJson"]["max"] = 20


def test_limits_follow_the_clients_own_model(
    bedrock_server: BedrockServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = new_runtime_client(bedrock_server.url, session_with_model(tmp_path, _tighten))
    with caplog.at_level(logging.WARNING, logger="logtap"):
        logtap.instrument(client, tags={"abc": "1", "toolong": "2", "UPPER": "3", "d": "4", "e": "5", "f": "6"})
        converse(client)
    assert bedrock_server.last.json()["requestMetadata"] == {"abc": "1", "d": "4", "e": "5"}
    dropped = warned_keys(caplog)
    assert dropped == ["UPPER", "f", "toolong"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="logtap"):
        client.invoke_model(modelId=MODEL, body=b"{}")
    header = bedrock_server.last.header(HEADER)
    assert header is not None and len(header) <= 20
    assert json.loads(header) == {"abc": "1", "d": "4"}  # the lowest-precedence tag went
    assert any("exceed 20 characters" in r.getMessage() for r in logtap_warnings(caplog))


def test_defaults_where_the_model_is_silent(bedrock_server: BedrockServer, tmp_path: Path) -> None:
    def strip(model: dict[str, Any]) -> None:
        for name in ("RequestMetadata", "RequestMetadataKeyString", "RequestMetadataValueString",
                     "RequestMetadataJson"):
            for limit in ("min", "max", "pattern"):
                model["shapes"][name].pop(limit, None)

    client = new_runtime_client(bedrock_server.url, session_with_model(tmp_path, strip))
    rules = tagrules.rules_from_service_model(client.meta.service_model)
    assert (rules.max_entries, rules.key_max, rules.value_max, rules.json_max) == (16, 256, 256, 8500)
    assert rules.key_pattern == r"[a-zA-Z0-9\s:_@$#=/+,-.]{1,256}"


# -- bad tags: dropped, one warning per key, never the value --------------------------------------
def test_bad_instrument_tags_dropped_once_per_key(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {"bad key!": SECRET, "long": SECRET * 30, "semi": SECRET + ";", "": SECRET, "n": 5}
    with caplog.at_level(logging.DEBUG, logger="logtap"):
        logtap.instrument(runtime_client, tags={"good": "ok", **bad})  # type: ignore[dict-item]
        for _ in range(3):
            converse(runtime_client)
            runtime_client.invoke_model(modelId=MODEL, body=b"{}")
    warnings = logtap_warnings(caplog)
    assert len(warnings) == len(bad)
    for key in bad:
        assert sum(repr(key) in r.getMessage() for r in warnings) >= 1
    assert_no_value_logged(caplog, SECRET)
    assert all(r.json()["requestMetadata"] == {"good": "ok"} for r in bedrock_server.requests[::2])
    assert all(r.header(HEADER) == '{"good":"ok"}' for r in bedrock_server.requests[1::2])


def test_bad_context_tags_dropped_once(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logtap.instrument(runtime_client)
    with caplog.at_level(logging.WARNING, logger="logtap"):
        with logtap.tags({"bad|key": SECRET, "ok": "fine", "val": SECRET + "\u00e9"}):
            for _ in range(3):
                converse(runtime_client)
    warnings = logtap_warnings(caplog)
    assert sorted(r.getMessage().split("'")[1] for r in warnings) == ["bad|key", "val"]
    assert_no_value_logged(caplog, SECRET)
    assert [r.json()["requestMetadata"] for r in bedrock_server.requests] == [{"ok": "fine"}] * 3


def test_non_string_context_value_dropped_at_entry(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="logtap"):
        with logtap.tags(count=3, ok="yes"):  # type: ignore[arg-type]
            assert logtap.current_tags() == {"ok": "yes"}
    assert len(logtap_warnings(caplog)) == 1 and "'count'" in caplog.records[0].getMessage()
    assert "3" not in caplog.records[0].getMessage().replace("'count'", "")


def test_filter_unsafe_tags_are_sent_with_a_warning(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="logtap"):
        logtap.instrument(runtime_client, tags={"team#1": "a", "list": "x,y", "plain": "p"})
        with logtap.tags(ctx="has#hash"):
            converse(runtime_client)
            converse(runtime_client)
    assert bedrock_server.last.json()["requestMetadata"] == {
        "ctx": "has#hash", "team#1": "a", "list": "x,y", "plain": "p"}
    messages = [r.getMessage() for r in logtap_warnings(caplog)]
    assert len(messages) == 3 and all("distillation" in m for m in messages)
    assert_no_value_logged(caplog, "x,y", "has#hash")


def test_more_than_16_keeps_highest_precedence(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    static = {f"s{i:02d}": "v" for i in range(10)}
    outer = {f"o{i:02d}": "v" for i in range(5)}
    inner = {f"i{i:02d}": "v" for i in range(3)}
    caller = {"c0": "v", "c1": "v"}
    with caplog.at_level(logging.WARNING, logger="logtap"):
        logtap.instrument(runtime_client, tags=static)
        with logtap.tags(outer), logtap.tags(inner):
            converse(runtime_client, requestMetadata=caller)
    sent = bedrock_server.last.json()["requestMetadata"]
    assert len(sent) == 16
    assert set(caller) | set(inner) | set(outer) <= set(sent)
    assert {k for k in sent if k.startswith("s")} == {f"s{i:02d}" for i in range(6)}
    dropped = warned_keys(caplog)
    assert dropped == [f"s{i:02d}" for i in range(6, 10)]


def test_callers_own_bad_metadata_is_sent_untouched_with_a_warning(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logtap.instrument(runtime_client, tags={"p": "1"})
    with caplog.at_level(logging.WARNING, logger="logtap"):
        converse(runtime_client, requestMetadata={"bad!": SECRET})
    assert bedrock_server.last.json()["requestMetadata"] == {"p": "1", "bad!": SECRET}
    assert len(logtap_warnings(caplog)) == 1
    assert_no_value_logged(caplog, SECRET)


# -- strict ---------------------------------------------------------------------------------------
def test_strict_instrument_raises_before_anything(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    from logtap.middleware import is_instrumented

    with pytest.raises(TagError, match="'bad key!'") as info:
        logtap.instrument(runtime_client, tags={"bad key!": SECRET}, strict=True)
    assert SECRET not in str(info.value)
    assert not is_instrumented(runtime_client)
    logtap.instrument(runtime_client, tags={"ok": "1"}, strict=True)
    with pytest.raises(TagError):
        logtap.instrument(runtime_client, tags={"x" * 300: "1"}, strict=True)
    converse(runtime_client)  # the failed update left the previous settings in place
    assert bedrock_server.last.json()["requestMetadata"] == {"ok": "1"}
    logtap.uninstrument(runtime_client)


def test_strict_context_raises_on_entry(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, strict=True)
    ran = []
    with pytest.raises(TagError, match="logtap.tags"):
        with logtap.tags({"bad|key": "v"}):
            ran.append(1)
    assert ran == []
    with pytest.raises(TagError):
        with logtap.tags(n=1):  # type: ignore[arg-type]
            ran.append(1)
    assert ran == [] and bedrock_server.requests == []
    logtap.uninstrument(runtime_client)
    with logtap.tags({"bad|key": "v"}):  # no strict client left: dropped per call instead
        ran.append(1)
    assert ran == [1]


def test_strict_call_metadata_raises_before_request(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, tags={"p": "1"}, strict=True)
    with pytest.raises(TagError, match="requestMetadata of the call"):
        converse(runtime_client, requestMetadata={"bad!": "v"})
    with pytest.raises(TagError):
        runtime_client.invoke_model(modelId=MODEL, body=b"{}", requestMetadata='{"bad!": "v"}')
    with pytest.raises(TagError, match="more than 16"):
        converse(runtime_client, requestMetadata={f"k{i}": "v" for i in range(16)})
    assert bedrock_server.requests == []
    logtap.uninstrument(runtime_client)


def test_strict_context_layer_entered_before_strict_client_raises_at_call(
    bedrock_server: BedrockServer, runtime_client: Any
) -> None:
    with logtap.tags({"bad|key": "v"}):
        logtap.instrument(runtime_client, strict=True)
        with pytest.raises(TagError):
            converse(runtime_client)
    assert bedrock_server.requests == []
    logtap.uninstrument(runtime_client)


# -- contextvars: nesting, threads, asyncio -------------------------------------------------------
def by_text(server: BedrockServer) -> dict[str, dict[str, str] | None]:
    out = {}
    for request in server.requests:
        body = request.json()
        out[body["messages"][0]["content"][0]["text"]] = body.get("requestMetadata")
    return out


def test_current_tags_nests() -> None:
    assert logtap.current_tags() == {}
    with logtap.tags(a="1", b="1"):
        with logtap.tags(b="2", c="2"):
            assert logtap.current_tags() == {"a": "1", "b": "2", "c": "2"}
        assert logtap.current_tags() == {"a": "1", "b": "1"}
    assert logtap.current_tags() == {}


def test_threads_with_copied_context(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client, tags={"base": "b"})
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        with logtap.tags(worker=str(i)):
            barrier.wait(timeout=10)  # all threads inside their own block at once
            converse(runtime_client, text=f"t{i}")

    threads = []
    with logtap.tags(outer="o"):
        for i in range(4):
            ctx = contextvars.copy_context()
            threads.append(threading.Thread(target=ctx.run, args=(worker, i)))
        plain = threading.Thread(target=converse, args=(runtime_client, "plain"))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    plain.start()
    plain.join()
    seen = by_text(bedrock_server)
    for i in range(4):
        assert seen[f"t{i}"] == {"worker": str(i), "outer": "o", "base": "b"}
    assert seen["plain"] == {"base": "b"}  # a plain thread does not copy the context


def test_asyncio_tasks(bedrock_server: BedrockServer, runtime_client: Any) -> None:
    logtap.instrument(runtime_client)

    @logtap.tags(deco="async")
    async def decorated(i: int) -> None:
        await asyncio.to_thread(converse, runtime_client, f"d{i}")

    async def one(i: int) -> None:
        async with logtap.tags(task=str(i)):
            await asyncio.sleep(0.01 * (3 - i))
            await asyncio.to_thread(converse, runtime_client, f"a{i}")

    async def main() -> dict[str, str]:
        with logtap.tags(outer="o"):
            tasks = [asyncio.create_task(one(i)) for i in range(3)]
        await asyncio.gather(*tasks, decorated(1))
        return logtap.current_tags()

    assert asyncio.run(main()) == {}  # nothing leaked out of the tasks
    seen = by_text(bedrock_server)
    for i in range(3):
        assert seen[f"a{i}"] == {"task": str(i), "outer": "o"}
    assert seen["d1"] == {"deco": "async"}


# -- the character set, against an independent definition -------------------------------------------
ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r\x0b\x0c:_@$#=/+,-.")


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=260),
       st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=260))
@settings(max_examples=400, deadline=None)
def test_check_tag_matches_the_documented_limits(key: str, value: str) -> None:
    expected_ok = (1 <= len(key) <= 256 and len(value) <= 256
                   and set(key) <= ALLOWED and set(value) <= ALLOWED)
    assert (tagrules.check_tag(tagrules.DEFAULT_RULES, key, value) is None) == expected_ok
    unsafe = tagrules.filter_unsafe(key, value)
    assert (unsafe is not None) == bool({"#", ","} & (set(key) | set(value)))


def test_callers_own_filter_unsafe_tags_are_sent_with_a_warning(
    bedrock_server: BedrockServer, runtime_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    logtap.instrument(runtime_client, tags={"p": "1"}, strict=True)  # a warning, never a TagError
    with caplog.at_level(logging.WARNING, logger="logtap"):
        converse(runtime_client, requestMetadata={"case#": "a", "list": "x,y"})
        runtime_client.invoke_model(modelId=MODEL, body=b"{}", requestMetadata='{"inv": "u,v"}')
    assert bedrock_server.requests[0].json()["requestMetadata"] == {"p": "1", "case#": "a", "list": "x,y"}
    assert json.loads(bedrock_server.last.header(HEADER) or "") == {"p": "1", "inv": "u,v"}
    assert warned_keys(caplog) == ["case#", "inv", "list"]
    assert all("distillation" in r.getMessage() for r in logtap_warnings(caplog))
    assert_no_value_logged(caplog, "x,y", "u,v")
    logtap.uninstrument(runtime_client)
