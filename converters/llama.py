"""Meta Llama InvokeModel bodies: ``prompt`` in the Llama 3 header template or Llama 2 ``[INST]``.

Llama 3: ``<|start_header_id|>ROLE<|end_header_id|>\\n\\nTEXT<|eot_id|>`` segments (system, user,
assistant); a prompt ending with an empty assistant header is the usual generation cue. Llama 2:
``<s>[INST] <<SYS>>...<</SYS>> user [/INST] answer </s>``. A prompt with no template is one user
turn. Response: ``{"generation", "stop_reason", "prompt_token_count", "generation_token_count"}``;
streamed as an array of chunks with ``generation`` fragments.
"""

from __future__ import annotations

import re
from typing import Any

from logtap.converters._text import (
    build_prompt,
    last_value,
    parse_inst,
    required_str,
    single_turn,
    stream_text_reply,
    text_reply,
)
from logtap.converters.model import Prompt, Response, Role, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened

# The segment grammar _headers() scans for (kept as the reference its test compares against):
_HEADER = re.compile(r"<\|start_header_id\|>(.*?)<\|end_header_id\|>(.*?)(?=<\|start_header_id\|>|$)", re.DOTALL)
_SPECIALS = re.compile(r"<\|(?:begin_of_text|eot_id|end_of_text|eom_id)\|>")


_START = "<|start_header_id|>"
_END = "<|end_header_id|>"


def _headers(prompt: str) -> list[tuple[str, str]]:
    """(role, raw text) of each header segment: the matches of ``_HEADER.finditer(prompt)``, found
    with ``str.find`` (the lazy regex with its lookahead costs ~10 us per prompt). A segment's role
    runs to the first end header; its text runs to the next start header, or to the end of the
    prompt (before a final newline, where ``$`` matches first); a start header with no end header
    after it ends the scan."""
    out: list[tuple[str, str]] = []
    find = prompt.find
    size = len(prompt)
    pos = 0
    while True:
        start = find(_START, pos)
        if start < 0:
            return out
        role_start = start + len(_START)
        end = find(_END, role_start)
        if end < 0:
            return out
        text_start = end + len(_END)
        nxt = find(_START, text_start)
        if nxt < 0:
            nxt = size - 1 if size > text_start and prompt[-1] == "\n" else size
        out.append((prompt[role_start:end], prompt[text_start:nxt]))
        pos = nxt


def _no_specials(text: str) -> str:
    return _SPECIALS.sub("", text) if "<|" in text else text


@register("request", "llama")
def llama_request(body: dict[str, Any]) -> Prompt:
    prompt = required_str(body, "prompt")
    if "<|start_header_id|>" not in prompt:
        return parse_inst(prompt, "Llama 2") if "[INST]" in prompt else single_turn(prompt)
    first = prompt.index("<|start_header_id|>")
    if _no_specials(prompt[:first]).strip():
        raise Unsupported("unsupported-shape", "Llama 3 prompt has text before the first header")
    system_parts: list[str] = []
    segments: list[tuple[Role, str]] = []
    for raw_role, raw_text in _headers(prompt):
        role, text = raw_role.strip(), _no_specials(raw_text).strip()
        if role == "system":
            if segments:
                raise Unsupported("unsupported-shape", "Llama 3 system header after a turn")
            system_parts.append(text)
        elif role in ("user", "assistant"):
            segments.append((role, text))  # type: ignore[arg-type]
        elif role in ("ipython", "tool"):
            raise Unsupported("tool-use", f"Llama 3 {role} turn")
        else:
            raise Unsupported("unsupported-shape", f"Llama 3 role {role!r}")
    return build_prompt("\n\n".join(system_parts), segments, "Llama 3")


@register("response", "llama")
def llama_response(body: Any) -> Response:
    if not isinstance(body, dict) or not isinstance(body.get("generation", ""), str):
        raise Unsupported("unsupported-shape", "Llama output")
    return text_reply(body.get("generation", ""), body.get("stop_reason"),
                      as_int(body.get("prompt_token_count")), as_int(body.get("generation_token_count")),
                      guardrail_intervened(body))


@register("stream", "llama")
def llama_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join([c.get("generation") or "" for c in chunks])
    return stream_text_reply(chunks, text, last_value(chunks, "stop_reason"))
