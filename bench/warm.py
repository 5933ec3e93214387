"""Warm benchmark: one process, imports done: `python3 tasks.py bench --warm [ARGS]` (or
`.venv/bin/python bench/warm.py --help` with PostgreSQL and Azurite running, e.g. after
`python3 tasks.py services`).

What it measures (issue 19 item 1), with the imports (dlt, ConnectorX, pyarrow, adlfs, Azure
SDK, the engine) paid once up front and one throw-away run of each path per lake before timing:

big    the `bench.orders_<N>` table of bench/run.py at each --sizes, into a file:// lake and
       into Azurite (az://), interleaved per repetition (a, c, a, c, ...):
         (a) hand-written: `connectorx.read_sql(..., return_type="arrow")`, then
             `pyarrow.parquet.write_table`: to a local file for file://; for Azurite into an
             adlfs `AzureBlobFileSystem(connection_string=...).open(path, "wb")` file, the way
             a hand-written pyarrow script writes to blob storage (pyarrow's own
             `filesystem=` argument does the same through fsspec). pyarrow defaults (snappy).
         (c) ours: `run_job(task, settings=Settings.from_env())` on the task `plan()` makes
             from a one-job FULL config (primary key order_id), with a fresh run id every
             repetition (the same run id would find its load and not load again).
       Measured in this process: before each measurement the kernel's peak-RSS mark is reset
       (/proc/self/clear_refs), after it the process hands freed memory back (pyarrow's pool,
       malloc_trim); "peak" is the measurement's peak RSS, "base" the RSS it started from
       (imports and whatever earlier runs left included). --fork runs each measurement in a
       child forked from this process instead and reports the child's ru_maxrss: a clean start
       for every path, but the parent must not have run ConnectorX before the fork (its rayon
       thread pool does not survive one: a partitioned read in the child waits forever), so
       with --fork the big part runs before this process's own warm-up and each child warms
       itself with a throw-away 1,000-row run of its path first. A forked child's RSS counts
       the parent's pages only once it touches them, so it starts below the parent's.
small  the per-table cost of a 1,000-row table (`bench.orders_1000`) in this warm process:
       (a), (c) and (d) dlt alone (the same read, then a new dlt pipeline restoring its state
       from the same lake and running extract, normalize and load: the floor under (c))
       interleaved --small-repeat times per lake; min / median / max.
many   --tables 1,000-row tables (`bench.small_001`...) in one FULL config, run the way the CLI's
       `run` does it (`ingest.commands.core.execute_run`: plan -> local runner -> audit ->
       views) in this warm process with --workers 1 and 2 (2: the runner's process pool);
       total and per-table seconds. file:// by default, --many-lakes file,azurite for both.
       Each run goes into an empty lake, so the rounds are alike: a job's cost grows with the
       loads already in its dataset (dlt lists the dataset's state files), which
       --many-same-lake shows (one lake for every round, its load count printed).

Medians; every pair is printed. Numbers only: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import logging
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_run_module() -> Any:
    """bench/run.py, by path: the table definition (and psql helper) are shared with it."""
    spec = importlib.util.spec_from_file_location("_bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench_run = _load_run_module()
psql: Callable[[str], str] = bench_run.psql
CX_URL: str = bench_run.CX_URL
PG: dict[str, str] = bench_run.PG
SCHEMA: str = bench_run.SCHEMA  # "bench"

SOURCE = "bench_pg"
SMALL_ROWS = 1000
#: Azurite's well-known development account (used when the environment names none)
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
AZ = (
    os.environ.get("INGEST_TEST_AZURITE_CONNECTION_STRING")
    or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    or AZURITE
)


# --------------------------------------------------------------------------- memory


def _status_mb(field: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def rss_mb() -> float | None:
    return _status_mb("VmRSS")


#: the highest peak an in-process measurement saw (resetting the peak-RSS mark resets ru_maxrss)
_peaks_seen: list[float] = [0.0]


def process_peak_mb() -> float:
    """This process's peak RSS so far: ru_maxrss (kB on Linux), or a higher peak seen before a
    reset of the mark."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _peaks_seen[0])


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (VmHWM; Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Hand freed memory back between in-process measurements, so one path's leftovers do
    not count as the next one's peak."""
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall_s: float
    out_mb: float
    peak_mb: float | None  # this measurement's peak RSS (None: not measurable here)
    base_mb: float | None  # RSS of the measuring process when the measurement started


Work = Callable[[], tuple[float, float]]  # -> (wall seconds, output MB)


#: a forked measurement that takes longer than this has hung: it fails the benchmark
CHILD_TIMEOUT_S = 1800


def _child(work: Work, warmup: Work | None, conn: Any) -> None:
    try:
        if warmup is not None:
            warmup()
        base = rss_mb()
        wall, out = work()
        conn.send(("ok", wall, out, process_peak_mb(), base))
    except BaseException as exc:  # report it to the parent, which fails loudly
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def measure(work: Work, fork: bool, warmup: Work | None = None) -> Sample:
    """Time `work` in this process, or (`fork`) in a forked child that first runs `warmup`."""
    if not fork:
        base = rss_mb()
        has_peak = reset_peak()
        wall, out = work()
        peak = _status_mb("VmHWM") if has_peak else None
        _peaks_seen[0] = max(_peaks_seen[0], peak or 0.0)
        release_memory()
        return Sample(wall, out, peak, base)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, warmup, send))
    child.start()
    send.close()
    try:
        if receive.poll(CHILD_TIMEOUT_S):
            message = receive.recv()
        else:
            child.kill()
            message = ("error", f"no result after {CHILD_TIMEOUT_S} s (hung?); killed")
    except EOFError:
        message = ("error", "the child died without a result")
    child.join()
    if message[0] != "ok":
        raise SystemExit(f"measurement failed (exit code {child.exitcode}): {message[1]}")
    _, wall, out, peak, child_base = message
    return Sample(wall, out, peak, child_base)


