"""Peak memory of `ingest_table` activities: `.venv/bin/python bench/activity_memory.py`.

Sizes host.json's `maxConcurrentActivityFunctions` and the Flex Consumption instance memory
(docs/FUNCTIONS.md, "Sizing"). The Python worker runs an instance's activities as threads of
one process, so each measurement is a fresh process that does what a worker does:
`import function_app`, the REAL `plan_run` activity, then K REAL `ingest_table` activities at
once in K threads, each a FULL load of the bench's `orders` table (8 columns, generated in the
local PostgreSQL by bench/run.py's `create_orders`) into a file:// lake. It prints the
process's resident memory after the import and planning (the base) and its peak (ru_maxrss).

Numbers only; nothing asserts a size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(concurrent: int, table: str, workdir: Path) -> dict[str, float]:
    """One worker process: import, plan, `concurrent` ingest_table activities in threads."""
    from bench.run import PG, SCHEMA

    lines = ["job_id,enabled,source_type,source_name,schema_name,table_name,load_type"]
    for k in range(1, concurrent + 1):
        lines.append(f"m{k},Y,postgresql,bench_pg_{k},{SCHEMA},{table},FULL")
        for key, value in (
            ("host", PG["host"]),
            ("port", PG["port"]),
            ("database", PG["db"]),
            ("username", PG["user"]),
        ):
            os.environ[f"SOURCES__BENCH_PG_{k}__{key.upper()}"] = str(value)
    (workdir / "jobs.csv").write_text("\n".join(lines) + "\n")
    os.environ["INGEST_CONFIG_PATH"] = str(workdir / "jobs.csv")
    os.environ["INGEST_DESTINATION"] = (workdir / "lake").as_uri()
    os.environ["INGEST_WORK_DIR"] = str(workdir / "work")

    import function_app

    plan_run = function_app.plan_run.build().get_user_function()
    ingest_table = function_app.ingest_table.build().get_user_function()
    planned = plan_run({"run_id": "run-memory"})
    base = rss_mb()
    results: list[dict] = []
    errors: list[BaseException] = []

    def one(position: int) -> None:
        reference = {
            "run_id": "run-memory",
            "destination": planned["destination"],
            "batch": 0,
            "position": position,
        }
        try:
            results.append(ingest_table(reference))
        except BaseException as exc:  # reported below
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(p,)) for p in range(concurrent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"activity failed: {errors[0]!r}")
    statuses = sorted({r["status"] for r in results})
    return {
        "concurrent": concurrent,
        "base_mb": round(base, 1),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "rows": sum(int(r["rows_loaded"]) for r in results),
        "statuses": statuses,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the orders table")
    parser.add_argument("--concurrent", default="1,2,4", help="activities at once per process")
    parser.add_argument(
        "--backend", default="auto,pyarrow", help="INGEST_BACKEND values to measure"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with tempfile.TemporaryDirectory(prefix="activity-memory-") as tmp:
            print(json.dumps(child(args.child, args.table, Path(tmp))))
        return 0

    from bench.run import create_orders

    table = f"orders_{args.rows}"
    create_orders(table, args.rows)
    print(
        f"{'backend':<8} {'activities':>10} {'base MB':>8} {'peak MB':>8} {'per activity MB':>16} {'s':>6}"
    )
    for backend in args.backend.split(","):
        base_peak = None
        for concurrent in (int(c) for c in args.concurrent.split(",")):
            env = {**os.environ, "INGEST_BACKEND": backend, "RUNTIME__DLTHUB_TELEMETRY": "false"}
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(concurrent), "--table", table],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(out.stdout, out.stderr, file=sys.stderr)
                return out.returncode
            m = json.loads(out.stdout.strip().splitlines()[-1])
            assert m["rows"] == args.rows * concurrent and m["statuses"] == ["SUCCESS"], m
            base_peak = base_peak or m["base_mb"]
            per = (m["peak_mb"] - m["base_mb"]) / concurrent
            print(
                f"{backend:<8} {concurrent:>10} {m['base_mb']:>8.0f} {m['peak_mb']:>8.0f} "
                f"{per:>16.0f} {m['seconds']:>6.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
