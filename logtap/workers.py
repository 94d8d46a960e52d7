"""Run functions in worker processes: one fresh interpreter per job, results pickled back.

Workers are ``python -m logtap.workers JOB`` (not ``multiprocessing``: its spawn start method
re-imports the caller's main script, which breaks scripts without an ``if __name__ == "__main__"``
guard; fork does not mix with DuckDB's threads). A job names its function as ``"module:name"``, so
only logtap's own functions run. An exception in a worker is raised in the caller.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from logtap.errors import DataError


def available() -> bool:
    """Whether worker processes can be started (not from an embedded interpreter)."""
    return bool(sys.executable)


#: glibc's allocator settings for workers (unless the environment sets them): keep freed memory for
#: reuse instead of returning it to the system after each file. A worker allocates and frees a file's
#: text and a run's lines over and over, and on a VM touching pages anew is dear (measured: 31.6k ->
#: 6.9k page faults per worker; other allocators ignore these variables).
MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
              "MALLOC_TOP_PAD_": str(64 << 20)}


def run(jobs: Sequence[tuple[str, tuple[Any, ...]]], job_dir: str) -> list[Any]:
    """``[function(*args) for function, args in jobs]``, each call in its own process, all at once."""
    paths: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    env = {**MALLOC_ENV, **os.environ}
    try:
        for i, job in enumerate(jobs):
            path = os.path.join(job_dir, f"job-{i}.pickle")
            with open(path, "wb") as fh:
                pickle.dump(job, fh)
            paths.append(path)
            procs.append(subprocess.Popen([sys.executable, "-m", "logtap.workers", path], stdin=subprocess.DEVNULL,
                                          env=env))
        results = []
        for path, proc in zip(paths, procs, strict=True):
            code = proc.wait()
            try:
                with open(path + ".out", "rb") as fh:
                    ok, value = pickle.load(fh)  # written by our own worker
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                raise DataError(f"worker process failed (exit code {code}): {exc}") from None
            if not ok:
                raise value
            results.append(value)
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _main(path: str) -> int:
    """``python -m logtap.workers JOB``: run one job, pickle ``(ok, result or exception)`` next to it."""
    with open(path, "rb") as fh:
        target, args = pickle.load(fh)  # written by ``run``
    try:
        module, _, name = target.partition(":")
        if not module.startswith("logtap."):
            raise DataError(f"not a logtap function: {target!r}")
        outcome: tuple[bool, Any] = (True, getattr(importlib.import_module(module), name)(*args))
    except Exception as exc:
        outcome = (False, exc)
    try:
        data = pickle.dumps(outcome)
        pickle.loads(data)  # can the caller rebuild it (an exception with an unusual __init__)?
    except Exception:
        data = pickle.dumps((False, DataError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
    with open(path + ".out", "wb") as fh:
        fh.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