def stats(values: list[float]) -> str:
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def mb(value: float | None) -> str:
    return f"{value:8.0f}" if value is not None else f"{'-':>8}"


# --------------------------------------------------------------------------- lakes


@dataclass
class Lake:
    name: str  # "file" or "azurite"
    url: str  # the lake URL ours writes to
    a_root: str  # where (a) writes: a local folder, or "<container>/a" in Azurite

    @property
    def label(self) -> str:
        return "file://" if self.name == "file" else "Azurite (az://)"

    def azure_fs(self) -> Any:
        from adlfs import AzureBlobFileSystem

        # fsspec caches the instance per process (a hand-written script makes one, too); a
        # forked child gets a fresh one (fsspec clears its cache when the pid changes)
        return AzureBlobFileSystem(connection_string=AZ)

    def sub(self, suffix: str) -> Lake:
        """Another lake next to this one."""
        return Lake(self.name, f"{self.url}-{suffix}", f"{self.a_root}-{suffix}")

    def load_markers(self) -> int:
        """Completed loads in the lake (dlt's `_dlt_loads` markers, every dataset)."""
        if self.name == "file":
            root = Path(self.url.removeprefix("file://"))
            return sum(1 for _ in root.glob("*/_dlt_loads/*"))
        fs = self.azure_fs()
        return len(fs.glob(f"{self.url.removeprefix('az://')}/*/_dlt_loads/*"))

    def load_mb(self, load_id: str) -> float:
        """MB of the Parquet files of one of our loads."""
        if not load_id:
            return 0.0
        if self.name == "file":
            root = Path(self.url.removeprefix("file://"))
            files = [p for p in root.rglob("*.parquet") if load_id in p.name]
            return sum(p.stat().st_size for p in files) / 2**20
        found = self.azure_fs().find(self.url.removeprefix("az://"), detail=True)
        return (
            sum(
                info["size"]
                for path, info in found.items()
                if load_id in path.rsplit("/", 1)[-1] and path.endswith(".parquet")
            )
            / 2**20
        )


