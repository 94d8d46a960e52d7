"""The converters' fast paths give exactly what the general paths give.

Each per-record fast path (str.find scans instead of lazy regexes, a one-pass check of text-only
records, text-only shaping, family-gated format detection, the model's slot-storing ``__init__``)
is compared here against the general code it short-cuts, on generated inputs built from the
tokens that matter to it, so any divergence in output or skip reason shows up as a counterexample.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtap.converters import model
from logtap.converters._text import _INST, inst_spans
from logtap.converters.llama import _HEADER, _headers
from logtap.converters.model import (
    Conversation,
    Prompt,
    Reasoning,
    Response,
    Text,
    ToolUse,
    Turn,
    Unsupported,
)
from logtap.converters.registry import DETECTORS, _detectors_for, detect_format
from logtap.converters.shaping import Shaping, _shape_any, _shape_text, shape
from logtap.converters.validate import NOVA_RESERVED, RULES, SCHEMA_VERSION, _problems, check_record

# --- str.find scans == the regexes they replace -------------------------------------------------

LLAMA_TOKENS = ["<|start_header_id|>", "<|end_header_id|>", "user", "system", "\n", "a", " ", "<|eot_id|>",
                "x\n", "<|", "|>"]
INST_TOKENS = ["[INST]", "[/INST]", "<s>", "</s>", "<<SYS>>", "<</SYS>>", "a", " ", "\n", "[", "]"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(LLAMA_TOKENS), max_size=12).map("".join))
def test_llama_header_scan_equals_regex(prompt: str) -> None:
    assert _headers(prompt) == [(m.group(1), m.group(2)) for m in _HEADER.finditer(prompt)]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(INST_TOKENS), max_size=12).map("".join))
def test_inst_scan_equals_regex(prompt: str) -> None:
    assert inst_spans(prompt) == [(m.start(), m.end(), m.start(1), m.end(1)) for m in _INST.finditer(prompt)]


def test_llama_header_scan_named_cases() -> None:
    prompt = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    assert _headers(prompt) == [("user", "\n\nhi<|eot_id|>"), ("assistant", "")]  # `$` stops before a final \n
    assert _headers("<|start_header_id|>user") == []  # a start header with no end header ends the scan


# --- check_record: the one-pass text check never accepts what the full check rejects ------------

TEXTS = st.sampled_from(["hi", " ", "", "User: x", "a [EOS] b", "ok\n", "<image>"]) | st.text(max_size=5)
TEXT_BLOCK = st.builds(lambda t: {"text": t}, st.sampled_from(["hi", "ok"]) | TEXTS)
ODD_BLOCK = st.sampled_from([{"text": 1}, {"text": "a", "x": 1}, {}, "text", {"image": {}}, {"json": {}}])
BLOCK = st.one_of(TEXT_BLOCK, TEXT_BLOCK, ODD_BLOCK)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", None]), "content": st.lists(BLOCK, max_size=3)},
    optional={"extra": st.just(1)},
)


@st.composite
def records(draw: st.DrawFn) -> Any:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["schemaVersion"] = draw(st.sampled_from([SCHEMA_VERSION, SCHEMA_VERSION, "other"]))
    if draw(st.booleans()):
        doc["system"] = draw(st.lists(st.one_of(TEXT_BLOCK, ODD_BLOCK), max_size=2))
    if draw(st.integers(0, 5)):
        n = draw(st.integers(0, 4))
        alternating = [{"role": "user" if i % 2 == 0 else "assistant",
                        "content": draw(st.lists(TEXT_BLOCK if draw(st.integers(0, 3)) else BLOCK, min_size=1, max_size=2))}
                       for i in range(n)]
        doc["messages"] = draw(st.one_of(st.just(alternating), st.lists(MESSAGE, max_size=3)))
    if not draw(st.integers(0, 8)):
        doc["extra"] = 1
    return doc


@st.composite
def text_records(draw: st.DrawFn) -> dict[str, Any]:
    """Records of text blocks only, mostly valid: the ones the fast path decides on its own."""
    text = st.sampled_from(["hi", "ok", "hi", "Bot: x", " "]).map(lambda t: {"text": t})
    doc: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
    if draw(st.booleans()):
        doc["system"] = draw(st.lists(text, min_size=1, max_size=2))
    doc["messages"] = [{"role": "user" if i % 2 == 0 else "assistant",
                        "content": draw(st.lists(text, min_size=1, max_size=2))}
                       for i in range(draw(st.integers(1, 4)))]
    return doc


@settings(max_examples=3000, deadline=None)
@given(records() | text_records(), st.sampled_from(sorted(RULES)))
def test_check_record_equals_full_check(doc: Any, rules_name: str) -> None:
    rules = RULES[rules_name]
    assert check_record(doc, rules) == _problems(doc, rules)


def test_check_record_fast_path_still_catches_each_rule() -> None:
    good = {"schemaVersion": SCHEMA_VERSION, "system": [{"text": "s"}],
            "messages": [{"role": "user", "content": [{"text": "q"}]},
                         {"role": "assistant", "content": [{"text": "a"}]}]}
    assert check_record(good, RULES["anthropic"]) == []
    multi = {**good, "messages": good["messages"] * 2}
    assert "single-turn" in check_record(multi, RULES["anthropic"])[0]
    reserved = {**good, "system": [{"text": "Bot: hi"}]}
    assert "reserved" in check_record(reserved, RULES["amazon-nova"])[0]
    assert check_record(reserved, RULES["shared"]) == []
    two_blocks = {**good, "messages": [{"role": "user", "content": [{"text": "q"}, {"text": "r"}]}]}
    assert "content block" in check_record(two_blocks, RULES["meta"])[0]
    blank = {**good, "messages": [{"role": "user", "content": [{"text": "  "}]}]}
    assert check_record(blank)[0].endswith("text block is empty or blank")


# --- shape: the text-only path == the general path ----------------------------------------------

TURN_TEXT = st.sampled_from(["hi", " ", "", "User: x", "ok", "[EOS]"])


@st.composite
def text_turns(draw: st.DrawFn) -> tuple[Turn, ...]:
    n = draw(st.integers(1, 4))
    roles = [draw(st.sampled_from(["user", "assistant"])) if draw(st.integers(0, 6)) == 0
             else ("user" if i % 2 == 0 else "assistant") for i in range(n)]
    return tuple(Turn(r, tuple(Text(draw(TURN_TEXT)) for _ in range(draw(st.integers(0, 2)))))  # type: ignore[arg-type]
                 for r in roles)


SHAPINGS = [Shaping(), Shaping(mode="prompt-only"), Shaping.for_student("anthropic.claude-3-haiku-20240307-v1:0"),
            Shaping.for_student("amazon.nova-lite-v1:0"), Shaping.for_student("amazon.nova-micro-v1:0"),
            Shaping(multi_turn="skip")]


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Unsupported as exc:
        return ("skip", exc.reason, str(exc))


@settings(max_examples=2000, deadline=None)
@given(text_turns(), st.lists(TURN_TEXT, max_size=3), st.sampled_from(range(len(SHAPINGS))))
def test_text_only_shaping_equals_general_shaping(turns: tuple[Turn, ...], system: list[str], which: int) -> None:
    opts = SHAPINGS[which]
    conv = Conversation("r", "t", "m", "Converse", "converse", Prompt(tuple(system), turns), None)
    assert _outcome(_shape_text, conv, opts, opts.rules, turns) == _outcome(_shape_any, conv, opts, opts.rules, turns)


def test_shape_takes_the_general_path_for_other_blocks() -> None:
    answer = Turn("assistant", (Reasoning("think"), Text("a")))
    conv = Conversation("r", "t", "m", "Converse", "converse", Prompt((), (Turn("user", (Text("q"),)),)),
                        Response(answer, "end_turn"))
    assert shape(conv, Shaping()).turns[-1].content == (Text("a"),)  # reasoning dropped by default
    with pytest.raises(Unsupported) as exc:
        shape(conv, Shaping(reasoning="skip"))
    assert exc.value.reason == "reasoning"
    tool = Conversation("r", "t", "m", "Converse", "converse", Prompt((), (Turn("user", (Text("q"),)),)),
                        Response(Turn("assistant", (ToolUse("t1", "f", {}),)), "tool_use"))
    with pytest.raises(Unsupported) as exc:
        shape(tool, Shaping())
    assert exc.value.reason == "tool-use"


# --- detect_format: skipping other families' predicates never changes the match -----------------

BODY_KEYS = ["anthropic_version", "messages", "prompt", "schemaVersion", "inputText", "message", "chat_history",
             "preamble", "max_gen_len", "p", "k", "num_generations"]
PROMPTS = st.sampled_from(["hi", "\n\nHuman: x", "<|start_header_id|>", "<<SYS>>", "[INST] x"])
FAMILIES = ["anthropic", "meta", "mistral", "cohere", "ai21", "amazon-nova", "amazon-titan", "unknown"]


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(st.sampled_from(BODY_KEYS), st.just(1), max_size=4), PROMPTS, st.sampled_from(FAMILIES))
def test_family_gated_detection_equals_full_table(body: dict[str, Any], prompt: str, family: str) -> None:
    if "prompt" in body:
        body["prompt"] = prompt
    if "messages" in body:
        body["messages"] = [{"role": "user", "content": "x"}]
    full = next((fmt for fmt, predicate in DETECTORS if predicate(family, body)), None)
    assert next((fmt for fmt, predicate in _detectors_for(family) if predicate(family, body)), None) == full
    if full is None:
        with pytest.raises(Unsupported):
            detect_format("InvokeModel", family, body)
    else:
        assert detect_format("InvokeModel", family, body) == full


# --- the model's __init__ keeps the dataclass contract ------------------------------------------

@pytest.mark.parametrize("cls", [c for c in vars(model).values()
                                 if isinstance(c, type) and dataclasses.is_dataclass(c)])
def test_model_init_keeps_dataclass_signature(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default
        elif f.default_factory is dataclasses.MISSING:
            assert p.default is inspect.Parameter.empty


def test_model_objects_stay_frozen_and_defaults_fresh() -> None:
    a = Conversation("r", "t", "m", "Converse", "converse", Prompt(), None)
    b = Conversation("r", "t", "m", "Converse", "converse", Prompt(), None)
    assert a == b and a.meta == {} and a.meta is not b.meta
    assert dataclasses.replace(Response(None), incomplete=True) == Response(None, None, None, None, False, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.model_id = "x"  # type: ignore[misc]
    assert re.fullmatch(r"Text\(text='x'\)", repr(Text("x")))
    assert NOVA_RESERVED  # the reserved strings the text fast paths check are the validator's own
