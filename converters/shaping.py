"""From a normalized ``Conversation`` to one training ``Example``, or a named skip reason.

``Shaping`` holds the mode and the per-student choices (multi-turn, tool use, media, reasoning,
truncated labels); ``Shaping.for_student`` gives the documented defaults for a student family.
``shape`` applies them in a fixed order, so each skipped record gets exactly one reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any, Literal

from logtap.converters.model import (
    MEDIA,
    Block,
    Conversation,
    Document,
    Example,
    Image,
    Reasoning,
    Text,
    ToolResult,
    ToolUse,
    Turn,
    Unsupported,
    Video,
)
from logtap.converters.validate import StudentRules, rules_for
from logtap.models import model_matches

Mode = Literal["prompt-only", "prompt-response"]
MultiTurn = Literal["keep", "skip"]
Keep = Literal["keep", "skip"]
ReasoningPolicy = Literal["drop", "skip", "keep"]

#: Stop reasons (any provider's spelling, lower-cased) -> skip reason.
STOP_REASON_SKIPS: dict[str, str] = {
    "guardrail_intervened": "guardrail-intervened",
    "content_filtered": "content-filtered",
    "content_filter": "content-filtered",
    "error_toxic": "content-filtered",
    "malformed_model_output": "malformed-output",
    "malformed_tool_use": "malformed-output",
    "error": "malformed-output",
    "error_limit": "malformed-output",
    "refusal": "content-filtered",  # Anthropic Messages: the model's safety classifier stopped it
}
#: Stop reasons meaning the answer was cut off (skipped in prompt-response unless keep_truncated).
TRUNCATED = frozenset({"max_tokens", "length", "model_context_window_exceeded", "max_tokens_reached"})

#: Every skip reason, in the order shaping checks them (for docs and reports).
SKIP_REASONS: tuple[str, ...] = (
    "unsupported-operation", "unsupported-shape", "body-unavailable", "error", "no-response",
    "guardrail-intervened", "content-filtered", "malformed-output", "teacher-mismatch", "empty-response",
    "truncated", "incomplete-stream", "assistant-prefill", "role-order", "inline-media", "non-text-content", "tool-use",
    "reasoning", "multi-turn", "empty-content", "nova-reserved-string", "multi-block-system",
    "multi-block-content", "fails-validation", "duplicate", "over-max-records", "over-max-size",
)


@dataclass(frozen=True)
class Shaping:
    mode: Mode = "prompt-response"
    teacher: str | None = None
    student: str | None = None
    multi_turn: MultiTurn = "keep"
    tool_use: Keep = "skip"
    media: Keep = "skip"
    reasoning: ReasoningPolicy = "drop"
    keep_truncated: bool = False

    @cached_property
    def rules(self) -> StudentRules:  # cached per Shaping (frozen; not a field, so eq/hash/replace ignore it)
        return rules_for(self.student)

    @classmethod
    def for_student(cls, student: str | None, **overrides: object) -> Shaping:
        """Defaults for ``student``'s family, then explicit ``overrides`` (None values ignored)."""
        rules = rules_for(student)
        base = cls(student=student, multi_turn="skip" if rules.single_turn else "keep")
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **given)  # type: ignore[arg-type]


def _skip(reason: str, detail: str = "") -> Unsupported:
    return Unsupported(reason, detail)


def _filter_reasoning(turn: Turn, policy: ReasoningPolicy) -> Turn:
    if not any(isinstance(b, Reasoning) for b in turn.content):
        return turn
    if policy == "skip" or (policy == "keep" and any(isinstance(b, Reasoning) and b.redacted for b in turn.content)):
        raise _skip("reasoning", "record contains reasoning content")
    if policy == "drop":
        return Turn(turn.role, tuple(b for b in turn.content if not isinstance(b, Reasoning)))
    return turn


def _walk(blocks: tuple[Block, ...]) -> list[Block]:
    out: list[Block] = []
    for b in blocks:
        out.append(b)
        if isinstance(b, ToolResult):
            out.extend(_walk(b.content))
    return out


@lru_cache(maxsize=1024)
def _teacher_matches(model_id: str, teacher: str) -> bool:
    return model_matches(model_id, teacher)


def _all_text(blocks: Any) -> bool:
    for b in blocks:
        if type(b) is not Text:
            return False
    return True


