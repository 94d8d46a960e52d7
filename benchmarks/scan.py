"""`make bench`: logtap query vs bare DuckDB count vs a plain Python gzip+json loop, and S3 with latency.

Generates (seeded, cached under .bench-cache/) ~1 GB of realistic logs (``--quick``: ~50 MB), then
runs each case as a subprocess, interleaved, ``--runs`` times, and reports the median wall time,
MB/s of uncompressed JSON, records/s, ratios and the peak RSS of each case (at 10% and 100% of
the data for logtap). The S3 case puts a subset on moto, behind a WSGI middleware that sleeps 25 ms per
request, and compares DuckDB httpfs (threads = cores) with logtap's prefetch (32 GETs in flight).
Targets (2 cores): logtap >= 0.85x bare DuckDB, >= 4x plain Python, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _gen_logs import generate  # noqa: E402

PY = sys.executable
LOGTAP = [PY, "-m", "logtap"]
FILTER_KEY, FILTER_VALUE = "project", "code-review"

PLAIN_PY = r"""
import gzip, json, os, sys
out = open(os.devnull, "w")
n = 0
for dirpath, _, files in os.walk(sys.argv[1]):
    for name in sorted(files):
        if not name.endswith(".json.gz"): continue
        with gzip.open(os.path.join(dirpath, name), "rt", encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                if (r.get("requestMetadata") or {}).get("project") == "code-review":
                    n += 1
                    out.write(json.dumps({k: r.get(k) for k in ("requestId", "timestamp", "operation", "modelId",
                        "requestMetadata")}) + "\n")
print(n)
"""
BARE_DUCKDB = r"""
import duckdb, sys
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
print(con.sql(f"SELECT count(*) FROM read_json('{sys.argv[1]}/**/*.json.gz', format='newline_delimited')").fetchone()[0])
"""


def run_case(cmd: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS MB of the child, stdout tail, CPU seconds user+sys)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out_bytes = 0
    tail = b""
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
        out_bytes += len(chunk)
        tail = (tail + chunk)[-200:]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"case failed: {' '.join(cmd)}")
    last = tail.decode(errors="replace").strip().splitlines()[-1] if tail else ""
    return wall, usage.ru_maxrss / 1024, last, usage.ru_utime + usage.ru_stime


def loadavg() -> str:
    """The 1/5/15-minute load averages (other work on a shared machine skews wall times)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def subset(root: Path, fraction: float) -> Path:
    files = sorted(root.rglob("*.json.gz"))
    dest = root.parent / f"{root.name}-p{int(fraction * 100)}"
    if not (dest / ".done").exists():
        for f in files[: max(1, int(len(files) * fraction))]:
            target = dest / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(f, target)
        (dest / ".done").write_text("1")
    return dest


def stats_of(root: Path) -> int:
    """Record count, computed in a child so this process stays small (children inherit peak RSS)."""
    code = ("import duckdb,sys; duckdb.execute('SET enable_progress_bar=false'); print(duckdb.sql(f\"SELECT count(*) FROM read_json('{sys.argv[1]}/**/*.json.gz', "
            "format='newline_delimited', columns={{'requestId': 'VARCHAR'}})\").fetchone()[0])")
    out = subprocess.run([PY, "-c", code, str(root)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def precompile() -> None:
    """Byte-compile logtap as installing it does. In an editable checkout run with PYTHONDONTWRITEBYTECODE
    there is no ``__pycache__``, so every ``logtap`` process would compile its own source (~20 ms), which
    the bare DuckDB case, importing pip-installed (compiled) modules, does not pay."""
    import compileall

    for name in ("logtap", "cli", "converters"):
        compileall.compile_dir(str(ROOT / name), quiet=1)


def local_bench(root: Path, raw_bytes: int, runs: int) -> dict[str, object]:
    records = stats_of(root)
    precompile()
    cases = {
        "duckdb_bare_count": [PY, "-c", BARE_DUCKDB, str(root)],
        "logtap_query_jsonl": [*LOGTAP, "query", str(root), "--where", f"{FILTER_KEY}={FILTER_VALUE}",
                               "--format", "jsonl", "--quiet"],
        "python_gzip_json": [PY, "-c", PLAIN_PY, str(root)],
    }
    load_before = loadavg()
    times: dict[str, list[float]] = {k: [] for k in cases}
    rss: dict[str, float] = {k: 0.0 for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for name, cmd in cases.items():  # interleaved
            wall, peak, _, cpu_s = run_case(cmd)
            times[name].append(wall)
            cpu[name].append(cpu_s)
            rss[name] = max(rss[name], peak)
    result: dict[str, object] = {"records": records, "uncompressed_MB": round(raw_bytes / 1e6, 1),
                                 "loadavg_after": loadavg()}
    for name in cases:
        med = statistics.median(times[name])
        result[name] = {"seconds": round(med, 3), "MB_per_s": round(raw_bytes / 1e6 / med, 1),
                        "records_per_s": round(records / med), "peak_rss_MB": round(rss[name], 1),
                        "cpu_seconds": round(statistics.median(cpu[name]), 2)}
    lt = statistics.median(times["logtap_query_jsonl"])
    result["ratio_vs_duckdb"] = round(statistics.median(times["duckdb_bare_count"]) / lt, 3)
    result["loadavg_before"] = load_before
    result["ratio_vs_python"] = round(statistics.median(times["python_gzip_json"]) / lt, 2)
    # on a shared machine CPU seconds are steadier than wall time
    lc = statistics.median(cpu["logtap_query_jsonl"])
    result["cpu_ratio_vs_duckdb"] = round(statistics.median(cpu["duckdb_bare_count"]) / lc, 3)
    return result


class _Delay:
    """WSGI middleware in front of moto: sleeps ``delay`` s per request once ``on`` is set (S3 TTFB)."""

    def __init__(self, app: object, delay: float = 0.025) -> None:
        self.app, self.delay, self.on = app, delay, False

    def __call__(self, environ: dict, start_response: object) -> object:
        if self.on:
            time.sleep(self.delay)
        return self.app(environ, start_response)  # type: ignore[operator]


def s3_bench(root: Path, n_files: int) -> dict[str, object]:
    import logging

    import boto3
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    delayed = _Delay(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, delayed, threaded=True)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{server.server_port}")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench")
    files = sorted(root.rglob("*.json.gz"))[:n_files]
    for f in files:
        s3.upload_file(str(f), "bench", str(f.relative_to(root)))
    delayed.on = True
    from logtap.engine import open_logs

    out: dict[str, object] = {"objects": len(files), "latency_ms": delayed.delay * 1000}
    cases = (("duckdb_httpfs_threads_eq_cores", "httpfs", os.cpu_count() or 2),
             ("duckdb_httpfs_32_threads", "httpfs", 32), ("logtap_prefetch_32_gets", "prefetch", 0))
    for name, mode, threads in cases:
        start = time.perf_counter()
        logs = open_logs("s3://bench/AWSLogs", s3_mode=mode, where=[f"{FILTER_KEY}={FILTER_VALUE}"])
        logs.io_threads = threads
        n = sum(1 for _ in logs.rows())
        wall = time.perf_counter() - start
        out[name] = {"seconds": round(wall, 2), "objects_per_s": round(len(files) / wall, 1), "matched": n,
                     "scanned": logs.report.scanned}
        logs.close()
    server.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="~50 MB instead of ~1 GB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--s3-only", action="store_true", help="only the S3 latency case")
    args = ap.parse_args()
    n = 27_000 if args.quick else 540_000
    root = ROOT / ".bench-cache" / f"logs-{n}"
    t = time.perf_counter()
    raw = generate(root, records=n, workers=2)
    print(f"dataset: {root} ({raw / 1e6:.0f} MB uncompressed, generated/cached in {time.perf_counter() - t:.1f} s)",
          flush=True)
    if args.s3_only:
        print(json.dumps({"s3_latency": s3_bench(root, 40 if args.quick else 200)}, indent=2))
        return 0
    report: dict[str, object] = {"full": local_bench(root, raw, 1 if args.quick else args.runs)}
    p10 = subset(root, 0.10)
    _, wall_rss, _, _ = run_case([*LOGTAP, "query", str(p10), "--where", f"{FILTER_KEY}={FILTER_VALUE}",
                               "--format", "jsonl", "--quiet"])
    report["logtap_peak_rss_MB_at_10pct"] = round(wall_rss, 1)
    if not args.no_s3:
        report["s3_latency"] = s3_bench(root, 40 if args.quick else 200)
    print(json.dumps(report, indent=2))
    full = report["full"]
    assert isinstance(full, dict)
    ok = (full["ratio_vs_duckdb"] >= 0.85 and full["ratio_vs_python"] >= 4
          and full["logtap_query_jsonl"]["peak_rss_MB"] < 300)
    print("targets (>= 0.85x DuckDB, >= 4x Python, RSS < 300 MB):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
