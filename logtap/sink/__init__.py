"""Client-side invocation log in Bedrock's own format (filled in by the sink work)."""

from __future__ import annotations


def flush(timeout: float | None = None) -> None:
    """Write out every pending record of every sink. A no-op when no sink is in use."""