def shape(conv: Conversation, opts: Shaping) -> Example:
    """The training example for ``conv`` under ``opts``; raises ``Unsupported(reason)`` to skip it."""
    rules = opts.rules
    resp = conv.response
    if resp is None:
        raise _skip(conv.meta.get("no_response", "no-response"))
    if resp.guardrail_intervened:
        raise _skip("guardrail-intervened")
    stop = (resp.stop_reason or "").lower()
    if stop in STOP_REASON_SKIPS:
        raise _skip(STOP_REASON_SKIPS[stop], f"stop reason {resp.stop_reason}")
    labelled = opts.mode == "prompt-response"
    if labelled and opts.teacher and not _teacher_matches(conv.model_id, opts.teacher):
        raise _skip("teacher-mismatch")
    answer = resp.message
    if answer is None or not _has_answer(answer.content):
        raise _skip("empty-response")
    if labelled and stop in TRUNCATED and not opts.keep_truncated:
        raise _skip("truncated", f"stop reason {resp.stop_reason}")
    if labelled and resp.incomplete:
        raise _skip("incomplete-stream", "the logged stream has no stop reason (cut off)")
    turns = conv.prompt.turns
    if not turns or turns[-1].role != "user":
        raise _skip("assistant-prefill")
    expected = "user"
    text_only = True
    for t in turns:
        if t.role != expected:
            raise _skip("role-order", "roles do not alternate starting with user")
        expected = "assistant" if expected == "user" else "user"
        text_only = text_only and _all_text(t.content)
    if labelled:
        turns = (*turns, answer)
        text_only = text_only and _all_text(answer.content)
    if text_only:
        return _shape_text(conv, opts, rules, turns)
    return _shape_any(conv, opts, rules, turns)


def _has_answer(content: tuple[Block, ...]) -> bool:
    """Some block of the answer is non-blank text or a tool call."""
    for b in content:
        if type(b) is Text:
            if b.text.strip():
                return True
        elif isinstance(b, ToolUse) or (isinstance(b, Text) and b.text.strip()):
            return True
    return False


def _shape_text(conv: Conversation, opts: Shaping, rules: StudentRules, turns: tuple[Turn, ...]) -> Example:
    """The rest of :func:`shape` when every block is exactly ``Text``: no media, tool or reasoning
    checks apply and nothing is filtered, so only the turn/text checks remain (same order, same
    reasons as :func:`_shape_any`)."""
    users = 0
    for t in turns:
        if t.role == "user":
            users += 1
    if users > 1 and (opts.multi_turn == "skip" or rules.single_turn):
        raise _skip("multi-turn", f"{users} user turns")
    for t in turns:
        if not t.content:
            raise _skip("empty-content", "a turn has no content or blank text")
        for b in t.content:
            if not b.text.strip():  # type: ignore[union-attr]  # every block is Text here
                raise _skip("empty-content", "a turn has no content or blank text")
    system = tuple(s for s in conv.prompt.system if s.strip()) if conv.prompt.system else ()
    reserved = rules.reserved
    if reserved:
        for text in system:
            for tok in reserved:
                if tok in text:
                    raise _skip("nova-reserved-string")
        for t in turns:
            for b in t.content:
                for tok in reserved:
                    if tok in b.text:  # type: ignore[union-attr]
                        raise _skip("nova-reserved-string")
    if rules.max_system_blocks is not None and len(system) > rules.max_system_blocks:
        raise _skip("multi-block-system", f"{len(system)} system blocks")
    limit = rules.max_content_blocks
    if limit is not None:
        for t in turns:
            if len(t.content) > limit:
                raise _skip("multi-block-content")
    return Example(system, turns)


def _shape_any(conv: Conversation, opts: Shaping, rules: StudentRules, turns: tuple[Turn, ...]) -> Example:
    """The rest of :func:`shape` for turns holding media, tool, reasoning or other blocks."""
    all_blocks = [b for t in turns for b in _walk(t.content)]
    if any(isinstance(b, MEDIA) and b.uri is None for b in all_blocks if isinstance(b, (Image, Document, Video))):
        raise _skip("inline-media", "image/document bytes were inline in the log")
    if any(isinstance(b, MEDIA) for b in all_blocks) and (opts.media == "skip" or not rules.allow_media):
        raise _skip("non-text-content", "image/document/video content")
    if any(isinstance(b, (ToolUse, ToolResult)) for b in all_blocks) and (
        opts.tool_use == "skip" or not rules.allow_tools
    ):
        raise _skip("tool-use")
    policy: ReasoningPolicy = opts.reasoning if rules.allow_reasoning or opts.reasoning != "keep" else "drop"
    turns = tuple(_filter_reasoning(t, policy) for t in turns)
    users = sum(1 for t in turns if t.role == "user")
    if users > 1 and (opts.multi_turn == "skip" or rules.single_turn):
        raise _skip("multi-turn", f"{users} user turns")
    if any(not t.content for t in turns) or any(isinstance(b, Text) and not b.text.strip()
                                                 for t in turns for b in t.content):
        raise _skip("empty-content", "a turn has no content or blank text")
    system = tuple(s for s in conv.prompt.system if s.strip())
    if rules.reserved:
        texts = [*system, *(b.text for t in turns for b in _walk(t.content) if isinstance(b, Text))]
        if any(tok in text for text in texts for tok in rules.reserved):
            raise _skip("nova-reserved-string")
    if rules.max_system_blocks is not None and len(system) > rules.max_system_blocks:
        raise _skip("multi-block-system", f"{len(system)} system blocks")
    if rules.max_content_blocks is not None and any(len(t.content) > rules.max_content_blocks for t in turns):
        raise _skip("multi-block-content")
    return Example(system, turns)
