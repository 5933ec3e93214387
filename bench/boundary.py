"""The boundary state: many rows sharing the last watermark value. `.venv/bin/python
bench/boundary.py --help` (PostgreSQL on 127.0.0.1:5432; `python3 tasks.py services` starts it).

(a) --rows rows (default one million) sharing one `updated_at` value, keyed by `id`
    (`bench.boundary_<rows>`, an index on `updated_at`). An INCREMENTAL first load, then a run
    after a few new rows (a later `updated_at`), then a run after a few new rows *at* the last
    value. Each a `python -m ingest run` process (wall time, peak RSS from wait4); after each,
    the job's state as committed to the lake (`<source>/_dlt_pipeline_state/`, the newest file
    of the job: its size on disk, the state decompressed, and in it our ledger entry and dlt's
    per-row hashes). For contrast, the same first load with dlt's own de-duplication (the
    incremental's `primary_key` left to dlt: one hash per row at the last value).
(b) TPC-H at scale factor 1: `tpchgen-cli` (PyPI; installed into this venv when missing)
    writes `orders` and `lineitem` as CSV, they are copied into PostgreSQL (schema `tpch`)
    with the primary keys TPC-H defines (`o_orderkey`; `l_orderkey, l_linenumber`), then
    `updated_at timestamptz DEFAULT now()` is added to both (so every row has the same value)
    and indexed. Both tables in one `python -m ingest run`, interleaved --repeat times: all-FULL
    into a new lake, and INCREMENTAL on `updated_at` with `delete_detection = keys` into a new
    lake. Then the refresh functions of the benchmark, 0.1 % of the orders each: RF1 inserts
    new orders (with line items copied from existing ones), RF2 deletes orders and their line
    items, and orders are updated (`o_totalprice`, `updated_at = now()`); the next
    INCREMENTAL run, and one with nothing new. Finally the current views are compared with
    PostgreSQL: row counts, `sum(o_totalprice)` / `sum(l_extendedprice)`, and `EXCEPT ALL`
    both ways over every column (the source read with ConnectorX).
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "db": "test"}
CX_URL = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{PG['db']}"
SOURCE = "bench_pg"
TPCHGEN = "tpchgen-cli==4.0.0"
HEADER = (
    "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
    "watermark_column,primary_key,delete_detection"
)
#: run the CLI with dlt's own boundary de-duplication (the incremental's primary_key left to
#: dlt, which then keeps a hash of every row at the last watermark value)
DLT_DEFAULT = """
import sys
import dlt.sources
original = dlt.sources.incremental
def incremental(*args, **kwargs):
    kwargs.pop("primary_key", None)
    return original(*args, **kwargs)
dlt.sources.incremental = incremental
from ingest.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass
class Run:
    wall_s: float
    peak_mb: float
    results: list[dict[str, Any]] = field(default_factory=list)

    def job(self, job_id: str) -> dict[str, Any]:
        return next(r for r in self.results if r["job_id"] == job_id)


