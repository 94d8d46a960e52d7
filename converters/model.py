"""The normalized conversation every logged request/response shape is turned into.

One immutable model for all providers: a system prompt, the prompt turns, the logged final
response, its stop reason and token counts. Converters build it (``logtap.converters.registry``),
writers read it (``bedrock_conversation``, ``openai_chat``). Media is kept only as an S3
reference; inline bytes are represented by ``uri=None`` so the record can be skipped with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    format: str
    uri: str | None  # None: the bytes were inline (not kept)
    bucket_owner: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    format: str
    name: str
    uri: str | None
    bucket_owner: str | None = None


@dataclass(frozen=True, slots=True)
class Video:
    format: str
    uri: str | None
    bucket_owner: str | None = None


@dataclass(frozen=True, slots=True)
class ToolUse:
    tool_use_id: str
    name: str
    input: Any


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: tuple[Block, ...]
    status: str | None = None
    json: tuple[Any, ...] = ()  # {"json": ...} items of the result, kept in order after text


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str
    signature: str | None = None
    redacted: bool = False


Block: TypeAlias = "Text | Image | Document | Video | ToolUse | ToolResult | Reasoning"
MEDIA = (Image, Document, Video)


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    content: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the model was asked: system text blocks and the turns, ending with a user turn."""

    system: tuple[str, ...] = ()
    turns: tuple[Turn, ...] = ()


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


@dataclass(frozen=True, slots=True)
class Example:
    """One training record, ready for a writer: system text and alternating turns."""

    system: tuple[str, ...]
    turns: tuple[Turn, ...]
