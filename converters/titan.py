"""Amazon Titan Text InvokeModel bodies.

Request ``{"inputText", "textGenerationConfig"}``; an ``inputText`` in Titan's documented chat
convention (``User: ...\\nBot: ...\\nUser: ...\\nBot:``) is parsed back into turns, anything else
is one user turn. Response ``{"inputTextTokenCount", "results": [{"tokenCount", "outputText",
"completionReason"}]}``; streamed chunks ``{"outputText", "completionReason", ...}``. Logs say
``FINISH`` where the docs say ``FINISHED``; both are accepted.
"""

from __future__ import annotations

import re
from typing import Any

from logtap.converters._text import (
    build_prompt,
    first_dict,
    last_value,
    required_str,
    single_turn,
    stream_text_reply,
    text_reply,
)
from logtap.converters.model import Prompt, Response, Role, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened

_CHAT = re.compile(r"(?:^|\n)(User|Bot):", re.MULTILINE)
_ROLES: dict[str, Role] = {"User": "user", "Bot": "assistant"}


@register("request", "titan")
def titan_request(body: dict[str, Any]) -> Prompt:
    text = required_str(body, "inputText")
    if "User:" not in text and "Bot:" not in text:  # _CHAT cannot match: one user turn
        return single_turn(text)
    pieces = _CHAT.split(text)
    if len(pieces) >= 3 and not pieces[0].strip() and pieces[1] == "User":
        segments = [(_ROLES[pieces[i]], pieces[i + 1].strip()) for i in range(1, len(pieces), 2)]
        return build_prompt("", segments, "Titan chat")
    return single_turn(text)


@register("response", "titan")
def titan_response(body: Any) -> Response:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise Unsupported("unsupported-shape", "Titan output without results")
    first = first_dict(results)
    return text_reply(str(first.get("outputText") or ""), first.get("completionReason"),
                      as_int(body.get("inputTextTokenCount")), as_int(first.get("tokenCount")),
                      guardrail_intervened(body))


@register("stream", "titan")
def titan_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join(str(c.get("outputText") or "") for c in chunks)
    return stream_text_reply(chunks, text, last_value(chunks, "completionReason"))
