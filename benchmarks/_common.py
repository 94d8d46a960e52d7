"""Shared set-up of the benchmarks over the seeded mixed-provider logs (``_gen_logs.py``).

Import it after putting ``benchmarks/`` on ``sys.path`` (as the benchmarks do for ``_gen_logs``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _gen_logs import generate

ROOT = Path(__file__).resolve().parent.parent


def mixed_logs_args(doc: str | None, quick_help: str = "~50 MB instead of ~1 GB, one run") -> argparse.Namespace:
    """``--quick``, ``--runs`` (default 3) and ``--no-s3`` (accepted for ``make bench``; local benchmark)."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-s3", action="store_true", help="(accepted for make bench; this benchmark is local)")
    return ap.parse_args()


def mixed_logs(quick: bool) -> tuple[Path, int]:
    """(folder, uncompressed bytes) of the cached ~50 MB (quick) or ~1 GB log tree, generated once."""
    n = 27_000 if quick else 540_000
    root = ROOT / ".bench-cache" / f"logs-{n}"
    raw = generate(root, records=n, workers=2)
    print(f"dataset: {root} ({raw / 1e6:.0f} MB uncompressed)", flush=True)
    return root, raw
