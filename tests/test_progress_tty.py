"""Progress goes to stderr only when stderr is a terminal, and --quiet silences it. A real pty."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from support import records


def _run_with_tty_stderr(args: list[str]) -> tuple[int, str, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "logtap", *args], stdout=subprocess.PIPE,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    out = proc.stdout.read().decode() if proc.stdout else ""
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    rc = proc.wait()
    os.close(leader)
    return rc, out, b"".join(chunks).decode(errors="replace")


def _logs(tmp_path: Path) -> Path:
    recs = [records.converse(request_id=f"r{i}", tags={"project": "support" if i % 2 else "other"})
            for i in range(30)]
    records.write_logs(tmp_path, recs)
    return tmp_path


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    rc, out, err = _run_with_tty_stderr(["query", str(_logs(tmp_path)), "--where", "project=support",
                                         "--format", "jsonl"])
    assert rc == 0
    assert len(out.splitlines()) == 15
    assert "logtap: scanned 30 records from" in err and "records/s" in err


def test_quiet_silences_progress(tmp_path: Path) -> None:
    rc, out, err = _run_with_tty_stderr(["query", str(_logs(tmp_path)), "--where", "project=support",
                                         "--format", "jsonl", "--quiet"])
    assert rc == 0 and len(out.splitlines()) == 15
    assert "scanned" not in err


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "logtap", "query", str(_logs(tmp_path)), "--format", "jsonl"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 30
    assert "scanned" not in proc.stderr