def path_a(lake: Lake, table: str, rows: int) -> Work:
    """(a) the hand-written reference: ConnectorX -> Arrow -> pyarrow.parquet."""

    def work() -> tuple[float, float]:
        import connectorx as cx
        import pyarrow.parquet as pq

        started = time.perf_counter()
        data = cx.read_sql(CX_URL, f"SELECT * FROM {SCHEMA}.{table}", return_type="arrow")
        if lake.name == "file":
            target = Path(lake.a_root, f"{table}.parquet")
            pq.write_table(data, target)
        else:
            fs = lake.azure_fs()
            target_blob = f"{lake.a_root}/{table}.parquet"
            with fs.open(target_blob, "wb") as handle:
                pq.write_table(data, handle)
        wall = time.perf_counter() - started
        if data.num_rows != rows:
            raise SystemExit(f"(a) read {data.num_rows:,} rows from {table}, expected {rows:,}")
        del data
        if lake.name == "file":
            return wall, target.stat().st_size / 2**20
        return wall, lake.azure_fs().size(target_blob) / 2**20

    return work


def path_c(lake: Lake, config: Path, table: str, rows: int, sized: bool = True) -> Work:
    """(c) ours: run_job on the task plan() makes, with a fresh run id (`sized`: also measure
    the load's output, after the timing)."""

    def work() -> tuple[float, float]:
        from ingest.job import run_job
        from ingest.plan import plan
        from ingest.settings import Settings

        run_id = f"warm-{uuid.uuid4().hex[:12]}"
        the_plan = plan(str(config), destination=lake.url, run_id=run_id, jobs=[job_id(table)])
        task = the_plan["tasks"][0]
        started = time.perf_counter()
        result = run_job(task, settings=Settings.from_env())
        wall = time.perf_counter() - started
        if result["status"] != "SUCCESS" or result["rows_loaded"] != rows:
            raise SystemExit(
                f"(c) {table} into {lake.url}: status {result['status']}, "
                f"{result['rows_loaded']:,} rows (expected SUCCESS, {rows:,}): "
                f"{result.get('error') or result}"
            )
        return wall, lake.load_mb(result.get("load_id") or "") if sized else 0.0

    return work


def path_d(lake: Lake, table: str, rows: int) -> Work:
    """(d) dlt alone, the floor under (c): the same ConnectorX read, then a new dlt pipeline
    (a new working folder, like run_job's) restoring its state from the same lake destination
    and running extract, normalize and load. No lease, ledger, reflection, checks or audit."""

    def work() -> tuple[float, float]:
        import connectorx as cx
        import dlt

        from ingest.lake.destination import Destination

        started = time.perf_counter()
        data = cx.read_sql(CX_URL, f"SELECT * FROM {SCHEMA}.{table}", return_type="arrow")
        pipeline = dlt.pipeline(
            pipeline_name="warm_dlt_alone",
            destination=Destination.from_url(lake.url).dlt_destination(),
            dataset_name="warm_dlt_alone",
            pipelines_dir=str(Path(tempfile.gettempdir(), "warm-dlt", uuid.uuid4().hex)),
        )
        pipeline.sync_destination()
        pipeline.extract(dlt.resource(data, name=table), loader_file_format="parquet")
        pipeline.normalize()
        pipeline.load()
        wall = time.perf_counter() - started
        if data.num_rows != rows:
            raise SystemExit(f"(d) read {data.num_rows:,} rows from {table}, expected {rows:,}")
        shutil.rmtree(pipeline.pipelines_dir, ignore_errors=True)
        return wall, 0.0

    return work


# --------------------------------------------------------------------------- PostgreSQL


def ensure_orders(rows: int) -> str:
    """bench/run.py's `orders_<N>` table (created by its own code when missing). A table with
    a different row count is left alone: bench/run.py's incremental step adds rows for a
    while, and dropping the table under a running benchmark would break it."""
    table = f"orders_{rows}"
    exists = psql(
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}'"
    )
    if exists != "1":
        bench_run.create_orders(table, rows)
        return table
    count = int(psql(f"SELECT count(*) FROM {SCHEMA}.{table}"))
    if count != rows:
        raise SystemExit(
            f"{SCHEMA}.{table} has {count:,} rows, not {rows:,}: is bench/run.py (its "
            f"incremental step) running? Try again when it is done, or drop the table."
        )
    return table


def small_names(count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"small_{i:0{width}d}" for i in range(1, count + 1)]


