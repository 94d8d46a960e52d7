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

from logtap.converters._text import build_prompt, completion_text, single_turn
from logtap.converters.model import Prompt, Response, Role, Text, Turn, Unsupported
from logtap.converters.registry import register
from logtap.converters.streams import as_int, chunk_list, guardrail_intervened, metrics_tokens

_CHAT = re.compile(r"(?:^|\n)(User|Bot):", re.MULTILINE)
_ROLES: dict[str, Role] = {"User": "user", "Bot": "assistant"}


@register("request", "titan")
def titan_request(body: dict[str, Any]) -> Prompt:
    text = body.get("inputText")
    if not isinstance(text, str):
        raise Unsupported("unsupported-shape", "inputText is not a string")
    pieces = _CHAT.split(text)
    if len(pieces) >= 3 and not pieces[0].strip() and pieces[1] == "User":
        segments = [(_ROLES[pieces[i]], pieces[i + 1].strip()) for i in range(1, len(pieces), 2)]
        return build_prompt("", segments, "Titan chat")
    return single_turn(text)


def _response(text: str, stop: Any, tin: int | None, tout: int | None, guard: bool) -> Response:
    text = completion_text(text)
    return Response(Turn("assistant", (Text(text),)) if text else None,
                    stop if isinstance(stop, str) else None, tin, tout,
                    guard)


@register("response", "titan")
def titan_response(body: Any) -> Response:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise Unsupported("unsupported-shape", "Titan output without results")
    first = results[0] if results and isinstance(results[0], dict) else {}
    return _response(str(first.get("outputText") or ""), first.get("completionReason"),
                     as_int(body.get("inputTextTokenCount")), as_int(first.get("tokenCount")),
                     guardrail_intervened(body))


@register("stream", "titan")
def titan_stream(body: Any) -> Response:
    chunks = chunk_list(body)
    text = "".join(str(c.get("outputText") or "") for c in chunks)
    stop = next((c["completionReason"] for c in reversed(chunks) if c.get("completionReason")), None)
    tin, tout = metrics_tokens(chunks)
    return _response(text, stop, tin, tout, guardrail_intervened(chunks))
