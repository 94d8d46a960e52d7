"""The normalized conversation every logged request/response shape is turned into.

One immutable model for all providers: a system prompt, the prompt turns, the logged final
response, its stop reason and token counts. Converters build it (``logtap.converters.registry``),
writers read it (``bedrock_conversation``, ``openai_chat``). Media is kept only as an S3
reference; inline bytes are represented by ``uri=None`` so the record can be skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, TypeAlias, TypeVar

_C = TypeVar("_C", bound=type)
_FACTORY = object()  # marks a default_factory argument left out


def _fast_init(cls: _C) -> _C:
    """Give a frozen slots dataclass an ``__init__`` that stores through the slot descriptors.

    The generated ``__init__`` of a frozen dataclass calls ``object.__setattr__`` per field, which
    costs as much as the rest of building a record's model; this one has the same signature
    (names, order, defaults, default factories) and stores the same values, about 40 % faster.
    """
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    params: list[str] = []
    lines: list[str] = []
    for f in fields(cls):
        name = f.name
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        if f.default is not MISSING:
            namespace[f"_default_{name}"] = f.default
            params.append(f"{name}=_default_{name}")
        elif f.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            params.append(f"{name}=_FACTORY")
            lines.append(f"if {name} is _FACTORY: {name} = _factory_{name}()")
        else:
            params.append(name)
        lines.append(f"_set_{name}(self, {name})")
    source = f"def __init__(self, {', '.join(params)}) -> None:\n    " + "\n    ".join(lines)
    exec(source, namespace)  # the same technique dataclasses itself uses to build __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010  (mypy rejects assigning __init__ on a type variable)
    return cls

Role = Literal["user", "assistant"]


@_fast_init
@dataclass(frozen=True, slots=True)
class Text:
    text: str


@_fast_init
@dataclass(frozen=True, slots=True)
class Image:
    format: str
    uri: str | None  # None: the bytes were inline (not kept)
    bucket_owner: str | None = None


@_fast_init
@dataclass(frozen=True, slots=True)
class Document:
    format: str
    name: str
    uri: str | None
    bucket_owner: str | None = None


@_fast_init
@dataclass(frozen=True, slots=True)
class Video:
    format: str
    uri: str | None
    bucket_owner: str | None = None


@_fast_init
@dataclass(frozen=True, slots=True)
class ToolUse:
    tool_use_id: str
    name: str
    input: Any


@_fast_init
@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: tuple[Block, ...]
    status: str | None = None
    json: tuple[Any, ...] = ()  # {"json": ...} items of the result, kept in order after text


@_fast_init
@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str
    signature: str | None = None
    redacted: bool = False


Block: TypeAlias = "Text | Image | Document | Video | ToolUse | ToolResult | Reasoning"
MEDIA = (Image, Document, Video)


@_fast_init
@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    content: tuple[Block, ...]


@_fast_init
@dataclass(frozen=True, slots=True)
class Prompt:
    """What the model was asked: system text blocks and the turns, ending with a user turn."""

    system: tuple[str, ...] = ()
    turns: tuple[Turn, ...] = ()


@_fast_init
@dataclass(frozen=True, slots=True)
class Response:
    """What the model answered (``message`` is None when nothing was generated).

    ``incomplete``: a logged stream that ends without any stop reason (cut off before its final
    chunk), so the reassembled text may be only part of the answer.
    """

    message: Turn | None
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    guardrail_intervened: bool = False
    incomplete: bool = False


@_fast_init
@dataclass(frozen=True, slots=True)
class Conversation:
    """One invocation, normalized. ``body_format`` names the converter that read it."""

    request_id: str
    timestamp: str
    model_id: str
    operation: str
    body_format: str
    prompt: Prompt
    response: Response | None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class Unsupported(Exception):
    """A body a converter cannot read faithfully. ``reason`` is a skip-reason name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@_fast_init
@dataclass(frozen=True, slots=True)
class Example:
    """One training record, ready for a writer: system text and alternating turns."""

    system: tuple[str, ...]
    turns: tuple[Turn, ...]


def blocks_of(raw: list[Any], block: Callable[[Any], Block | None], text_type: str | None) -> tuple[Block, ...]:
    """``block(item)`` of every item, the common plain text block read inline: ``{"text": ...}`` alone
    (``text_type`` None) or with ``"type": text_type``."""
    out: list[Block] = []
    for item in raw:
        if type(item) is dict and (item.get("type") == text_type if text_type else len(item) == 1):
            text = item.get("text")
            if type(text) is str:
                out.append(Text(text))
                continue
        b = block(item)
        if b is not None:
            out.append(b)
    return tuple(out)
