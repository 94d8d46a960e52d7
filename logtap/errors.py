"""logtap's exception hierarchy: one root, specific subclasses with actionable messages.

The CLI turns every `LogtapError` into `Error: <message>` and exit code 1.
"""

from __future__ import annotations


class LogtapError(Exception):
    """Root of every error logtap raises on purpose. Its message says what to do."""


class TagError(LogtapError, ValueError):
    """A request-metadata tag breaks Bedrock's limits (raised only with ``strict=True``)."""


class FilterError(LogtapError, ValueError):
    """A filter document Bedrock would reject. ``path`` points at the offending node."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{message} (at {path})")
        self.path = path


class SourceError(LogtapError):
    """A log source cannot be read at all: missing folder, unreachable bucket, no credentials."""


class DataError(LogtapError):
    """Input data that cannot be processed as asked (for example a dataset that fails validation)."""
