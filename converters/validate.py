"""Check ``bedrock-conversation-2024`` JSONL against Bedrock's rules, per student family.

Rules every student shares: one JSON object per line with only ``schemaVersion`` (=
``bedrock-conversation-2024``), optional ``system`` (list of ``{text}``) and ``messages``; roles
alternate starting with ``user``; the final turn is ``user`` (prompt) or ``assistant`` (label);
content blocks are known, non-blank, media only as ``s3Location`` references in user turns.
Single-turn families (Anthropic, Meta Llama) add: exactly one user turn, one system block, one
text block per message. Amazon Nova adds its reserved strings and media limits. A file under
100 or over 15,000 records is a warning; a file of 1 GiB or more is a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from logtap.models import model_family, normalize_model_id

SCHEMA_VERSION = "bedrock-conversation-2024"
MIN_RECORDS = 100
MAX_RECORDS = 15_000
MAX_FILE_BYTES = 1 << 30
NOVA_RESERVED = ("System:", "SYSTEM:", "User:", "USER:", "Bot:", "BOT:", "Assistant:", "ASSISTANT:",
                 "Thought:", "[EOS]", "<image>", "<video>")
MEDIA_KEYS = ("image", "document", "video")
BLOCK_KEYS = ("text", *MEDIA_KEYS, "toolUse", "toolResult", "reasoningContent")
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
VIDEO_FORMATS = frozenset({"mov", "mkv", "mp4", "webm"})


@dataclass(frozen=True)
class StudentRules:
    """What one student family accepts. ``name`` is the family (or ``"shared"``)."""

    name: str
    single_turn: bool = False
    max_system_blocks: int | None = None
    max_content_blocks: int | None = None
    allow_media: bool = True
    allow_tools: bool = True
    allow_reasoning: bool = True
    reserved: tuple[str, ...] = ()
    max_images: int | None = None


SHARED = StudentRules("shared")
_SINGLE_TURN = {"single_turn": True, "max_system_blocks": 1, "max_content_blocks": 1, "allow_media": False,
                "allow_tools": False, "allow_reasoning": False}
RULES: dict[str, StudentRules] = {
    "shared": SHARED,
    "anthropic": StudentRules("anthropic", **_SINGLE_TURN),  # type: ignore[arg-type]
    "meta": StudentRules("meta", **_SINGLE_TURN),  # type: ignore[arg-type]
    "amazon-nova": StudentRules("amazon-nova", reserved=NOVA_RESERVED, max_images=10),
    "amazon-nova-micro": StudentRules("amazon-nova-micro", reserved=NOVA_RESERVED, allow_media=False),
}


@lru_cache(maxsize=256)
def rules_for(student: str | None) -> StudentRules:
    """The rules for a student model ID in any form (``None``: the shared rules)."""
    if not student:
        return SHARED
    family = model_family(student)
    if family == "amazon-nova" and normalize_model_id(student).startswith("amazon.nova-micro"):
        return RULES["amazon-nova-micro"]
    return RULES.get(family, SHARED)


@dataclass
class Report:
    records: int = 0
    bytes: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def _check_media(key: str, value: Any, role: str, rules: StudentRules) -> Iterator[str]:
    if not rules.allow_media:
        yield f"{key} blocks are not accepted by {rules.name} students (text only)"
    if role != "user":
        yield f"{key} blocks are only allowed in user turns"
    if not isinstance(value, dict):
        yield f"{key} block is not an object"
        return
    fmt = value.get("format")
    if key == "image" and fmt not in IMAGE_FORMATS:
        yield f"image format {fmt!r} is not one of {sorted(IMAGE_FORMATS)}"
    if key == "video" and fmt not in VIDEO_FORMATS:
        yield f"video format {fmt!r} is not one of {sorted(VIDEO_FORMATS)}"
    source = value.get("source")
    loc = source.get("s3Location") if isinstance(source, dict) else None
    uri = loc.get("uri") if isinstance(loc, dict) else None
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        yield f"{key} source must be s3Location with an s3:// uri (inline bytes are not accepted)"


def _check_block(block: Any, role: str, rules: StudentRules) -> Iterator[str]:
    if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCK_KEYS:
        keys = sorted(block) if isinstance(block, dict) else type(block).__name__
        yield f"content block must have exactly one of {list(BLOCK_KEYS)}, got {keys}"
        return
    (key, value), = block.items()
    if key == "text":
        if _blank(value):
            yield "text block is empty or blank"
        for token in rules.reserved:
            if isinstance(value, str) and token in value:
                yield f"text contains {token!r}, a string reserved by {rules.name} (the job would fail)"
    elif key in MEDIA_KEYS:
        yield from _check_media(key, value, role, rules)
    elif key in ("toolUse", "toolResult"):
        if not rules.allow_tools:
            yield f"{key} blocks are not accepted by {rules.name} students"
        if not isinstance(value, dict) or not isinstance(value.get("toolUseId"), str):
            yield f"{key} block needs a toolUseId"
        owner = "assistant" if key == "toolUse" else "user"
        if role != owner:
            yield f"{key} blocks are only allowed in {owner} turns"
        if key == "toolResult" and isinstance(value, dict):
            yield from _check_tool_result(value.get("content"), role, rules)
    elif key == "reasoningContent":
        if not rules.allow_reasoning:
            yield f"reasoningContent blocks are not accepted by {rules.name} students"
        if role != "assistant":
            yield "reasoningContent is only allowed in assistant turns"


def _check_tool_result(content: Any, role: str, rules: StudentRules) -> Iterator[str]:
    """A toolResult's own content: text / media blocks checked like a turn's, plus ``{json}`` items."""
    if not isinstance(content, list):
        yield "toolResult content must be a list"
        return
    for k, item in enumerate(content):
        if isinstance(item, dict) and set(item) == {"json"}:
            continue
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in ("text", *MEDIA_KEYS):
            yield f"toolResult content[{k}] must have exactly one of text, json, image, document, video"
            continue
        yield from (f"toolResult content[{k}]: {p}" for p in _check_block(item, role, rules))


def _plain_text(item: Any, reserved: Any) -> bool:
    """A ``{"text": ...}`` block of non-blank text without a reserved string."""
    if type(item) is not dict or len(item) != 1:
        return False
    text = item.get("text")
    if type(text) is not str or not text.strip():
        return False
    for token in reserved:
        if token in text:
            return False
    return True


def _valid_text_record(obj: dict[str, Any], rules: StudentRules) -> bool:
    """True when ``obj`` is a valid record made only of ``{text}`` blocks, i.e. when the full
    check below would find no problem. False means "not proven": the full check then runs.

    This is the shape almost every exported record has; checking it in one tight pass makes the
    per-record validation of an export about three times cheaper. Every condition mirrors a rule of
    :func:`check_record` (keys, schemaVersion, non-blank text, reserved strings, role order, block
    and system limits, single-turn); anything else (media, tools, reasoning, odd types) is left
    to the full check.
    """
    for key in obj:
        if key != "schemaVersion" and key != "system" and key != "messages":
            return False
    if obj.get("schemaVersion") != SCHEMA_VERSION:
        return False
    reserved = rules.reserved
    if "system" in obj:
        system = obj["system"]
        if type(system) is not list or not system:
            return False
        if rules.max_system_blocks is not None and len(system) > rules.max_system_blocks:
            return False
        for item in system:
            if not _plain_text(item, reserved):
                return False
    messages = obj.get("messages")
    if type(messages) is not list or not messages:
        return False
    limit = rules.max_content_blocks
    expected = "user"
    users = 0
    for msg in messages:
        if type(msg) is not dict:
            return False
        for key in msg:
            if key != "role" and key != "content":
                return False
        if msg.get("role") != expected:
            return False
        if expected == "user":
            users += 1
            expected = "assistant"
        else:
            expected = "user"
        content = msg.get("content")
        if type(content) is not list or not content:
            return False
        if limit is not None and len(content) > limit:
            return False
        for block in content:
            if not _plain_text(block, reserved):
                return False
    if rules.single_turn and (users != 1 or len(messages) > 2):
        return False
    return rules.max_images is None or rules.max_images >= 0


def check_record(obj: Any, rules: StudentRules = SHARED) -> list[str]:
    """Every problem of one parsed line (empty list: the record is valid for ``rules``)."""
    if type(obj) is dict and _valid_text_record(obj, rules):
        return []
    return _problems(obj, rules)


def _problems(obj: Any, rules: StudentRules) -> list[str]:
    """:func:`check_record` without its fast path: every rule checked one by one."""
    if not isinstance(obj, dict):
        return ["line is not a JSON object"]
    problems: list[str] = []
    extra = sorted(set(obj) - {"schemaVersion", "system", "messages"})
    if extra:
        problems.append(f"unknown top-level keys {extra} (only schemaVersion, system, messages)")
    if obj.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schemaVersion must be {SCHEMA_VERSION!r}, got {obj.get('schemaVersion')!r}")
    if "system" in obj:
        system = obj["system"]
        if not isinstance(system, list) or not system:
            problems.append("system must be a non-empty list of {text} objects")
        else:
            for i, item in enumerate(system):
                if not isinstance(item, dict) or set(item) != {"text"} or _blank(item.get("text")):
                    problems.append(f"system[{i}] must be a {{text}} object with non-blank text")
                else:
                    problems.extend(f"system[{i}]: {p}" for p in _check_block(item, "system", rules)
                                    if "reserved" in p)
            if rules.max_system_blocks is not None and len(system) > rules.max_system_blocks:
                problems.append(f"{rules.name} students take at most {rules.max_system_blocks} system block")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages must be a non-empty list")
        return problems
    images = 0
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict) or set(msg) - {"role", "content"}:
            problems.append(f"{where} must be an object with only role and content")
            continue
        expected = "user" if i % 2 == 0 else "assistant"
        role = msg.get("role")
        if role != expected:
            problems.append(f"{where}: roles must alternate user/assistant starting with user; "
                            f"expected {expected!r}, got {role!r}")
        content = msg.get("content")
        if not isinstance(content, list) or not content:
            problems.append(f"{where}.content must be a non-empty list of content blocks")
            continue
        if rules.max_content_blocks is not None and len(content) > rules.max_content_blocks:
            problems.append(f"{where}: {rules.name} students take exactly {rules.max_content_blocks} content block")
        for j, block in enumerate(content):
            if isinstance(block, dict) and "image" in block:
                images += 1
            problems.extend(f"{where}.content[{j}]: {p}" for p in _check_block(block, str(role), rules))
    users = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user")
    if rules.single_turn and (users != 1 or len(messages) > 2):
        problems.append(f"{rules.name} students take single-turn records only (one user turn, then at most one "
                        f"assistant turn); this one has {len(messages)} messages")
    if rules.max_images is not None and images > rules.max_images:
        problems.append(f"{images} images exceed the limit of {rules.max_images} per record")
    return problems


def validate_lines(lines: Iterable[bytes], rules: StudentRules = SHARED) -> Report:
    """Validate JSONL lines (bytes, with or without the newline); line numbers start at 1."""
    report = Report()
    final_roles: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        report.bytes += len(raw)
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            report.problems.append((number, "empty line (every line must be one JSON record)"))
            continue
        report.records += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report.problems.append((number, f"not valid JSON: {exc}"))
            continue
        report.problems.extend((number, p) for p in check_record(obj, rules))
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
            final_roles.add(str(msgs[-1].get("role")))
    if report.bytes >= MAX_FILE_BYTES:
        report.problems.append((0, f"file is {report.bytes} bytes; Bedrock takes datasets under 1 GiB"))
    if report.records < MIN_RECORDS:
        report.warnings.append(f"{report.records} records: Bedrock recommends at least {MIN_RECORDS}")
    if report.records > MAX_RECORDS:
        report.warnings.append(f"{report.records} records: a distillation job uses at most {MAX_RECORDS}")
    if final_roles == {"user", "assistant"}:
        report.warnings.append("some records end with the user turn and some with an assistant turn "
                               "(prompt-only and prompt-response records mixed)")
    return report
