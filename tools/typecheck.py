"""Run mypy over the installed package layout.

`cli/` and `converters/` are importable only as `logtap.cli` and `logtap.converters`
(setuptools `package-dir`), which mypy cannot map by itself. This builds a tree of
symlinks under build/typecheck/ that has the installed shape and checks it: strict on
everything under `logtap`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def build_tree() -> Path:
    pkg = TREE / "logtap"
    shutil.rmtree(TREE, ignore_errors=True)
    pkg.mkdir(parents=True)
    for entry in (ROOT / "logtap").iterdir():
        if entry.name in {"__pycache__"}:
            continue
        os.symlink(entry, pkg / entry.name)
    os.symlink(ROOT / "cli", pkg / "cli")
    os.symlink(ROOT / "converters", pkg / "converters")
    return pkg


def main() -> int:
    build_tree()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "logtap"]
    env = dict(os.environ, MYPYPATH=str(TREE))
    return subprocess.run(cmd, cwd=TREE, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
