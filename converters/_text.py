"""Helpers for prompt-template (completion-style) bodies: turn lists and response text."""

from __future__ import annotations

import re
from typing import Any

from logtap.converters.model import Prompt, Response, Role, Text, Turn, Unsupported
from logtap.converters.streams import guardrail_intervened, metrics_tokens


def required_str(body: dict[str, Any], key: str) -> str:
    """``body[key]`` when it is a string; ``unsupported-shape`` (``"<key> is not a string"``) otherwise."""
    value = body.get(key)
    if not isinstance(value, str):
        raise Unsupported("unsupported-shape", f"{key} is not a string")
    return value


def first_dict(items: Any) -> dict[str, Any]:
    """``items[0]`` when ``items`` is a list whose first element is an object, else ``{}``."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        first: dict[str, Any] = items[0]
        return first
    return {}


def last_value(chunks: list[dict[str, Any]], key: str) -> Any:
    """The last truthy ``chunk[key]`` of a stream (its stop reason), or None."""
    for c in reversed(chunks):
        if c.get(key):
            return c[key]
    return None


def build_prompt(system: str, segments: list[tuple[Role, str]], fmt: str) -> Prompt:
    """A Prompt from (role, text) segments; the last segment may be an empty assistant cue.

    Raises ``assistant-prefill`` when the prompt ends with a non-empty assistant segment (the
    model continued text the caller wrote, which a conversation dataset cannot express).
    """
    if segments and segments[-1][0] == "assistant":
        if segments[-1][1].strip():
            raise Unsupported("assistant-prefill", f"{fmt} prompt ends with assistant text")
        segments = segments[:-1]
    if not segments:
        raise Unsupported("unsupported-shape", f"{fmt} prompt has no user turn")
    turns: list[Turn] = []
    for role, text in segments:
        if turns and turns[-1].role == role:
            raise Unsupported("unsupported-shape", f"{fmt} prompt has two {role} turns in a row")
        turns.append(Turn(role, (Text(text),)))
    return Prompt((system,) if system else (), tuple(turns))


def completion_text(text: str) -> str:
    """Generated text with the template's leading whitespace (``" Hello"``, ``"\\n\\nHi"``) removed."""
    return text.lstrip()


def text_reply(text: str, stop: Any, tin: int | None, tout: int | None, guard: bool,
               strip: bool = True) -> Response:
    """A Response of one assistant text block (None when the text is empty).

    ``strip`` removes a completion template's leading whitespace (:func:`completion_text`); a
    non-string ``stop`` is dropped.
    """
    if strip:
        text = completion_text(text)
    return Response(Turn("assistant", (Text(text),)) if text else None,
                    stop if isinstance(stop, str) else None, tin, tout, guard)


def stream_text_reply(chunks: list[dict[str, Any]], text: str, stop: Any, strip: bool = True) -> Response:
    """:func:`text_reply` for a reassembled stream: tokens from its invocation metrics, guardrail from
    its chunks."""
    tin, tout = metrics_tokens(chunks)
    return text_reply(text, stop, tin, tout, guardrail_intervened(chunks), strip)


def single_turn(text: str) -> Prompt:
    """A raw prompt with no chat template: one user turn, exactly as sent."""
    if not text.strip():
        raise Unsupported("unsupported-shape", "empty prompt")
    return Prompt((), (Turn("user", (Text(text),)),))


# What inst_spans() finds, as a regex (kept as the reference its test compares against):
_INST = re.compile(r"\[INST\](.*?)\[/INST\]", re.DOTALL)
_SYS = re.compile(r"^\s*<<SYS>>(.*?)<</SYS>>", re.DOTALL)


def inst_spans(prompt: str) -> list[tuple[int, int, int, int]]:
    """(start, end, inner start, inner end) of each ``[INST] ... [/INST]``, the matches of
    ``_INST.finditer(prompt)``, found with ``str.find`` (the lazy regex costs several microseconds
    per prompt): each ``[INST]`` pairs with the first ``[/INST]`` after it, and scanning goes on
    after that ``[/INST]``; an ``[INST]`` with no ``[/INST]`` after it ends the scan."""
    spans: list[tuple[int, int, int, int]] = []
    find = prompt.find
    pos = 0
    while True:
        start = find("[INST]", pos)
        if start < 0:
            return spans
        close = find("[/INST]", start + 6)
        if close < 0:
            return spans
        pos = close + 7
        spans.append((start, pos, start + 6, close))


def _strip_specials(text: str) -> str:
    return text.replace("<s>", "").replace("</s>", "").strip()


def parse_inst(prompt: str, fmt: str) -> Prompt:
    """``<s>[INST] user [/INST] answer</s><s>[INST] user [/INST]`` (Mistral, Llama 2) into turns.

    A Llama 2 ``<<SYS>>...<</SYS>>`` block at the start of the first instruction is the system prompt.
    """
    spans = inst_spans(prompt)
    if not spans:
        return single_turn(prompt)
    if _strip_specials(prompt[: spans[0][0]]):
        raise Unsupported("unsupported-shape", f"{fmt} prompt has text before the first [INST]")
    system = ""
    segments: list[tuple[Role, str]] = []
    last = len(spans) - 1
    for i, (_, end, inner_start, inner_end) in enumerate(spans):
        user = prompt[inner_start:inner_end]
        if i == 0 and "<<SYS>>" in user:
            sys_match = _SYS.match(user)
            if sys_match:
                system = sys_match.group(1).strip()
                user = user[sys_match.end():]
        segments.append(("user", user.strip()))
        answer = _strip_specials(prompt[end: spans[i + 1][0] if i < last else len(prompt)])
        if i < last or answer:
            segments.append(("assistant", answer))
    return build_prompt(system, segments, fmt)
