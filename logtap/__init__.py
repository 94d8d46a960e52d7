"""logtap: tag Amazon Bedrock calls, query invocation logs, export distillation datasets.

``import logtap`` stays light: it pulls in neither duckdb nor click, so a Lambda function that
only tags its calls pays nothing for the query side. Query and export names are loaded on
first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from logtap._version import __version__
from logtap.errors import DataError, FilterError, LogtapError, SourceError, TagError

logging.getLogger("logtap").addHandler(logging.NullHandler())

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY: dict[str, str] = {
    "instrument": "logtap.middleware",
    "uninstrument": "logtap.middleware",
    "instrument_session": "logtap.middleware",
    "uninstrument_session": "logtap.middleware",
    "tags": "logtap.context",
    "current_tags": "logtap.context",
    "flush": "logtap.sink",
    "open_logs": "logtap.engine",
    "open_athena_logs": "logtap.athena_client",
    "LogSet": "logtap.engine",
    "Filter": "logtap.filters",
}

__all__ = [
    "DataError",
    "Filter",
    "FilterError",
    "LogSet",
    "LogtapError",
    "SourceError",
    "TagError",
    "__version__",
    "current_tags",
    "flush",
    "instrument",
    "instrument_session",
    "open_athena_logs",
    "open_logs",
    "tags",
    "uninstrument",
    "uninstrument_session",
]

if TYPE_CHECKING:  # pragma: no cover
    from logtap.athena_client import open_athena_logs
    from logtap.context import current_tags, tags
    from logtap.engine import LogSet, open_logs
    from logtap.filters import Filter
    from logtap.middleware import instrument, instrument_session, uninstrument, uninstrument_session
    from logtap.sink import flush


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'logtap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
