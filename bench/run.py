"""Throughput, memory and fixed-cost benchmark: `python3 tasks.py bench` (or
`.venv/bin/python bench/run.py --help`).

Creates an 8-column `orders` table in the local PostgreSQL (generate_series, fixed seed) at each
size, then times whole processes, medians of --repeat runs, interleaved (a, b, c, a, b, c, ...)
so that a slow spell of the machine hits every path alike:
  (a) hand-written ConnectorX -> pyarrow.parquet (bench/path_connectorx.py)
  (b) dlt sql_table, pyarrow backend (bench/path_dlt_pyarrow.py)
  (c) ours: `python -m ingest run` on a one-job config into a file:// lake
  (c) incremental with 1% new rows, and with none
plus the fixed costs: a 1,000-row table end to end, 50 such tables serial and with
--workers 2, and `import function_app`.
Numbers only: nothing here asserts a speed (tests never do).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "db": "test"}
CX_URL = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{PG['db']}"
SA_URL = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{PG['db']}"
SCHEMA = "bench"


@dataclass
class Measure:
    wall_s: float
    peak_mb: float
    out_mb: float


def psql(sql: str) -> str:
    proc = subprocess.run(
        [
            "psql",
            "-h",
            PG["host"],
            "-p",
            PG["port"],
            "-U",
            PG["user"],
            "-d",
            PG["db"],
            "-qAtX",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def create_orders(table: str, rows: int) -> None:
    exists = psql(
        f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{SCHEMA}' "
        f"AND table_name = '{table}'"
    )
    if exists == "1" and psql(f"SELECT count(*) FROM {SCHEMA}.{table}") == str(rows):
        return
    print(f"creating {SCHEMA}.{table} with {rows:,} rows ...", flush=True)
    psql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}; DROP TABLE IF EXISTS {SCHEMA}.{table}")
    psql(
        f"SELECT setseed(0.42); CREATE TABLE {SCHEMA}.{table} AS SELECT "
        "g::bigint AS order_id, (random() * 100000)::int AS customer_id, "
        "timestamptz '2024-01-01' + (g || ' seconds')::interval AS created_at, "
        "round((random() * 10000)::numeric, 2)::numeric(12, 2) AS amount, "
        "(ARRAY['new','paid','shipped','refunded'])[1 + (g % 4)] AS status, "
        "md5(g::text) AS note, "
        "timestamptz '2024-01-01' + (g || ' seconds')::interval AS updated_at "
        f"FROM generate_series(1, {rows}) g"
    )
    psql(
        f"ALTER TABLE {SCHEMA}.{table} ADD PRIMARY KEY (order_id); "
        f"CREATE INDEX ON {SCHEMA}.{table} (updated_at); ANALYZE {SCHEMA}.{table}"
    )


def size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*.parquet")) / 2**20 if path.exists() else 0.0


def run_process(cmd: list[str], env: dict[str, str], out: Path) -> Measure:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, _, status, usage = None, None, *os.wait4(proc.pid, 0)[1:]
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{stdout.decode()}\n{stderr.decode()}")
    return Measure(wall, usage.ru_maxrss / 1024, size_mb(out))


def median(measures: list[Measure]) -> Measure:
    return Measure(
        statistics.median(m.wall_s for m in measures),
        statistics.median(m.peak_mb for m in measures),
        statistics.median(m.out_mb for m in measures),
    )


def job_config(path: Path, tables: list[str], load_type: str = "INCREMENTAL") -> Path:
    lines = [
        "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
        "watermark_column,primary_key"
    ]
    for index, table in enumerate(tables, start=1):
        lines.append(
            f"b{index:03d},Y,postgresql,bench_pg,{SCHEMA},{table},{load_type},updated_at,order_id"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def ours(config: Path, lake: Path, env: dict[str, str], *extra: str) -> list[str]:
    return [
        PY,
        "-m",
        "ingest",
        "-q",
        "run",
        "--config",
        str(config),
        "--destination",
        lake.as_uri(),
        *extra,
    ]


def row(name: str, rows: int, m: Measure, reference: Measure | None) -> str:
    ratio = f"{m.wall_s / reference.wall_s:5.2f}" if reference else "    -"
    rate = f"{rows / m.wall_s:>12,.0f}" if rows else f"{'-':>12}"
    return f"{name:<44} {m.wall_s:8.2f} {rate} {m.peak_mb:8.0f} {m.out_mb:8.1f} {ratio}"


HEADER = f"{'path':<44} {'wall s':>8} {'rows/s':>12} {'peak MB':>8} {'out MB':>8} {'÷(a)':>5}"


def bench_size(rows: int, repeat: int, scratch: Path, env: dict[str, str]) -> list[str]:
    table = f"orders_{rows}"
    create_orders(table, rows)
    lines = [f"\n{rows:,} rows ({repeat} runs each, median)", HEADER, "-" * len(HEADER)]

    a_out, b_out, c_out = scratch / "a.parquet", scratch / "b", scratch / "c"
    config = job_config(scratch / f"{table}.csv", [table])
    paths = {
        "a": (
            lambda: (
                [PY, str(ROOT / "bench/path_connectorx.py"), CX_URL, f"{SCHEMA}.{table}"]
                + [str(a_out)]
            ),
            a_out,
        ),
        "b": (
            lambda: [
                PY,
                str(ROOT / "bench/path_dlt_pyarrow.py"),
                SA_URL,
                SCHEMA,
                table,
                b_out.as_uri(),
                str(scratch / "b_work" / str(time.time())),
            ],
            b_out,
        ),
        "c": (lambda: ours(config, c_out, env), c_out),
    }
    # interleaved (a, b, c, a, b, c, ...): a slow spell of the machine hits every path alike
    runs: dict[str, list[Measure]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, (make_cmd, out) in paths.items():
            shutil.rmtree(out, ignore_errors=True)
            if out.suffix != ".parquet":
                out.mkdir(parents=True)
            runs[name].append(run_process(make_cmd(), env, out))
    a, b, c = (median(runs[name]) for name in ("a", "b", "c"))
    lines.append(row("(a) connectorx + pyarrow (hand-written)", rows, a, a))
    lines.append(row("(b) dlt sql_table backend=pyarrow", rows, b, a))
    lines.append(row("(c) ours: python -m ingest run (full)", rows, c, a))
    ratios = sorted(cm.wall_s / am.wall_s for am, cm in zip(runs["a"], runs["c"], strict=True))
    lines.append("  (c)/(a) per interleaved pair: " + ", ".join(f"{ratio:.2f}" for ratio in ratios))

    # incremental: the lake of the last full run holds the state; add 1% rows per repetition
    new_rows = max(rows // 100, 1)
    incremental, empty = [], []
    base = int(psql(f"SELECT max(order_id) FROM {SCHEMA}.{table}"))
    try:
        for rep in range(repeat):
            first = base + rep * new_rows + 1
            psql(
                f"INSERT INTO {SCHEMA}.{table} SELECT g, 1, now(), 1.00, 'new', md5(g::text), "
                f"timestamptz '2030-01-01' + (g || ' seconds')::interval "
                f"FROM generate_series({first}, {first + new_rows - 1}) g"
            )
            incremental.append(run_process(ours(config, c_out, env), env, c_out))
            empty.append(run_process(ours(config, c_out, env), env, c_out))
    finally:
        psql(f"DELETE FROM {SCHEMA}.{table} WHERE order_id > {base}")
    lines.append(
        row(f"(c) incremental, {new_rows:,} new rows (1%)", new_rows, median(incremental), a)
    )
    lines.append(row("(c) incremental, no new rows", 0, median(empty), a))
    return lines


def bench_fixed_cost(repeat: int, scratch: Path, env: dict[str, str]) -> list[str]:
    lines = ["\nfixed cost (median of runs)", HEADER, "-" * len(HEADER)]
    small = [f"small_{i:02d}" for i in range(50)]
    psql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    for name in small:
        psql(
            f"DROP TABLE IF EXISTS {SCHEMA}.{name}; CREATE TABLE {SCHEMA}.{name} AS SELECT "
            "g::bigint AS order_id, md5(g::text) AS note, "
            "timestamptz '2024-01-01' + (g || ' seconds')::interval AS updated_at "
            "FROM generate_series(1, 1000) g; "
            f"ALTER TABLE {SCHEMA}.{name} ADD PRIMARY KEY (order_id)"
        )
    one = job_config(scratch / "one.csv", small[:1], "FULL")
    fifty = job_config(scratch / "fifty.csv", small, "FULL")
    out = scratch / "fixed"

    cases = {
        "single": ([], one),
        "serial": ([], fifty),
        "parallel": (["--workers", "2"], fifty),
    }
    # interleaved like the table sizes: one of each per repetition
    runs: dict[str, list[Measure]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (cmd_args, config) in cases.items():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            runs[name].append(run_process(ours(config, out, env, *cmd_args), env, out))
    single, serial, parallel = (median(runs[name]) for name in cases)
    lines.append(row("1 table x 1,000 rows, one process", 1000, single, None))
    lines.append(row("50 tables x 1,000 rows, serial", 50_000, serial, None))
    lines.append(row("50 tables x 1,000 rows, --workers 2", 50_000, parallel, None))
    pairs = sorted(
        p.wall_s / s.wall_s for s, p in zip(runs["serial"], runs["parallel"], strict=True)
    )
    lines.append(
        f"  serial time per table: {serial.wall_s / 50:.3f} s; "
        f"--workers 2 / serial: {parallel.wall_s / serial.wall_s:.2f} "
        f"(per interleaved pair: {', '.join(f'{r:.2f}' for r in pairs)})"
    )
    # the cold start, and two references that put the absolute limits in context: the
    # Functions SDKs alone (function_app cannot import faster) and dlt alone (~0.6 s on the
    # machine the limits were set on)
    snippets = {
        "import function_app": "import function_app",
        "SDKs only: import azure.functions, azure.durable_functions": (
            "import azure.functions, azure.durable_functions"
        ),
        "reference: import dlt": "import dlt",
    }
    timings: dict[str, list[float]] = {name: [] for name in snippets}
    for _ in range(max(repeat, 5)):
        for name, code in snippets.items():
            start = time.perf_counter()
            subprocess.run([PY, "-c", code], cwd=ROOT, env=env, check=True)
            timings[name].append(time.perf_counter() - start)
    for name, values in timings.items():
        lines.append(f"  {name} (whole process): {statistics.median(values):.3f} s")
    for name in small:
        psql(f"DROP TABLE IF EXISTS {SCHEMA}.{name}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="1000000,5000000",
        help="table sizes in rows, comma-separated (default 1000000,5000000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--skip-fixed", action="store_true", help="skip the fixed-cost part")
    args = parser.parse_args()
    env = dict(
        os.environ,
        RUNTIME__DLTHUB_TELEMETRY="false",
        SOURCES__BENCH_PG__HOST=PG["host"],
        SOURCES__BENCH_PG__PORT=PG["port"],
        SOURCES__BENCH_PG__DATABASE=PG["db"],
        SOURCES__BENCH_PG__USERNAME=PG["user"],
        PYTHONPATH=str(ROOT),
    )
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    env["INGEST_WORK_DIR"] = str(scratch / "work")
    report = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PostgreSQL {psql('SHOW server_version')}"
    ]
    try:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            lines = bench_size(size, args.repeat, scratch, env)
            report += lines
            print("\n".join(lines), flush=True)
        if not args.skip_fixed:
            report += bench_fixed_cost(args.repeat, scratch, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
