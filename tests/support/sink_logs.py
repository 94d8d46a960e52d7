"""Helpers to read what a logtap sink wrote (tests of the sink and its benchmark).

``read_records(root)`` -> list of (path relative to root, record dict) for every ``*.json.gz`` log
file under ``root`` (``data/`` objects and staging files excluded), in file then line order.
``FILE_NAME`` is the regular expression of Bedrock's log file names.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

FILE_NAME = re.compile(r"^\d{8}T\d{9}Z_[0-9a-f]{16}\.json\.gz$")
KEY = re.compile(r"^AWSLogs/(\d{12})/BedrockModelInvocationLogs/([a-z0-9-]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")


def log_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json.gz")
                  if "data" not in p.relative_to(root).parts and not any(
                      part.startswith(".") for part in p.relative_to(root).parts))


def read_records(root: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in log_files(root):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                out.append((path.relative_to(root).as_posix(), json.loads(line)))
    return out


def by_operation(records: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {rec["operation"]: rec for _, rec in records}
