"""Bedrock's limits for ``requestMetadata`` tags, read from the client's own service model.

The Converse ``requestMetadata`` member is a map shape whose metadata carries the limits
(``min``/``max`` entries; key and value ``min``/``max`` length and ``pattern``). Where the model
lacks a limit, the documented constants below are used instead: 1-16 entries, key 1-256 and
value 0-256 characters from ``[a-zA-Z0-9\\s:_@$#=/+,-.]``, and at most 8,500 characters for the
JSON that InvokeModel / InvokeModelWithResponseStream send in the
``X-Amzn-Bedrock-Request-Metadata`` header.

Patterns are applied to the whole key or value (``re.fullmatch``) with ASCII semantics, as the
service's Java validators do. Problems never include a tag's value: values may be sensitive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_RULES",
    "FILTER_UNSAFE_CHARS",
    "Problem",
    "TagRules",
    "check_tag",
    "filter_unsafe",
    "json_too_long",
    "rules_from_service_model",
    "too_many",
    "validate",
]

DEFAULT_MIN_ENTRIES = 1
DEFAULT_MAX_ENTRIES = 16
DEFAULT_KEY_MIN, DEFAULT_KEY_MAX = 1, 256
DEFAULT_VALUE_MIN, DEFAULT_VALUE_MAX = 0, 256
DEFAULT_CHARSET = r"[a-zA-Z0-9\s:_@$#=/+,-.]"
DEFAULT_JSON_MAX = 8500
# Bedrock's distillation filters (RequestMetadataBaseFilters) allow neither of these.
FILTER_UNSAFE_CHARS = frozenset("#,")

# Problem codes. ``dropped`` problems remove the tag; ``FILTER_UNSAFE`` only warns.
NOT_STR = "not-str"
KEY_LENGTH = "key-length"
VALUE_LENGTH = "value-length"
KEY_CHARS = "key-chars"
VALUE_CHARS = "value-chars"
TOO_MANY = "too-many"
JSON_TOO_LONG = "json-too-long"
FILTER_UNSAFE = "filter-unsafe"


class Problem(NamedTuple):
    """One tag's problem. ``message`` names the rule, never the value."""

    key: str
    code: str
    message: str
    dropped: bool


class TagRules:
    """Compiled limits for one client's ``requestMetadata`` (immutable by convention).

    ``source`` says where the limits came from: ``"service model"`` or ``"defaults"``.
    """

    __slots__ = ("json_max", "key_max", "key_min", "key_pattern", "key_re", "max_entries", "min_entries",
                 "source", "value_max", "value_min", "value_pattern", "value_re")

    def __init__(
        self, *, min_entries: int = DEFAULT_MIN_ENTRIES, max_entries: int = DEFAULT_MAX_ENTRIES,
        key_min: int = DEFAULT_KEY_MIN, key_max: int = DEFAULT_KEY_MAX,
        value_min: int = DEFAULT_VALUE_MIN, value_max: int = DEFAULT_VALUE_MAX,
        key_pattern: str = DEFAULT_CHARSET + "{1,256}", value_pattern: str = DEFAULT_CHARSET + "{0,256}",
        json_max: int = DEFAULT_JSON_MAX, source: str = "defaults",
    ) -> None:
        self.min_entries, self.max_entries = min_entries, max_entries
        self.key_min, self.key_max = key_min, key_max
        self.value_min, self.value_max = value_min, value_max
        self.key_pattern, self.value_pattern = key_pattern, value_pattern
        self.key_re: re.Pattern[str] = re.compile(key_pattern, re.ASCII)
        self.value_re: re.Pattern[str] = re.compile(value_pattern, re.ASCII)
        self.json_max = json_max
        self.source = source

    def _key(self) -> tuple[object, ...]:
        return (self.min_entries, self.max_entries, self.key_min, self.key_max, self.value_min,
                self.value_max, self.key_pattern, self.value_pattern, self.json_max, self.source)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TagRules) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"TagRules(entries={self.min_entries}-{self.max_entries}, key={self.key_min}-{self.key_max} "
                f"{self.key_pattern!r}, value={self.value_min}-{self.value_max} {self.value_pattern!r}, "
                f"json_max={self.json_max}, source={self.source!r})")


DEFAULT_RULES = TagRules()


def _int(meta: Mapping[str, Any], name: str, default: int) -> int:
    value = meta.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _pattern(meta: Mapping[str, Any], default: str) -> str:
    value = meta.get("pattern")
    if isinstance(value, str) and value:
        try:
            re.compile(value, re.ASCII)
        except re.error:
            return default
        return value
    return default