def create_small_tables(names: list[str]) -> None:
    """The many-table run's tables, 1,000 rows each (one psql call)."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"]
    for name in names:
        statements.append(
            f"DROP TABLE IF EXISTS {SCHEMA}.{name}; CREATE TABLE {SCHEMA}.{name} AS SELECT "
            "g::bigint AS order_id, md5(g::text) AS note, "
            "timestamptz '2024-01-01' + (g || ' seconds')::interval AS updated_at "
            f"FROM generate_series(1, {SMALL_ROWS}) g; "
            f"ALTER TABLE {SCHEMA}.{name} ADD PRIMARY KEY (order_id)"
        )
    psql("; ".join(statements))


def drop_small_tables(names: list[str]) -> None:
    if names:
        psql("; ".join(f"DROP TABLE IF EXISTS {SCHEMA}.{name}" for name in names))


def job_id(table: str) -> str:
    return f"w_{table}"


def write_config(path: Path, tables: list[str]) -> Path:
    """A FULL job per table (FULL: the fair comparison for a one-time copy)."""
    lines = ["job_id,enabled,source_type,source_name,schema_name,table_name,load_type,primary_key"]
    lines += [f"{job_id(t)},Y,postgresql,{SOURCE},{SCHEMA},{t},FULL,order_id" for t in tables]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- parts


def bench_big(
    sizes: list[int], lakes: list[Lake], repeat: int, scratch: Path, fork: bool
) -> list[str]:
    summary: list[str] = []
    where = (
        "each in a child forked from this process (after a throw-away 1,000-row run in it)"
        if fork
        else "in this process"
    )
    small = ensure_orders(SMALL_ROWS) if fork else ""
    for rows in sizes:
        table = ensure_orders(rows)
        config = write_config(scratch / f"{table}.csv", [table, small] if fork else [table])
        for lake in lakes:
            title = (
                f"\n{rows:,} rows, {lake.label} lake: {repeat} pair(s) interleaved (a, c, ...), "
                f"{where}"
            )
            print(title, flush=True)
            header = (
                f"  {'pair':>4} {'(a) s':>8} {'(c) s':>8} {'c/a':>6} "
                f"{'(a) peak':>8} {'base':>6} {'(c) peak':>8} {'base':>6}   (MB)"
            )
            print(header, flush=True)
            pairs: list[tuple[Sample, Sample]] = []
            for index in range(1, repeat + 1):
                warm_a = path_a(lake, small, SMALL_ROWS) if fork else None
                warm_c = path_c(lake, config, small, SMALL_ROWS, sized=False) if fork else None
                a = measure(path_a(lake, table, rows), fork, warm_a)
                c = measure(path_c(lake, config, table, rows), fork, warm_c)
                pairs.append((a, c))
                print(
                    f"  {index:>4} {a.wall_s:8.3f} {c.wall_s:8.3f} {c.wall_s / a.wall_s:6.2f} "
                    f"{mb(a.peak_mb)} {mb(a.base_mb)[2:]} {mb(c.peak_mb)} {mb(c.base_mb)[2:]}",
                    flush=True,
                )
            a_med = statistics.median(a.wall_s for a, _ in pairs)
            c_med = statistics.median(c.wall_s for _, c in pairs)
            ratio_med = statistics.median(c.wall_s / a.wall_s for a, c in pairs)
            peaks_a = [a.peak_mb for a, _ in pairs if a.peak_mb is not None]
            peaks_c = [c.peak_mb for _, c in pairs if c.peak_mb is not None]
            out_a = statistics.median(a.out_mb for a, _ in pairs)
            out_c = statistics.median(c.out_mb for _, c in pairs)
            lines = [
                f"  median: (a) {a_med:.3f} s ({rows / a_med:,.0f} rows/s), "
                f"(c) {c_med:.3f} s ({rows / c_med:,.0f} rows/s); "
                f"(c)/(a) of medians {c_med / a_med:.2f}, median pair ratio {ratio_med:.2f}",
                f"  peak RSS (max over runs): (a) {mb(max(peaks_a, default=None)).strip()} MB, "
                f"(c) {mb(max(peaks_c, default=None)).strip()} MB; output: (a) {out_a:.2f} MB "
                f"(pyarrow defaults, snappy), (c) {out_c:.2f} MB",
                f"  this process's peak RSS so far (ru_maxrss): {process_peak_mb():.0f} MB",
            ]
            print("\n".join(lines), flush=True)
            summary.append(
                f"{rows:>10,} {lake.label:<16} (a) {a_med:7.3f} s  (c) {c_med:7.3f} s  "
                f"c/a {c_med / a_med:5.2f} (pairs: median {ratio_med:.2f}, "
                f"{min(c.wall_s / a.wall_s for a, c in pairs):.2f}-"
                f"{max(c.wall_s / a.wall_s for a, c in pairs):.2f})  "
                f"peak (c) {mb(max(peaks_c, default=None)).strip()} MB"
            )
    return summary


def bench_small(lakes: list[Lake], repeat: int, scratch: Path) -> list[str]:
    table = ensure_orders(SMALL_ROWS)
    config = write_config(scratch / f"{table}.csv", [table])
    summary = []
    for lake in lakes:
        pairs = []
        path_d(lake, table, SMALL_ROWS)()  # its first run creates the dataset
        for _ in range(repeat):
            a = path_a(lake, table, SMALL_ROWS)()[0]
            c = path_c(lake, config, table, SMALL_ROWS, sized=False)()[0]
            d = path_d(lake, table, SMALL_ROWS)()[0]
            pairs.append((a, c, d))
        a_times, c_times = [p[0] for p in pairs], [p[1] for p in pairs]
        d_times = [p[2] for p in pairs]
        lines = [
            f"\n1,000-row table, warm, {lake.label} lake: {repeat} rounds (a, c, d) in this process",
            "  rounds (a)/(c)/(d) s: " + ", ".join(f"{a:.3f}/{c:.3f}/{d:.3f}" for a, c, d in pairs),
            f"  (a) hand-written: {stats(a_times)} s",
            f"  (c) run_job:      {stats(c_times)} s",
            f"  (d) dlt alone:    {stats(d_times)} s  (the same read; extract, normalize, load)",
        ]
        print("\n".join(lines), flush=True)
        summary.append(
            f"1,000-row table, {lake.label:<16} (a) {statistics.median(a_times):.3f} s  "
            f"(c) {statistics.median(c_times):.3f} s (min {min(c_times):.3f}, "
            f"max {max(c_times):.3f})  (d) dlt alone {statistics.median(d_times):.3f} s"
        )
    return summary


def bench_many(
    lakes: list[Lake],
    count: int,
    workers: list[int],
    repeat: int,
    scratch: Path,
    same_lake: bool = False,
) -> list[str]:
    from ingest.commands.core import execute_run
    from ingest.settings import Settings

    names = small_names(count)
    print(f"\ncreating {count} tables of {SMALL_ROWS:,} rows ({SCHEMA}.{names[0]}...)", flush=True)
    create_small_tables(names)
    config = write_config(scratch / "many.csv", names)
    summary = []

    def one_run(lake: Lake, n_workers: int, jobs: list[str] | None = None) -> float:
        started = time.perf_counter()
        result, results = execute_run(
            Settings.from_env(),
            config_path=str(config),
            destination=lake.url,
            jobs=jobs,
            workers=n_workers,
        )
        wall = time.perf_counter() - started
        expected = len(jobs) if jobs else count
        failed = [r for r in results if r["status"] != "SUCCESS"]
        rows = sum(int(r.get("rows_loaded") or 0) for r in results)
        if failed or len(results) != expected or rows != expected * SMALL_ROWS:
            first = failed[0] if failed else {}
            raise SystemExit(
                f"many-table run into {lake.url} with {n_workers} worker(s): "
                f"{len(failed)} of {len(results)} jobs not SUCCESS, {rows:,} rows; "
                f"first: {first.get('job_id')}: {first.get('error')}"
            )
        if result.get("audit_error"):
            raise SystemExit(f"many-table run: audit not written: {result['audit_error']}")
        return wall

    try:
        for lake in lakes:
            for n_workers in workers:  # warm-up: a 2-table run (starts the pool's fork server)
                one_run(lake.sub("warmup"), n_workers, [job_id(t) for t in names[:2]])
            times: dict[int, list[float]] = {w: [] for w in workers}
            print(
                f"\n{count} tables x {SMALL_ROWS:,} rows, {lake.label} lake, plan -> local "
                f"runner -> audit, warm process, {repeat} round(s) interleaved "
                f"(workers {', '.join(map(str, workers))}), "
                + (
                    "all into one lake (its loads accumulate)"
                    if same_lake
                    else "each run into an empty lake"
                ),
                flush=True,
            )
            for index in range(1, repeat + 1):
                cells = []
                for n_workers in workers:
                    target = lake if same_lake else lake.sub(f"r{index}w{n_workers}")
                    before = target.load_markers()
                    wall = one_run(target, n_workers)
                    times[n_workers].append(wall)
                    cells.append(
                        f"workers {n_workers}: {wall:.2f} s ({wall / count:.3f} s/table"
                        + (f", {before:,} loads in the lake before" if same_lake else "")
                        + ")"
                    )
                print(f"  round {index}: " + "; ".join(cells), flush=True)
            for n_workers in workers:
                med = statistics.median(times[n_workers])
                line = (
                    f"{count} tables, {lake.label:<16} workers {n_workers}: median {med:.2f} s, "
                    f"{med / count:.3f} s per table"
                )
                if n_workers != workers[0]:
                    base = statistics.median(times[workers[0]])
                    line += f" ({med / base:.2f} of workers {workers[0]})"
                print("  " + line, flush=True)
                summary.append(line)
    finally:
        drop_small_tables(names)
    return summary


# --------------------------------------------------------------------------- set-up


def import_dlt_seconds(runs: int = 3) -> float:
    """`python -c "import dlt"` in a fresh process: the machine's speed reference."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import dlt"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_facts() -> str:
    import adlfs
    import connectorx
    import dlt
    import pyarrow

    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"machine: {os.cpu_count()} cores ({allowed} usable by this process), "
            f"load average {load}; Python {sys.version.split()[0]}; "
            f"PostgreSQL {psql('SHOW server_version')}",
            f"versions: dlt {dlt.__version__}, connectorx {connectorx.__version__}, "
            f"pyarrow {pyarrow.__version__}, adlfs {adlfs.__version__}",
            f"reference: `python -c 'import dlt'` in a fresh process: "
            f"{import_dlt_seconds():.3f} s (median of 3)",
        ]
    )


