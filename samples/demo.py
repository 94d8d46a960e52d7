"""`make demo`: export a prompt-response dataset from the bundled sample logs and print the counts.

Reads ``samples/logs`` (Bedrock's S3 layout, every logged shape, one corrupt line), keeps the
records tagged ``project=support`` (``samples/filters/support.json``) made by the teacher
``amazon.nova-pro-v1:0`` in any ID form, writes ``build/demo/train.jsonl`` and
``build/demo/manifest.json``, validates the file for a Nova Lite student and prints the table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from logtap.converters.export import counts_table, export
from logtap.converters.validate import rules_for, validate_lines

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "build" / "demo"
TEACHER = "amazon.nova-pro-v1:0"
STUDENT = "amazon.nova-lite-v1:0:300k"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    flt = json.loads((HERE / "filters" / "support.json").read_text())
    result = export([str(HERE / "logs")], output=str(OUT / "train.jsonl"), manifest=str(OUT / "manifest.json"),
                    mode="prompt-response", teacher=TEACHER, student=STUDENT, filter=flt)
    print(f"logtap export samples/logs --mode prompt-response --filter @samples/filters/support.json "
          f"--teacher {TEACHER} --student {STUDENT}")
    print(f"filter: {json.dumps(result.manifest['filter'])}\n")
    print(counts_table(result.counts))
    for problem in result.problems:
        print(f"malformed: {problem['file']}:{problem['line']}: {problem['reason']}", file=sys.stderr)
    with open(OUT / "train.jsonl", "rb") as fh:
        report = validate_lines(fh, rules_for(STUDENT))
    print(f"\nwrote {OUT / 'train.jsonl'} ({result.bytes} bytes, sha256 {result.sha256[:16]}...), "
          f"manifest {OUT / 'manifest.json'}")
    print(f"validate --student {STUDENT}: {report.records} records, {len(report.problems)} problems")
    for warning in result.warnings:
        print(f"warning: {warning}")
    return 0 if report.ok and result.counts["written"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