def rules_from_service_model(service_model: Any) -> TagRules:
    """Limits from a botocore ``ServiceModel`` of ``bedrock-runtime``; defaults where it is silent."""
    entries: Mapping[str, Any] = {}
    key_meta: Mapping[str, Any] = {}
    value_meta: Mapping[str, Any] = {}
    json_meta: Mapping[str, Any] = {}
    source = "defaults"
    try:
        shape = service_model.operation_model("Converse").input_shape.members.get("requestMetadata")
        if shape is not None and getattr(shape, "type_name", None) == "map":
            entries, key_meta, value_meta = shape.metadata, shape.key.metadata, shape.value.metadata
            source = "service model"
    except Exception:  # an odd model only means the documented defaults apply
        pass
    try:
        shape = service_model.operation_model("InvokeModel").input_shape.members.get("requestMetadata")
        if shape is not None and getattr(shape, "type_name", None) == "string":
            json_meta = shape.metadata
    except Exception:
        pass
    return TagRules(
        min_entries=_int(entries, "min", DEFAULT_MIN_ENTRIES),
        max_entries=_int(entries, "max", DEFAULT_MAX_ENTRIES),
        key_min=_int(key_meta, "min", DEFAULT_KEY_MIN),
        key_max=_int(key_meta, "max", DEFAULT_KEY_MAX),
        value_min=_int(value_meta, "min", DEFAULT_VALUE_MIN),
        value_max=_int(value_meta, "max", DEFAULT_VALUE_MAX),
        key_pattern=_pattern(key_meta, DEFAULT_RULES.key_pattern),
        value_pattern=_pattern(value_meta, DEFAULT_RULES.value_pattern),
        json_max=_int(json_meta, "max", DEFAULT_JSON_MAX),
        source=source,
    )


def check_tag(rules: TagRules, key: object, value: object) -> Problem | None:
    """The first limit ``key``/``value`` break (a problem that drops the tag), or None."""
    if not isinstance(key, str) or not isinstance(value, str):
        what = "key" if not isinstance(key, str) else "value"
        return Problem(
            str(key), NOT_STR,
            f"the {what} is a {type(key if what == 'key' else value).__name__}, not a str; "
            "pass tags as strings", True,
        )
    if not rules.key_min <= len(key) <= rules.key_max:
        return Problem(
            key, KEY_LENGTH,
            f"the key has {len(key)} characters; keys must have {rules.key_min}-{rules.key_max}", True,
        )
    if not rules.value_min <= len(value) <= rules.value_max:
        return Problem(
            key, VALUE_LENGTH,
            f"the value has {len(value)} characters; values must have "
            f"{rules.value_min}-{rules.value_max}", True,
        )
    if rules.key_re.fullmatch(key) is None:
        return Problem(
            key, KEY_CHARS,
            f"the key has characters outside the allowed set (pattern {rules.key_pattern})", True,
        )
    if rules.value_re.fullmatch(value) is None:
        return Problem(
            key, VALUE_CHARS,
            f"the value has characters outside the allowed set (pattern {rules.value_pattern})", True,
        )
    return None


def filter_unsafe(key: str, value: str) -> Problem | None:
    """A warning when Bedrock's distillation filters cannot select this tag (``#`` or ``,``)."""
    if "#" in key or "," in key or "#" in value or "," in value:
        where = "key" if ("#" in key or "," in key) else "value"
        return Problem(
            key, FILTER_UNSAFE,
            f"the {where} contains '#' or ','; the tag is sent, but Bedrock distillation "
            "filters (requestMetadataFilters) cannot select it", False,
        )
    return None


def validate(rules: TagRules, tags: Mapping[Any, Any]) -> tuple[dict[str, str], list[Problem]]:
    """Split ``tags`` into the ones Bedrock accepts and the problems (dropped or warn-only).

    Entries beyond ``rules.max_entries`` are dropped in the mapping's order (later ones go).
    """
    kept: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in tags.items():
        problem = check_tag(rules, key, value)
        if problem is not None:
            problems.append(problem)
            continue
        if len(kept) >= rules.max_entries:
            problems.append(too_many(rules, key))
            continue
        warning = filter_unsafe(key, value)
        if warning is not None:
            problems.append(warning)
        kept[key] = value
    return kept, problems


def too_many(rules: TagRules, key: str) -> Problem:
    return Problem(
        key, TOO_MANY,
        f"more than {rules.max_entries} tags for one call; this lower-precedence tag is dropped", True,
    )


def json_too_long(rules: TagRules, key: str) -> Problem:
    return Problem(
        key, JSON_TOO_LONG,
        f"the X-Amzn-Bedrock-Request-Metadata JSON would exceed {rules.json_max} characters; "
        "this lower-precedence tag is dropped", True,
    )