def run_cli(env: dict[str, str], config: Path, lake: str, *, dlt_default: bool = False) -> Run:
    """`python -m ingest run --json` in its own process: wall time, peak RSS, the results."""
    args = ["-q", "run", "--config", str(config), "--destination", lake, "--json"]
    cmd = [PY, "-c", DLT_DEFAULT, *args] if dlt_default else [PY, "-m", "ingest", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    code = os.waitstatus_to_exitcode(status)
    try:
        results = json.loads(stdout.decode())["results"]
    except ValueError:
        results = []
    if code != 0 or any(r["status"] != "SUCCESS" for r in results):
        raise SystemExit(f"run failed ({code}):\n{stdout.decode()}\n{stderr.decode()[-3000:]}")
    return Run(wall, usage.ru_maxrss / 1024, results)


def psql(sql: str) -> str:
    proc = subprocess.run(
        ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", PG["db"]]
        + ["-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def state_size(lake_dir: Path, pipeline: str) -> dict[str, Any]:
    """The job's newest state file in the lake: bytes on disk, decompressed, our ledger entry,
    dlt's per-row hashes."""
    from dlt.common.versioned_state import decompress_state

    folder = lake_dir / SOURCE / "_dlt_pipeline_state"
    files = [p for p in folder.iterdir() if p.name.startswith(f"{pipeline}__")]
    newest = max(files, key=lambda p: float(p.name[len(pipeline) + 2 :].split("__")[0]))
    stored = json.loads(newest.read_text())
    state = decompress_state(stored["state"])
    entry: dict[str, Any] = {}
    hashes = 0
    for source in (state.get("sources") or {}).values():
        entry = source.get("ingest") or entry
        for resource in (source.get("resources") or {}).values():
            for cursor in (resource.get("incremental") or {}).values():
                hashes += len(cursor.get("unique_hashes") or ())
    boundary = entry.get("boundary") or {}
    return {
        "file_kb": newest.stat().st_size / 1024,
        "state_kb": len(json.dumps(state, default=str)) / 1024,
        "ledger_kb": len(json.dumps(entry, default=str)) / 1024,
        "boundary_rows": boundary.get("rows"),
        "boundary_hashes": len(boundary.get("hashes") or ()),
        "dlt_hashes": hashes,
    }


def describe_state(state: dict[str, Any]) -> str:
    return (
        f"state file {state['file_kb']:.1f} KB (decompressed {state['state_kb']:.1f} KB, our "
        f"ledger entry {state['ledger_kb']:.1f} KB: boundary {state['boundary_rows']:,} rows, "
        f"{state['boundary_hashes']:,} hashes; dlt's hashes {state['dlt_hashes']:,})"
    )


def env_for(scratch: Path) -> dict[str, str]:
    env = dict(
        os.environ,
        RUNTIME__DLTHUB_TELEMETRY="false",
        PYTHONPATH=str(ROOT),
        INGEST_WORK_DIR=str(scratch / "work"),
        **{
            f"SOURCES__{SOURCE.upper()}__{k}": v
            for k, v in {
                "HOST": PG["host"],
                "PORT": PG["port"],
                "DATABASE": PG["db"],
                "USERNAME": PG["user"],
            }.items()
        },
    )
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    return env


def new_lake(scratch: Path, name: str) -> tuple[Path, str]:
    folder = scratch / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder, folder.as_uri()


# ------------------------------------------------------------------------------------------
# (a) one million rows at one watermark value


def part_a(scratch: Path, rows: int, new_rows: int) -> list[str]:
    env = env_for(scratch)
    table = f"boundary_{rows}"
    psql(
        f"CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.{table}; "
        f"CREATE TABLE bench.{table} AS SELECT g::bigint AS id, "
        "round((g % 100000)::numeric / 7, 2)::numeric(12, 2) AS amount, md5(g::text) AS note, "
        "timestamptz '2024-06-01 12:00:00+00' AS updated_at "
        f"FROM generate_series(1, {rows}) g; "
        f"ALTER TABLE bench.{table} ADD PRIMARY KEY (id); "
        f"CREATE INDEX ON bench.{table} (updated_at); ANALYZE bench.{table}"
    )
    config = scratch / "a.csv"
    config.write_text(
        f"{HEADER}\na1,Y,postgresql,{SOURCE},bench,{table},INCREMENTAL,updated_at,id,\n"
    )
    pipeline = f"{SOURCE}__{table}"
    lines = [f"(a) {rows:,} rows sharing one updated_at value, keyed by id"]
    lake_dir, lake = new_lake(scratch, "lake_a")
    first = run_cli(env, config, lake)
    lines.append(
        f"  first load: {first.wall_s:.2f} s, peak {first.peak_mb:.0f} MB; "
        + describe_state(state_size(lake_dir, pipeline))
    )
    top = rows
    psql(
        f"INSERT INTO bench.{table} SELECT g, 1.00, 'new', "
        f"timestamptz '2024-06-02 00:00:00+00' + g * interval '1 ms' "
        f"FROM generate_series({top + 1}, {top + new_rows}) g"
    )
    after = run_cli(env, config, lake)
    lines.append(
        f"  next run, {new_rows} new rows above it: {after.wall_s:.2f} s, peak "
        f"{after.peak_mb:.0f} MB, {after.job('a1')['rows_loaded']:,} rows landed; "
        + describe_state(state_size(lake_dir, pipeline))
    )
    # new rows at the new boundary's value: the stored boundary changed
    top += new_rows
    psql(
        f"INSERT INTO bench.{table} SELECT g, 2.00, 'late', "
        f"(SELECT max(updated_at) FROM bench.{table}) "
        f"FROM generate_series({top + 1}, {top + 10}) g"
    )
    late = run_cli(env, config, lake)
    lines.append(
        f"  next run, 10 new rows at the last value: {late.wall_s:.2f} s, peak "
        f"{late.peak_mb:.0f} MB, {late.job('a1')['rows_loaded']:,} rows landed"
    )
    # the same first load with dlt's own de-duplication (per-row hashes), for contrast
    psql(f"DELETE FROM bench.{table} WHERE id > {rows}")
    lake_dir, lake = new_lake(scratch, "lake_a_dlt")
    default = run_cli(env, config, lake, dlt_default=True)
    lines.append(
        f"  for contrast, dlt's own de-duplication (per-row hashes): first load "
        f"{default.wall_s:.2f} s, peak {default.peak_mb:.0f} MB; "
        + describe_state(state_size(lake_dir, pipeline))
    )
    print("\n".join(lines), flush=True)
    psql(f"DROP TABLE IF EXISTS bench.{table}")
    return lines


# ------------------------------------------------------------------------------------------
# (b) TPC-H at scale factor 1

ORDERS_DDL = """
CREATE TABLE tpch.orders (
    o_orderkey bigint NOT NULL, o_custkey bigint NOT NULL, o_orderstatus char(1) NOT NULL,
    o_totalprice numeric(15, 2) NOT NULL, o_orderdate date NOT NULL,
    o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL,
    o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL
)"""
LINEITEM_DDL = """
CREATE TABLE tpch.lineitem (
    l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
    l_linenumber integer NOT NULL, l_quantity numeric(15, 2) NOT NULL,
    l_extendedprice numeric(15, 2) NOT NULL, l_discount numeric(15, 2) NOT NULL,
    l_tax numeric(15, 2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
    l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
    l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL,
    l_comment varchar(44) NOT NULL
)"""
KEYS = {"orders": "o_orderkey", "lineitem": "l_orderkey,l_linenumber"}
SUMS = {"orders": "o_totalprice", "lineitem": "l_extendedprice"}


def tpchgen() -> Path:
    found = shutil.which("tpchgen-cli", path=str(Path(PY).parent))
    if found:
        return Path(found)
    print(f"installing {TPCHGEN} into {Path(PY).parent.parent} ...", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", TPCHGEN], check=True)
    return Path(PY).parent / "tpchgen-cli"


def create_tpch(scratch: Path, scale: float) -> dict[str, float]:
    """orders and lineitem at `scale` in PostgreSQL schema tpch; seconds per step."""
    timings = {}
    clock = time.perf_counter()
    data = scratch / "tpch"
    subprocess.run(
        [str(tpchgen()), "csv", "-s", str(scale), "-T", "orders", "-T", "lineitem"]
        + ["-o", str(data), "--overwrite"],
        check=True,
    )
    timings["generate"] = time.perf_counter() - clock
    clock = time.perf_counter()
    psql("DROP SCHEMA IF EXISTS tpch CASCADE; CREATE SCHEMA tpch")
    psql(ORDERS_DDL + ";" + LINEITEM_DDL)
    for table in ("orders", "lineitem"):
        psql(f"\\copy tpch.{table} FROM '{data / (table + '.csv')}' WITH (FORMAT csv, HEADER true)")
    psql(
        "ALTER TABLE tpch.orders ADD PRIMARY KEY (o_orderkey); "
        "ALTER TABLE tpch.lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber); "
        # one value for every existing row: what the issue measured
        "ALTER TABLE tpch.orders ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(); "
        "ALTER TABLE tpch.lineitem ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(); "
        "CREATE INDEX ON tpch.orders (updated_at); CREATE INDEX ON tpch.lineitem (updated_at); "
        "ANALYZE tpch.orders; ANALYZE tpch.lineitem"
    )
    timings["copy"] = time.perf_counter() - clock
    shutil.rmtree(data, ignore_errors=True)
    return timings


def refresh_functions(share: float) -> dict[str, int]:
    """RF1 (new orders and their line items), RF2 (orders and their line items deleted), and
    orders updated: `share` of the orders each, chosen by a fixed seed."""
    orders = int(psql("SELECT count(*) FROM tpch.orders"))
    count = max(1, round(orders * share))
    top = int(psql("SELECT max(o_orderkey) FROM tpch.orders"))
    psql(
        "SELECT setseed(0.25); "
        "CREATE TEMP TABLE picked AS SELECT o_orderkey, row_number() OVER () AS n FROM "
        f"(SELECT o_orderkey FROM tpch.orders ORDER BY random() LIMIT {3 * count}) s; "
        # RF1: new orders, copies of picked ones under new keys, with their line items
        "INSERT INTO tpch.orders SELECT o.o_orderkey + "
        f"{top}, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_orderpriority, o_clerk, "
        "o_shippriority, o_comment FROM tpch.orders o JOIN picked p USING (o_orderkey) "
        f"WHERE p.n <= {count}; "
        f"INSERT INTO tpch.lineitem SELECT l.l_orderkey + {top}, l_partkey, l_suppkey, "
        "l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, l_returnflag, "
        "l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
        "l_comment FROM tpch.lineitem l JOIN picked p ON p.o_orderkey = l.l_orderkey "
        f"WHERE p.n <= {count}; "
        # RF2: orders deleted with their line items
        "DELETE FROM tpch.lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM picked WHERE "
        f"n > {count} AND n <= {2 * count}); "
        "DELETE FROM tpch.orders WHERE o_orderkey IN (SELECT o_orderkey FROM picked WHERE "
        f"n > {count} AND n <= {2 * count}); "
        # updates
        "UPDATE tpch.orders SET o_totalprice = o_totalprice + 1, o_orderstatus = 'F', "
        f"updated_at = now() WHERE o_orderkey IN (SELECT o_orderkey FROM picked WHERE n > "
        f"{2 * count}); ANALYZE tpch.orders; ANALYZE tpch.lineitem"
    )
    inserted_items = psql(f"SELECT count(*) FROM tpch.lineitem WHERE l_orderkey > {top}")
    return {"orders": count, "lineitems_inserted": int(inserted_items)}


def compare(lake: str, scratch: Path) -> list[str]:
    """The current views against PostgreSQL: count, a sum, EXCEPT ALL both ways."""
    import connectorx as cx
    import pyarrow.parquet as pq

    from ingest.lake.destination import Destination
    from ingest.views.duck import connect, create_views

    dest = Destination.from_url(lake)
    connection = connect(dest)
    create_views(connection, dest, dest.filesystem())
    lines = []
    for table, column in SUMS.items():
        columns = ", ".join(
            name
            for (name,) in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                "AND table_name = ? AND column_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY "
                "ordinal_position",
                [SOURCE, table],
            ).fetchall()
        )
        path = scratch / f"source_{table}.parquet"
        pq.write_table(
            cx.read_sql(CX_URL, f"SELECT {columns} FROM tpch.{table}", return_type="arrow"), path
        )
        connection.execute(f"CREATE OR REPLACE VIEW src_{table} AS SELECT * FROM '{path}'")
        view = f"{SOURCE}.{table}"
        count_view, sum_view = connection.execute(
            f"SELECT count(*), sum({column}) FROM {view}"
        ).fetchone()
        count_source, sum_source = psql(f"SELECT count(*), sum({column}) FROM tpch.{table}").split(
            "|"
        )
        extra = connection.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM {view} EXCEPT ALL "
            f"SELECT {columns} FROM src_{table})"
        ).fetchone()[0]
        missing = connection.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM src_{table} EXCEPT ALL "
            f"SELECT {columns} FROM {view})"
        ).fetchone()[0]
        lines.append(
            f"  {table}: view {count_view:,} rows / source {int(count_source):,}; "
            f"sum({column}) view {sum_view} / source {sum_source}; EXCEPT ALL: {extra} only in "
            f"the view, {missing} only in the source"
        )
        path.unlink()
    connection.close()
    return lines


def part_b(scratch: Path, scale: float, repeat: int, share: float) -> list[str]:
    env = env_for(scratch)
    created = create_tpch(scratch, scale)
    counts = {t: int(psql(f"SELECT count(*) FROM tpch.{t}")) for t in KEYS}
    lines = [
        f"(b) TPC-H scale factor {scale:g}: orders {counts['orders']:,} rows, lineitem "
        f"{counts['lineitem']:,} rows (tpchgen-cli {created['generate']:.0f} s, copy into "
        f"PostgreSQL with keys and index {created['copy']:.0f} s); every updated_at the same"
    ]
    full, incremental = scratch / "full.csv", scratch / "incremental.csv"
    full.write_text(
        HEADER
        + "".join(
            f'\nt{i},Y,postgresql,{SOURCE},tpch,{t},FULL,,"{k}",'
            for i, (t, k) in enumerate(KEYS.items(), 1)
        )
        + "\n"
    )
    incremental.write_text(
        HEADER
        + "".join(
            f'\nt{i},Y,postgresql,{SOURCE},tpch,{t},INCREMENTAL,updated_at,"{k}",keys'
            for i, (t, k) in enumerate(KEYS.items(), 1)
        )
        + "\n"
    )
    runs: dict[str, list[Run]] = {"full": [], "incremental": []}
    for _ in range(repeat):
        for kind, config in (("full", full), ("incremental", incremental)):
            _, lake = new_lake(scratch, f"lake_{kind}")
            runs[kind].append(run_cli(env, config, lake))
            print(f"  {kind}: {runs[kind][-1].wall_s:.1f} s", flush=True)
    lake_dir, lake = scratch / "lake_incremental", (scratch / "lake_incremental").as_uri()
    f_wall = statistics.median(r.wall_s for r in runs["full"])
    i_wall = statistics.median(r.wall_s for r in runs["incremental"])
    f_peak = statistics.median(r.peak_mb for r in runs["full"])
    i_peak = statistics.median(r.peak_mb for r in runs["incremental"])
    per_job = {
        kind: {
            t: statistics.median(r.job(f"t{i}")["duration_s"] for r in runs[kind])
            for i, t in enumerate(KEYS, 1)
        }
        for kind in runs
    }
    lines += [
        f"  first load, both tables in one process, median of {repeat}:",
        f"    all-FULL     {f_wall:7.1f} s, peak {f_peak:5.0f} MB  (orders "
        f"{per_job['full']['orders']:.1f} s, lineitem {per_job['full']['lineitem']:.1f} s)",
        f"    INCREMENTAL  {i_wall:7.1f} s, peak {i_peak:5.0f} MB  (orders "
        f"{per_job['incremental']['orders']:.1f} s, lineitem "
        f"{per_job['incremental']['lineitem']:.1f} s)",
        f"    INCREMENTAL / FULL: time {i_wall / f_wall:.2f}, peak memory {i_peak / f_peak:.2f} "
        f"(pairs: {', '.join(f'{i.wall_s / f.wall_s:.2f}' for f, i in zip(runs['full'], runs['incremental'], strict=True))})",
    ]
    for table in KEYS:
        lines.append(
            f"    state of {table}: " + describe_state(state_size(lake_dir, f"{SOURCE}__{table}"))
        )
    print("\n".join(lines), flush=True)
    changed = refresh_functions(share)
    lines.append(
        f"  refresh: {changed['orders']:,} orders inserted (with {changed['lineitems_inserted']:,} "
        f"line items), {changed['orders']:,} deleted with their line items, "
        f"{changed['orders']:,} updated"
    )
    after = run_cli(env, incremental, lake)
    lines.append(f"  next INCREMENTAL run: {after.wall_s:.1f} s, peak {after.peak_mb:.0f} MB")
    for i, table in enumerate(KEYS, 1):
        result = after.job(f"t{i}")
        lines.append(
            f"    {table}: {result['duration_s']:.1f} s, {result['rows_loaded']:,} rows landed, "
            f"{result['rows_deleted'] or 0:,} delete markers; reconciled "
            f"{result['reconciled']} ({result['reconcile_note'][:160]}); whole table "
            f"{result['table_reconciled']} ({result['table_rows_source']} / "
            f"{result['table_rows_lake']})"
        )
    for table in KEYS:
        lines.append(
            f"    state of {table}: " + describe_state(state_size(lake_dir, f"{SOURCE}__{table}"))
        )
    print("\n".join(lines[-5:]), flush=True)
    nothing = run_cli(env, incremental, lake)
    lines.append(
        f"  a run with nothing new: {nothing.wall_s:.1f} s, peak {nothing.peak_mb:.0f} MB ("
        + ", ".join(
            f"{t} {nothing.job(f't{i}')['duration_s']:.1f} s" for i, t in enumerate(KEYS, 1)
        )
        + ")"
    )
    # last: DuckDB grows this process, and a child's peak RSS (wait4) starts from its parent's
    lines.append("  the current views against PostgreSQL after them:")
    lines += compare(lake, scratch)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", choices=("a", "b", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000, help="(a): rows (1,000,000)")
    parser.add_argument("--new-rows", type=int, default=100, help="(a): new rows (100)")
    parser.add_argument("--scale", type=float, default=1, help="(b): TPC-H scale factor (1)")
    parser.add_argument("--repeat", type=int, default=2, help="(b): first-load pairs (2)")
    parser.add_argument("--share", type=float, default=0.001, help="(b): refresh share (0.001)")
    parser.add_argument(
        "--memory-mb", type=int, help="INGEST_STATE_MEMORY_MB for the runs (default: the default)"
    )
    args = parser.parse_args()
    if args.memory_mb:
        os.environ["INGEST_STATE_MEMORY_MB"] = str(args.memory_mb)
    scratch = Path(tempfile.mkdtemp(prefix="bench-boundary-"))
    report = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PostgreSQL {psql('SHOW server_version')}, {dt.datetime.now(dt.UTC):%Y-%m-%d}"
    ]
    try:
        if args.part in ("a", "both"):
            report += part_a(scratch, args.rows, args.new_rows)
        if args.part in ("b", "both"):
            report += part_b(scratch, args.scale, args.repeat, args.share)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
