"""Request-metadata filters: one immutable tree for Bedrock's ``requestMetadataFilters``.

The tree is a public structure that every backend compiles (DuckDB here, Trino/Athena elsewhere):

* ``Equals(key, value)``: the record's ``requestMetadata`` has ``key`` with exactly ``value``.
* ``NotEquals(key, value)``: everything ``Equals(key, value)`` does not match, records without the
  key or without any ``requestMetadata`` included, so the two always split a record set.
* ``AndAll(items)`` / ``OrAll(items)``: conjunction / disjunction of any filters (a tuple).

Bedrock's own document is narrower than the tree: a union with exactly one member, ``equals`` /
``notEquals`` maps with exactly one entry, ``andAll`` / ``orAll`` holding 1-16 *base* filters (no
nesting, so AND and OR never mix), keys and values from a restricted character set.
``Filter.from_json`` accepts exactly those documents (a document the service would reject raises
``FilterError`` naming the offending node) and ``to_json`` writes them back byte-for-byte equal.
Trees built by ``combine`` (for example ``--where`` AND-ed with an ``orAll`` ``--filter``) can be
more general; they still run locally, and ``to_bedrock`` explains why the service cannot take them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logtap.errors import FilterError

# From botocore's `bedrock` model: RequestMetadataMapKeyString / RequestMetadataMapValueString.
KEY_PATTERN = re.compile(r"[a-zA-Z0-9\s._:/=+$@-]{1,256}")
VALUE_PATTERN = re.compile(r"[a-zA-Z0-9\s._:/=+$@-]{0,256}")
MAX_ITEMS = 16
_BASE = ("equals", "notEquals")
_UNION = ("equals", "notEquals", "andAll", "orAll")


def _load_patterns() -> None:
    """Prefer the patterns of the installed botocore's service model, when it has them. The model file
    is read directly (about 20 ms; a botocore session would import and build far more: 0.2 s)."""
    global KEY_PATTERN, VALUE_PATTERN, MAX_ITEMS
    try:
        import gzip
        import importlib.util

        import orjson

        spec = importlib.util.find_spec("botocore")
        if spec is None or not spec.submodule_search_locations:
            return
        service = Path(next(iter(spec.submodule_search_locations))) / "data" / "bedrock"
        latest = max(p for p in service.iterdir() if p.is_dir())
        plain, packed = latest / "service-2.json", latest / "service-2.json.gz"
        data = plain.read_bytes() if plain.exists() else gzip.decompress(packed.read_bytes())
        shapes = orjson.loads(data)["shapes"]
        mapping = shapes["RequestMetadataMap"]
        key = re.compile(shapes[mapping["key"]["shape"]]["pattern"])
        value = re.compile(shapes[mapping["value"]["shape"]]["pattern"])
        items = int(shapes["RequestMetadataFiltersList"]["max"])
    except Exception:  # no botocore, another layout: the patterns above stand
        return
    KEY_PATTERN, VALUE_PATTERN, MAX_ITEMS = key, value, items


class Filter:
    """Base of the filter tree. Subclasses are frozen dataclasses; compare and hash by value."""

    # -- Bedrock JSON ---------------------------------------------------------------------------
    @staticmethod
    def from_json(doc: Any) -> Filter:
        """Parse a Bedrock ``requestMetadataFilters`` document, enforcing the service's rules."""
        _load_patterns_once()
        return _parse_union(doc, "$")

    def to_json(self) -> dict[str, Any]:
        """The document for this tree (Bedrock's shape; nested trees give nested documents)."""
        raise NotImplementedError

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, request_metadata: Mapping[str, Any] | None) -> bool:
        """Pure-Python reference semantics, applied to a record's ``requestMetadata``."""
        raise NotImplementedError

    def to_sql(self, column_expr: str) -> tuple[str, list[str]]:
        """DuckDB SQL over a ``MAP(VARCHAR, VARCHAR)`` column; every key and value is a ``?``.

        ``column_expr`` must be trusted SQL chosen by the caller (a column name), never user input.
        """
        params: list[str] = []

        def bind(value: str) -> str:
            params.append(value)
            return "?"

        return self.compile(column_expr, bind), params

    def compile(self, column_expr: str, bind: Callable[[str], str]) -> str:
        """Like ``to_sql`` but ``bind(value)`` returns the placeholder text for each value."""
        raise NotImplementedError

    def walk(self) -> Iterable[Filter]:
        """This node and every node below it, depth first."""
        yield self