@contextlib.contextmanager
def azurite_container(needed: bool) -> Iterator[str | None]:
    if not needed:
        yield None
        return
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(AZ)
    name = f"bench-warm-{uuid.uuid4().hex[:8]}"
    service.create_container(name)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            service.delete_container(name)


def make_lakes(names: list[str], scratch: Path, container: str | None, tag: str) -> list[Lake]:
    lakes = []
    for name in names:
        if name == "file":
            a_root = scratch / tag / "a"
            a_root.mkdir(parents=True, exist_ok=True)
            lakes.append(Lake("file", (scratch / tag / "lake").as_uri(), str(a_root)))
        else:
            # a lake per part, side by side in the container
            lakes.append(Lake("azurite", f"az://{container}/{tag}", f"{container}/{tag}-a"))
    return lakes


def csv_list(text: str, allowed: set[str] | None = None) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if allowed is not None and (unknown := set(items) - allowed):
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(sorted(unknown))}")
    return items


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="1000000,5000000",
        help="big-table sizes in rows, comma-separated (default 1000000,5000000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="pairs per size and lake (5)")
    parser.add_argument(
        "--lakes",
        type=lambda t: csv_list(t, {"file", "azurite"}),
        default=["file", "azurite"],
        help="lakes for the big and small parts: file,azurite (default both)",
    )
    parser.add_argument(
        "--parts",
        type=lambda t: csv_list(t, {"big", "small", "many"}),
        default=["big", "small", "many"],
        help="what to run: big,small,many (default all)",
    )
    parser.add_argument("--small-repeat", type=int, default=20, help="1,000-row pairs (20)")
    parser.add_argument("--tables", type=int, default=200, help="tables in the many part (200)")
    parser.add_argument(
        "--many-workers",
        type=lambda t: [int(x) for x in csv_list(t)],
        default=[1, 2],
        help="--workers values of the many part (default 1,2)",
    )
    parser.add_argument(
        "--many-lakes",
        type=lambda t: csv_list(t, {"file", "azurite"}),
        default=["file"],
        help="lakes for the many part (default file; file,azurite for both)",
    )
    parser.add_argument("--many-repeat", type=int, default=3, help="many-table rounds (3)")
    parser.add_argument(
        "--many-same-lake",
        action="store_true",
        help="many part: every round into the same lake, so its loads accumulate as in daily "
        "runs (default: each run into an empty lake)",
    )
    parser.add_argument(
        "--fork",
        action="store_true",
        help="big part: each measurement in a child forked from this process (its own peak "
        "RSS) instead of in this process",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in csv_list(args.sizes)]
    fork = args.fork and "fork" in multiprocessing.get_all_start_methods()

    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-warm-"))
    os.environ.update(
        RUNTIME__DLTHUB_TELEMETRY="false",
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        **{f"SOURCES__{SOURCE.upper()}__{key}": value for key, value in _pg_env().items()},
        AZURE_STORAGE_CONNECTION_STRING=AZ,
        INGEST_WORK_DIR=str(scratch / "work"),
    )
    os.environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    logging.basicConfig(level=logging.WARNING)

    # everything both paths import, once (the engine as the runner imports it)
    started = time.perf_counter()
    import adlfs  # noqa: F401
    import azure.storage.blob  # noqa: F401
    import connectorx  # noqa: F401
    import dlt  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import ingest.commands.core  # noqa: F401
    import ingest.job  # noqa: F401
    import ingest.plan  # noqa: F401
    import ingest.runner  # noqa: F401
    from ingest.runtime.warmup import preload_engine

    preload_engine()
    imported = time.perf_counter() - started

    print(machine_facts(), flush=True)
    print(
        f"this process: imports {imported:.2f} s; big part measured "
        + ("in forked children" if fork else "in this process"),
        flush=True,
    )
    summary: list[str] = []
    big_small = [p for p in args.parts if p in ("big", "small")]
    needs_azurite = bool(big_small and "azurite" in args.lakes) or (
        "many" in args.parts and "azurite" in args.many_lakes
    )
    try:
        with azurite_container(needs_azurite) as container:
            lakes = make_lakes(args.lakes, scratch, container, "one")
            if "big" in args.parts and fork:
                # before this process runs ConnectorX: its rayon thread pool does not survive
                # a fork (a child's partitioned read would wait forever on the parent's threads)
                summary += bench_big(sizes, lakes, args.repeat, scratch, fork=True)
            if "small" in args.parts or ("big" in args.parts and not fork):
                # throw-away runs: first connection, lake folders, dlt's first pipeline
                table = ensure_orders(SMALL_ROWS)
                config = write_config(scratch / "warmup.csv", [table])
                for lake in lakes:
                    path_a(lake, table, SMALL_ROWS)()
                    path_c(lake, config, table, SMALL_ROWS, sized=False)()
                print(
                    f"\nwarm-up done; this process's RSS {rss_mb() or 0:.0f} MB, "
                    f"peak {process_peak_mb():.0f} MB",
                    flush=True,
                )
            if "big" in args.parts and not fork:
                summary += bench_big(sizes, lakes, args.repeat, scratch, fork=False)
            if "small" in args.parts:
                summary += bench_small(lakes, args.small_repeat, scratch)
            if "many" in args.parts:
                many_lakes = make_lakes(args.many_lakes, scratch, container, "many")
                summary += bench_many(
                    many_lakes,
                    args.tables,
                    args.many_workers,
                    args.many_repeat,
                    scratch,
                    args.many_same_lake,
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\nsummary (medians)\n" + "\n".join(summary))
    print(f"this process's peak RSS (ru_maxrss): {process_peak_mb():.0f} MB")
    return 0


def _pg_env() -> dict[str, str]:
    return {"HOST": PG["host"], "PORT": PG["port"], "DATABASE": PG["db"], "USERNAME": PG["user"]}


if __name__ == "__main__":
    sys.exit(main())
