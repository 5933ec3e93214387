"""Split loads (issue 29): `.venv/bin/python bench/split.py [--rows N] [--chunks 8] [--workers 2]`.

One FULL load of the bench's `orders` table (8 columns, generated in the local PostgreSQL by
bench/run.py's `create_orders`) into a file:// lake, by a real `python -m ingest run` process:

- **one activity**: the table read by one job (`INGEST_SPLIT_ROWS=0`, no `split`);
- **split**: the same job with `split = --chunks`, its chunks run over `--workers` worker
  processes of the local runner, one commit. Every chunk reads the exported snapshot the runner
  holds (`ingest.job.split_snapshot`; ConnectorX with INGEST_BACKEND=auto);
- **split, no snapshot**: the same with INGEST_SPLIT_SNAPSHOT=off (each chunk reads its range
  when it runs, through ConnectorX): the difference is the cost of the one consistent state.
  Also from the log: the ranges' counts (at the start; at the commit without the snapshot; each
  chunk's count of its own range in the snapshot) and the commit's move of the staged files
  into the table.

Per scenario: wall time, and the peak resident memory (VmHWM) of the main process and of each
worker process (the process tree is sampled every 0.1 s). For the split run also each
chunk's time (from the run's log), from which the model prints the wall time of a 2-billion-row
table on 1, 4 and 16 instances against the activity time limits of the Functions plans.
The Durable overhead per activity in the model is `--durable-ms` (replay CPU per activity,
from bench/replay.py: see the README). Numbers only; nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: activity time limits (minutes) of the Functions plans (docs/FUNCTIONS.md)
PLAN_LIMITS = {
    "Consumption (10 min max)": 10,
    "Flex Consumption (30 min default)": 30,
    "Premium (30 min default, unbounded allowed)": 30,
}
COUNT_LINE = re.compile(r"ranges counted (?:in the snapshot )?in ([\d.]+) s")
MOVE_LINE = re.compile(r"(\d+) staged file\(s\) moved into the table in ([\d.]+) s")
#: a chunk's count of its range in the snapshot (the commit's reconciliation sums them)
CHUNK_COUNT_LINE = re.compile(r"rows of its range counted in the snapshot in ([\d.]+) s")
CHUNK_LINE = re.compile(r"chunk (\d+) of (\d+) (?:had landed|landed) ([\d,]+) rows \(([\d.]+) s\)")


def write_config(path: Path, table: str, chunks: int | None) -> Path:
    from bench.run import SCHEMA

    lines = [
        "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,primary_key,split",
        f"b1,Y,postgresql,bench_pg,{SCHEMA},{table},FULL,order_id,{chunks or ''}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sample_tree(proc: subprocess.Popen) -> dict[int, tuple[str, float]]:
    """pid -> (role, peak RSS in MB) of the process and its descendants, until it ends."""
    import psutil

    peaks: dict[int, tuple[str, float]] = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for member in tree:
            try:
                with open(f"/proc/{member.pid}/status") as handle:
                    status = handle.read()
                hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
                cmdline = " ".join(member.cmdline())
            except (OSError, psutil.Error):
                continue
            if not hwm:
                continue
            if "resource_tracker" in cmdline:
                continue
            role = "worker"  # a pool worker (forked from the fork server: same command line)
            if member.pid == proc.pid:
                role = "main"
            elif "forkserver" in cmdline and member.ppid() == proc.pid:
                role = "fork server"
            peaks[member.pid] = (role, int(hwm.group(1)) / 1024)
        time.sleep(0.1)
    return peaks


def run_scenario(
    label: str,
    table: str,
    chunks: int | None,
    workers: int,
    workdir: Path,
    snapshot: bool = True,
) -> dict[str, object]:
    from bench.run import PG

    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    lake = workdir / f"lake-{slug}"
    config = write_config(workdir / f"{slug}.csv", table, chunks)
    env = dict(os.environ)
    env.update(
        {
            "SOURCES__BENCH_PG__HOST": PG["host"],
            "SOURCES__BENCH_PG__PORT": PG["port"],
            "SOURCES__BENCH_PG__DATABASE": PG["db"],
            "SOURCES__BENCH_PG__USERNAME": PG["user"],
            "INGEST_SPLIT_ROWS": "0",
            "INGEST_WORK_DIR": str(workdir / f"work-{slug}"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "PYTHONPATH": str(ROOT),
            "INGEST_SPLIT_SNAPSHOT": "on" if snapshot else "off",
        }
    )
    cmd = [sys.executable, "-m", "ingest", "run", "--config", str(config)]
    cmd += ["--destination", lake.as_uri(), "--workers", str(workers)]
    print(f"{label}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        peaks = sample_tree(proc)
        code = proc.wait()
        wall = time.perf_counter() - started
        err.seek(0)
        log = err.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{label} failed ({code}):\n{log[-3000:]}")
    chunk_times = [
        (int(m.group(1)), int(m.group(3).replace(",", "")), float(m.group(4)))
        for m in CHUNK_LINE.finditer(log)
    ]
    counts = [float(m.group(1)) for m in COUNT_LINE.finditer(log)]
    chunk_counts = [float(m.group(1)) for m in CHUNK_COUNT_LINE.finditer(log)]
    moves = [(int(m.group(1)), float(m.group(2))) for m in MOVE_LINE.finditer(log)]
    return {
        "label": label,
        "wall": wall,
        "peaks": peaks,
        "chunks": chunk_times,
        "log": log,
        "counts": counts,
        "chunk_counts": chunk_counts,
        "moves": moves,
    }


def describe(result: dict[str, object]) -> str:
    peaks = result["peaks"]
    assert isinstance(peaks, dict)
    main = max((mb for role, mb in peaks.values() if role == "main"), default=0.0)
    workers = sorted((mb for role, mb in peaks.values() if role == "worker"), reverse=True)
    worker_text = ", ".join(f"{mb:,.0f}" for mb in workers) or "-"
    return f"| {result['label']} | {result['wall']:.1f} s | {main:,.0f} MB | {worker_text} MB |"


def model(
    single_rate: float,
    chunk_rate: float,
    per_instance: int,
    durable_ms: float,
    total_rows: int,
    chunk_rows: int,
) -> list[str]:
    """Wall time of a `total_rows` table on N instances like this machine: not split, one
    activity at `single_rate` rows/s; split into chunks of `chunk_rows`, each instance running
    `per_instance` chunks at once at `chunk_rate` rows/s each (both measured here), plus the
    Durable overhead per activity (replay CPU, bench/replay.py)."""
    chunks = math.ceil(total_rows / chunk_rows)
    chunk_s = chunk_rows / chunk_rate
    whole_s = total_rows / single_rate
    lines = [
        f"model: {total_rows:,} rows; one activity reads {single_rate:,.0f} rows/s, a chunk "
        f"{chunk_rate:,.0f} rows/s with {per_instance} at once per instance (both measured "
        "here, a 2-core instance with the database on the same cores)",
        f"split: {chunks} chunks of {chunk_rows:,} rows, {chunk_s / 60:,.1f} min each; Durable "
        f"overhead {durable_ms:.0f} ms of replay CPU per activity",
        "",
        "| instances | wall time | longest activity | " + " | ".join(PLAN_LIMITS) + " |",
        "|---|---|---|" + "---|" * len(PLAN_LIMITS),
    ]

    def fits(seconds: float) -> str:
        return " | ".join(
            "fits" if seconds / 60 <= limit else "over the limit" for limit in PLAN_LIMITS.values()
        )

    lines.append(
        f"| 1, not split | {whole_s / 60:,.1f} min | {whole_s / 60:,.1f} min | {fits(whole_s)} |"
    )
    for instances in (1, 4, 16):
        waves = math.ceil(chunks / (instances * per_instance))
        wall_s = waves * chunk_s + (chunks + 2) * durable_ms / 1000
        lines.append(
            f"| {instances}, split | {wall_s / 60:,.1f} min | {chunk_s / 60:,.1f} min "
            f"| {fits(chunk_s)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--durable-ms",
        type=float,
        default=9.0,
        help="Durable overhead per activity in the model: replay CPU per activity, ms "
        "(bench/replay.py: 1,000 tables with and without --split-tables 10)",
    )
    parser.add_argument("--model-rows", type=int, default=2_000_000_000)
    parser.add_argument("--model-chunk-rows", type=int, default=50_000_000)
    parser.add_argument("--skip-single", action="store_true", help="only the split run")
    parser.add_argument(
        "--skip-no-snapshot", action="store_true", help="no split run without the snapshot"
    )
    args = parser.parse_args(argv)

    from bench.run import create_orders

    table = f"orders_split_{args.rows}"
    create_orders(table, args.rows)
    results = []
    with tempfile.TemporaryDirectory(prefix="split-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_single:
            results.append(run_scenario("one activity", table, None, 1, workdir))
        split = run_scenario(
            f"{args.chunks} chunks / {args.workers} workers",
            table,
            args.chunks,
            args.workers,
            workdir,
        )
        results.append(split)
        if not args.skip_no_snapshot:
            results.append(
                run_scenario(
                    f"{args.chunks} chunks / {args.workers} workers, no snapshot",
                    table,
                    args.chunks,
                    args.workers,
                    workdir,
                    snapshot=False,
                )
            )
    print()
    print(f"{args.rows:,} rows (bench/run.py's 8-column orders), FULL, file:// lake")
    print()
    print("| run | wall | peak RSS main process | peak RSS per worker process |")
    print("|---|---|---|---|")
    for result in results:
        print(describe(result))
    for result in results:
        timed = result.get("chunks") or []
        assert isinstance(timed, list)
        if timed:
            spent = sum(t for _, _, t in timed)
            print(
                f"{result['label']}: {sum(r for _, r, _ in timed) / spent:,.0f} rows/s per "
                f"chunk, {min(t for _, _, t in timed):.1f}..{max(t for _, _, t in timed):.1f} s"
            )
    for result in results:
        counts, moves = result.get("counts"), result.get("moves")
        if counts or moves:
            print(
                f"{result['label']}: ranges counted in "
                + ", ".join(f"{c:.1f} s" for c in counts or [])
                + "; staged files moved in "
                + ", ".join(f"{s:.2f} s ({n} files)" for n, s in moves or [])
            )
        counted = result.get("chunk_counts") or []
        assert isinstance(counted, list)
        if counted:
            print(
                f"{result['label']}: each chunk counted its range in the snapshot in "
                f"{min(counted):.2f}..{max(counted):.2f} s (sum {sum(counted):.1f} s)"
            )
    chunks = split["chunks"]
    assert isinstance(chunks, list)
    if chunks:
        times = [t for _, _, t in chunks]
        rows = [r for _, r, _ in chunks]
        rate = sum(rows) / sum(times)
        print()
        print(
            f"chunks: {len(chunks)}, {min(times):.1f}..{max(times):.1f} s each "
            f"({sum(rows) / len(rows):,.0f} rows), {rate:,.0f} rows/s per chunk activity "
            f"(2 of them at once on 2 cores)"
        )
        print()
        single = next((r for r in results if r["label"] == "one activity"), None)
        single_rate = args.rows / float(single["wall"]) if single else rate
        lines = model(
            single_rate,
            rate,
            args.workers,
            args.durable_ms,
            args.model_rows,
            args.model_chunk_rows,
        )
        for line in lines:
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