@dataclass(frozen=True)
class Equals(Filter):
    key: str
    value: str

    def to_json(self) -> dict[str, Any]:
        return {"equals": {self.key: self.value}}

    def evaluate(self, request_metadata: Mapping[str, Any] | None) -> bool:
        return request_metadata is not None and request_metadata.get(self.key) == self.value

    def compile(self, column_expr: str, bind: Callable[[str], str]) -> str:
        return f"coalesce({column_expr}[{bind(self.key)}] = {bind(self.value)}, false)"


@dataclass(frozen=True)
class NotEquals(Filter):
    key: str
    value: str

    def to_json(self) -> dict[str, Any]:
        return {"notEquals": {self.key: self.value}}

    def evaluate(self, request_metadata: Mapping[str, Any] | None) -> bool:
        return not Equals(self.key, self.value).evaluate(request_metadata)

    def compile(self, column_expr: str, bind: Callable[[str], str]) -> str:
        return f"(NOT coalesce({column_expr}[{bind(self.key)}] = {bind(self.value)}, false))"


@dataclass(frozen=True)
class AndAll(Filter):
    items: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))

    def to_json(self) -> dict[str, Any]:
        return {"andAll": [item.to_json() for item in self.items]}

    def evaluate(self, request_metadata: Mapping[str, Any] | None) -> bool:
        return all(item.evaluate(request_metadata) for item in self.items)

    def compile(self, column_expr: str, bind: Callable[[str], str]) -> str:
        if not self.items:
            return "true"
        return "(" + " AND ".join(item.compile(column_expr, bind) for item in self.items) + ")"

    def walk(self) -> Iterable[Filter]:
        yield self
        for item in self.items:
            yield from item.walk()


@dataclass(frozen=True)
class OrAll(Filter):
    items: tuple[Filter, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))

    def to_json(self) -> dict[str, Any]:
        return {"orAll": [item.to_json() for item in self.items]}

    def evaluate(self, request_metadata: Mapping[str, Any] | None) -> bool:
        return any(item.evaluate(request_metadata) for item in self.items)

    def compile(self, column_expr: str, bind: Callable[[str], str]) -> str:
        if not self.items:
            return "false"
        return "(" + " OR ".join(item.compile(column_expr, bind) for item in self.items) + ")"

    def walk(self) -> Iterable[Filter]:
        yield self
        for item in self.items:
            yield from item.walk()


# -- builders -------------------------------------------------------------------------------------
def equals(key: str, value: str) -> Equals:
    return Equals(key, value)


def not_equals(key: str, value: str) -> NotEquals:
    return NotEquals(key, value)


def and_all(*items: Filter) -> AndAll:
    return AndAll(tuple(items))


def or_all(*items: Filter) -> OrAll:
    return OrAll(tuple(items))


def combine(*filters: Filter | None) -> Filter | None:
    """AND-combine filters (``None`` ignored); nested ``AndAll`` nodes are flattened."""
    items: list[Filter] = []
    for f in filters:
        if f is None:
            continue
        items.extend(f.items if isinstance(f, AndAll) else (f,))
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    return AndAll(tuple(items))


# -- parsing --------------------------------------------------------------------------------------
_patterns_loaded = False


def _load_patterns_once() -> None:
    global _patterns_loaded
    if not _patterns_loaded:
        _load_patterns()
        _patterns_loaded = True


def _check_key_value(key: Any, value: Any, path: str) -> None:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise FilterError(
            f"key {key!r} is not allowed: Bedrock filter keys are 1-256 characters from letters, digits, "
            "whitespace and . _ : / = + $ @ - (no '#' or ',')", path)
    if not isinstance(value, str):
        raise FilterError(f"value for key {key!r} must be a string, got {type(value).__name__}", path)
    if not VALUE_PATTERN.fullmatch(value):
        raise FilterError(
            f"value {value!r} is not allowed: Bedrock filter values are 0-256 characters from letters, "
            "digits, whitespace and . _ : / = + $ @ - (no '#' or ',')", path)


def _parse_map(kind: str, body: Any, path: str) -> Filter:
    if not isinstance(body, dict) or len(body) != 1:
        n = len(body) if isinstance(body, dict) else type(body).__name__
        raise FilterError(f"'{kind}' must be an object with exactly one key: value entry (got {n}); "
                          "use andAll/orAll to combine several", path)
    ((key, value),) = body.items()
    _check_key_value(key, value, f"{path}.{key}")
    return Equals(key, value) if kind == "equals" else NotEquals(key, value)


