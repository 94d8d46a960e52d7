"""`make bench`: run every benchmark in this folder, one after another, and print their reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    failed = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name.startswith(("_", "run_all")):
            continue
        print(f"\n=== {script.name}", flush=True)
        failed |= subprocess.run([sys.executable, str(script), *argv]).returncode != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
