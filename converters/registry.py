"""Which converter reads which logged body: a registry keyed by (kind, body format).

``kind`` is ``"request"`` (the logged ``inputBodyJson``), ``"response"`` (an ``outputBodyJson``
object) or ``"stream"`` (an ``outputBodyJson`` array of InvokeModelWithResponseStream chunks).
Converter modules register themselves with ``@register(kind, fmt)``.

The body format comes from the operation (Converse/ConverseStream bodies are always ``converse``)
and otherwise from an ordered table of predicates over (model family, request body): the family
from ``logtap.models.model_family`` decides when it is known, and the body itself (``anthropic_version``,
``messages``, ``prompt``, ``inputText``, ...) decides when it is not (application inference
profiles, custom models).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, TypeVar

from logtap.converters.model import Prompt, Response, Unsupported

Kind = Literal["request", "response", "stream"]
RequestParser = Callable[[dict[str, Any]], Prompt]
ResponseParser = Callable[[Any], Response]
F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[tuple[str, str], Callable[..., Any]] = {}

#: Operations whose bodies use the Converse shape whatever the model.
CONVERSE_OPERATIONS = frozenset({"Converse", "ConverseStream"})


def register(kind: Kind, fmt: str) -> Callable[[F], F]:
    """Decorator: ``fn`` reads bodies of ``kind`` in format ``fmt``."""

    def decorate(fn: F) -> F:
        key = (kind, fmt)
        if key in _REGISTRY:
            raise RuntimeError(f"converter for {key} registered twice")
        _REGISTRY[key] = fn
        return fn

    return decorate


def lookup(kind: Kind, fmt: str) -> Callable[..., Any]:
    try:
        return _REGISTRY[(kind, fmt)]
    except KeyError:
        raise Unsupported("unsupported-shape", f"no {kind} converter for body format {fmt!r}") from None


def registered() -> list[tuple[str, str]]:
    """Every (kind, format) with a converter, for docs and tests."""
    return sorted(_REGISTRY)


def _prompt(body: dict[str, Any]) -> str:
    value = body.get("prompt")
    return value if isinstance(value, str) else ""


def _messages_openai_like(body: dict[str, Any]) -> bool:
    msgs = body.get("messages")
    return isinstance(msgs, list) and any(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs)


def _messages_anthropic_like(body: dict[str, Any]) -> bool:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return False
    for m in msgs:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and "type" in b for b in content):
            return True
    return False


Predicate = Callable[[str, dict[str, Any]], bool]


class FamilyOnly:
    """A detector predicate that can only hold for one model family: ``fam == family and test(body)``.

    ``detect_format`` skips it outright for every other family (see ``_detectors_for``), which
    halves the predicates tried for a typical InvokeModel body without changing which one matches
    first.
    """

    __slots__ = ("family", "test")

    def __init__(self, family: str, test: Callable[[dict[str, Any]], bool]) -> None:
        self.family = family
        self.test = test

    def __call__(self, fam: str, body: dict[str, Any]) -> bool:
        return fam == self.family and self.test(body)


#: Ordered (format, predicate(family, body)) table: the first match wins.
DETECTORS: tuple[tuple[str, Predicate], ...] = (
    ("anthropic-messages", lambda fam, b: "anthropic_version" in b and "messages" in b),
    ("anthropic-text", lambda fam, b: "\n\nHuman:" in _prompt(b) or (fam == "anthropic" and "prompt" in b)),
    ("anthropic-messages", FamilyOnly("anthropic", lambda b: "messages" in b)),
    ("nova", lambda fam, b: b.get("schemaVersion") == "messages-v1" or (fam == "amazon-nova" and "messages" in b)),
    ("titan", lambda fam, b: "inputText" in b),
    ("cohere-chat", lambda fam, b: "message" in b and (fam == "cohere" or "chat_history" in b or "preamble" in b)),
    ("cohere-command", FamilyOnly("cohere", lambda b: "prompt" in b)),
    ("ai21-jamba", FamilyOnly("ai21", lambda b: "messages" in b)),
    ("ai21-jurassic", FamilyOnly("ai21", lambda b: "prompt" in b)),
    ("mistral-chat", FamilyOnly("mistral", lambda b: "messages" in b)),
    ("llama", FamilyOnly("meta", lambda b: "prompt" in b)),
    ("mistral", FamilyOnly("mistral", lambda b: "prompt" in b)),
    # Unknown family (application inference profile, custom model): the body decides.
    ("llama", lambda fam, b: "<|start_header_id|>" in _prompt(b) or "<<SYS>>" in _prompt(b)),
    ("mistral", lambda fam, b: "[INST]" in _prompt(b)),
    ("anthropic-messages", lambda fam, b: _messages_anthropic_like(b)),
    ("ai21-jamba", lambda fam, b: _messages_openai_like(b)),
    ("nova", lambda fam, b: isinstance(b.get("messages"), list)),
    ("llama", lambda fam, b: "max_gen_len" in b and "prompt" in b),
    ("cohere-command", lambda fam, b: "prompt" in b and ("p" in b or "k" in b or "num_generations" in b)),
)


@lru_cache(maxsize=256)
def _detectors_for(family: str) -> tuple[tuple[str, Predicate], ...]:
    """``DETECTORS`` without the ``FamilyOnly`` predicates of other families (which cannot match)."""
    return tuple((fmt, p) for fmt, p in DETECTORS if not (isinstance(p, FamilyOnly) and p.family != family))


def detect_format(operation: str, family: str, body: dict[str, Any]) -> str:
    """The body format of a logged request, or raise ``Unsupported("unsupported-shape")``."""
    if operation in CONVERSE_OPERATIONS:
        return "converse"
    for fmt, predicate in _detectors_for(family):
        if predicate(family, body):
            return fmt
    keys = ", ".join(sorted(body)[:8])
    raise Unsupported("unsupported-shape", f"unrecognized {family} request body (keys: {keys})")