def _one_member(doc: Any, allowed: Sequence[str], path: str, what: str) -> tuple[str, Any]:
    if not isinstance(doc, dict):
        raise FilterError(f"{what} must be a JSON object, got {type(doc).__name__}", path)
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise FilterError(f"unknown member {unknown[0]!r} in {what}; allowed: {', '.join(allowed)}", path)
    if len(doc) != 1:
        raise FilterError(f"{what} must have exactly one of {', '.join(allowed)}, got {len(doc)}", path)
    ((kind, body),) = doc.items()
    return kind, body


def _parse_union(doc: Any, path: str) -> Filter:
    kind, body = _one_member(doc, _UNION, path, "a requestMetadataFilters document")
    if kind in _BASE:
        return _parse_map(kind, body, f"{path}.{kind}")
    here = f"{path}.{kind}"
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_ITEMS:
        n = len(body) if isinstance(body, list) else type(body).__name__
        raise FilterError(f"'{kind}' must be a list of 1-{MAX_ITEMS} filters, got {n}", here)
    items = []
    for i, item in enumerate(body):
        item_path = f"{here}[{i}]"
        if isinstance(item, dict) and any(k in item for k in ("andAll", "orAll")):
            raise FilterError(f"'{kind}' may only hold equals/notEquals filters: Bedrock cannot nest "
                              "andAll/orAll", item_path)
        sub_kind, sub_body = _one_member(item, _BASE, item_path, f"an item of '{kind}'")
        items.append(_parse_map(sub_kind, sub_body, f"{item_path}.{sub_kind}"))
    return AndAll(tuple(items)) if kind == "andAll" else OrAll(tuple(items))


class _DuplicateMember(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateMember(key)
        out[key] = value
    return out


def parse_filter_arg(text: str) -> Filter:
    """``--filter`` value: a JSON document, or ``@path`` to a file holding one."""
    source = "--filter"
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FilterError(f"cannot read filter file {str(path)!r}: {exc.strerror or exc}", source) from exc
        source = str(path)
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_members)
    except _DuplicateMember as exc:
        raise FilterError(f"{exc.key!r} appears twice in one JSON object, and JSON keeps only the last one, so "
                          "part of the filter would be ignored; combine several conditions with "
                          "andAll/orAll, e.g. {\"andAll\": [{\"equals\": {\"a\": \"1\"}}, "
                          "{\"equals\": {\"b\": \"2\"}}]}", source) from None
    except json.JSONDecodeError as exc:
        raise FilterError(f"filter is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
                          "pass a document such as '{\"equals\": {\"project\": \"support\"}}'", source) from exc
    return Filter.from_json(doc)


def parse_where(items: Iterable[str]) -> Filter | None:
    """``--where KEY=VALUE`` / ``--where KEY!=VALUE`` items, AND-combined (``None`` if empty).

    The key ends at the first ``=`` (or the ``!=`` it belongs to); the value is everything after it.
    Keys and values are not limited to Bedrock's character set here (local queries can match
    any tag); ``to_bedrock`` checks that set.
    """
    filters: list[Filter] = []
    for i, item in enumerate(items):
        idx = item.find("=")
        negate = idx > 0 and item[idx - 1] == "!"
        key = item[: idx - 1] if negate else item[:idx]
        if idx < 0 or not key:
            raise FilterError(f"--where {item!r} must be KEY=VALUE or KEY!=VALUE", f"--where[{i}]")
        value = item[idx + 1 :]
        filters.append(NotEquals(key, value) if negate else Equals(key, value))
    return combine(*filters)


def to_bedrock(f: Filter) -> dict[str, Any]:
    """The Bedrock ``requestMetadataFilters`` document for ``f``, or ``FilterError`` saying why not."""
    _load_patterns_once()
    if isinstance(f, (AndAll, OrAll)):
        kind = "andAll" if isinstance(f, AndAll) else "orAll"
        if not 1 <= len(f.items) <= MAX_ITEMS:
            raise FilterError(f"Bedrock's {kind} holds 1-{MAX_ITEMS} filters; this one has {len(f.items)}. "
                              "Split the job or narrow the filter", f"$.{kind}")
        for i, item in enumerate(f.items):
            if isinstance(item, (AndAll, OrAll)):
                inner = "andAll" if isinstance(item, AndAll) else "orAll"
                raise FilterError(
                    f"Bedrock cannot express {kind} containing {inner}: it allows one level of AND or OR, "
                    "never both. Drop --where or rewrite the filter as a single andAll/orAll",
                    f"$.{kind}[{i}]")
            assert isinstance(item, (Equals, NotEquals))
            _check_key_value(item.key, item.value, f"$.{kind}[{i}]")
    else:
        assert isinstance(f, (Equals, NotEquals))
        _check_key_value(f.key, f.value, "$")
    doc = f.to_json()
    Filter.from_json(doc)  # the same rules as for user documents
    return doc
