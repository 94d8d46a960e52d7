"""Writer: OpenAI chat fine-tuning JSONL (``{"messages": [{"role", "content"}, ...]}``).

System blocks become ``system`` messages, tool calls become ``tool_calls`` on the assistant
message and tool results become ``tool`` messages. Media (only S3 references exist) and reasoning
have no faithful OpenAI form and raise ``Unsupported`` so the record is skipped with a reason.
"""

from __future__ import annotations

import json
from typing import Any

from logtap.converters.model import Example, Reasoning, Text, ToolResult, ToolUse, Turn, Unsupported

NAME = "openai"


def _turn(turn: Turn) -> list[dict[str, Any]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for b in turn.content:
        if isinstance(b, Text):
            texts.append(b.text)
        elif isinstance(b, ToolUse):
            calls.append({"id": b.tool_use_id, "type": "function",
                          "function": {"name": b.name, "arguments": json.dumps(b.input, ensure_ascii=False)}})
        elif isinstance(b, ToolResult):
            if any(not isinstance(x, Text) for x in b.content):
                raise Unsupported("non-text-content", "tool result with media has no OpenAI form")
            parts = [x.text for x in b.content if isinstance(x, Text)]
            parts += [json.dumps(j, ensure_ascii=False) for j in b.json]
            results.append({"role": "tool", "tool_call_id": b.tool_use_id, "content": "\n".join(parts)})
        elif isinstance(b, Reasoning):
            raise Unsupported("reasoning", "reasoning has no OpenAI chat form")
        else:
            raise Unsupported("non-text-content", f"{type(b).__name__} blocks have no OpenAI chat form")
    out: list[dict[str, Any]] = list(results)
    if texts or calls:
        msg: dict[str, Any] = {"role": turn.role,
                               "content": texts[0] if len(texts) == 1 else
                               ([{"type": "text", "text": t} for t in texts] if texts else None)}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def record(example: Example) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": s} for s in example.system]
    for turn in example.turns:
        messages.extend(_turn(turn))
    return {"messages": messages}
