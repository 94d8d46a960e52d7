"""The converter registry: every body format has its readers, detection is table-driven."""

from __future__ import annotations

import pytest

from logtap.converters import normalize as _normalize  # noqa: F401  (registers every converter)
from logtap.converters.model import Unsupported
from logtap.converters.registry import DETECTORS, detect_format, lookup, register, registered


def test_every_format_reads_request_response_and_stream() -> None:
    kinds: dict[str, set[str]] = {}
    for kind, fmt in registered():
        kinds.setdefault(fmt, set()).add(kind)
    assert set(kinds) == {fmt for fmt, _ in DETECTORS} | {"converse"}
    no_stream = {"ai21-jurassic"}  # Jurassic-2 has no streaming API
    for fmt, have in kinds.items():
        assert have == ({"request", "response"} if fmt in no_stream else {"request", "response", "stream"}), fmt


@pytest.mark.parametrize(("operation", "model", "body", "fmt"), [
    ("ConverseStream", "meta.llama3-1-8b-instruct-v1:0", {"messages": []}, "converse"),
    ("InvokeModel", "us.anthropic.claude-3-5-haiku-20241022-v1:0", {"messages": [], "max_tokens": 5},
     "anthropic-messages"),
    ("InvokeModel", "anthropic.claude-v2", {"prompt": "\n\nHuman: x\n\nAssistant:"}, "anthropic-text"),
    ("InvokeModel", "meta.llama3-8b-instruct-v1:0", {"prompt": "[INST] x [/INST]"}, "llama"),
    ("InvokeModel", "mistral.mistral-large-2402-v1:0", {"prompt": "[INST] x [/INST]"}, "mistral"),
    ("InvokeModel", "mistral.mistral-large-2407-v1:0", {"messages": [{"role": "user", "content": "x"}]},
     "mistral-chat"),
    ("InvokeModel", "cohere.command-r-plus-v1:0", {"message": "x"}, "cohere-chat"),
    ("InvokeModel", "cohere.command-text-v14", {"prompt": "x"}, "cohere-command"),
    ("InvokeModel", "ai21.j2-mid-v1", {"prompt": "x"}, "ai21-jurassic"),
    # application inference profiles carry no model name: the body decides
    ("InvokeModel", "arn:aws:bedrock:us-east-1:1:application-inference-profile/a", {"inputText": "x"}, "titan"),
    ("InvokeModel", "arn:aws:bedrock:us-east-1:1:application-inference-profile/a",
     {"prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>x"}, "llama"),
    ("InvokeModel", "arn:aws:bedrock:us-east-1:1:application-inference-profile/a",
     {"schemaVersion": "messages-v1", "messages": []}, "nova"),
    ("InvokeModel", "arn:aws:bedrock:us-east-1:1:application-inference-profile/a",
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "anthropic-messages"),
    ("InvokeModel", "arn:aws:bedrock:us-east-1:1:application-inference-profile/a",
     {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "nova"),
])
def test_detect_format(operation: str, model: str, body: dict[str, object], fmt: str) -> None:
    from logtap.models import model_family

    assert detect_format(operation, model_family(model), body) == fmt


def test_unknown_body_and_missing_converter_are_named() -> None:
    with pytest.raises(Unsupported) as exc:
        detect_format("InvokeModel", "unknown", {"taskType": "TEXT_IMAGE"})
    assert exc.value.reason == "unsupported-shape" and "taskType" in str(exc.value)
    with pytest.raises(Unsupported) as exc:
        lookup("stream", "ai21-jurassic")
    assert exc.value.reason == "unsupported-shape"


def test_registering_twice_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        register("request", "converse")(lambda body: None)
