"""A year of nights: the current view of a keyed table, before and after compaction.

`.venv/bin/python bench/current_state.py --help` (PostgreSQL on 127.0.0.1:5432; `python3 tasks.py
services` starts it).

The source is an 8-column `orders` table in the local PostgreSQL (the same columns as
bench/run.py's; `order_id` its key, an index on `updated_at`). Each night --changed of its rows
are updated (`amount`, `status`, `updated_at` bumped), --inserted new rows are added and
--deleted rows are deleted, in PostgreSQL itself. The job is INCREMENTAL on `updated_at`, keyed
by `order_id`, with `delete_detection = keys`.

How the lake is built:
- nights 0 and 1 are real runs, `python -m ingest run` in a process of its own (times and peak
  memory printed: one real night is what a year of real runs would cost 365 times);
- nights 2..N are written directly, exactly as a run writes them: the rows read back from
  PostgreSQL (`updated_at` above the stored watermark, ConnectorX) cast to the schema of night
  1's data file, the delete markers as night 1's (the key, the lake's last watermark,
  `_deleted = true`, NULL elsewhere) in a second file, Parquet with zstd and the engine's
  dictionary choice (`ingest.lake.parquet_writer.dictionary_columns`), one file per 100,000
  rows, a completion marker under `<source>/_dlt_loads/`, a commit through the job's lease and
  commit log (`ingest.lake.lease`, `ingest.lake.commits`). Load ids are night 1's plus one day
  per night, so the year's date folders lie ahead of today. Every generated file is checked
  to have night 1's Parquet schema.

Then, for each phase (A: the year, no compaction; B: right after `python -m ingest compact`;
C: B plus --after nights, what a view reads with INGEST_COMPACT_LOADS=30; D: --nightly more
nights, each followed by a compaction as the default INGEST_COMPACT_LOADS=1 does) it refreshes the
views (`python -m ingest views`), writes the source table as one Parquet file (ConnectorX, cast
to the lake's schema, zstd, 100,000-row row groups: the same rows compacted by hand), checks
that the current view equals that file row for row (`EXCEPT ALL` both ways, empty) and times
the same queries over both in one warm DuckDB connection: `count(*)`, `sum(amount)`, and a
filter on the key (median of --repeat, after one warm-up). The compaction is timed in its own
process (`python -m ingest compact`, wall time and peak RSS), against the peak RSS of a process
that only imports the engine. Prints numbers only; asserts nothing.
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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "db": "test"}
CX_URL = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{PG['db']}"
SCHEMA = "bench"
TABLE = "year_orders"
SOURCE = "bench_pg"
JOB = "y1"
KEY = "order_id"
DAY = 86400.0
#: where the nights' `updated_at` values start (after every initial one)
NIGHT_ZERO = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ROW_GROUP = 100_000
COLUMNS = "order_id, customer_id, created_at, amount, status, note, updated_at"


# ------------------------------------------------------------------------------------------
# processes and PostgreSQL


@dataclass
class Measure:
    wall_s: float
    peak_mb: float
    stdout: str = ""


def run_process(cmd: list[str], env: dict[str, str], ok_codes: tuple[int, ...] = (0,)) -> Measure:
    """A child process: wall time and peak RSS (wait4's ru_maxrss of that child alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stdout, stderr = proc.communicate()
    if os.waitstatus_to_exitcode(status) not in ok_codes:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{stdout.decode()}\n{stderr.decode()}")
    return Measure(wall, usage.ru_maxrss / 1024, stdout.decode())


def connect_pg() -> Any:
    import psycopg2

    connection = psycopg2.connect(
        host=PG["host"], port=PG["port"], user=PG["user"], dbname=PG["db"]
    )
    connection.autocommit = True
    return connection


def create_source(pg: Any, rows: int) -> None:
    print(f"creating {SCHEMA}.{TABLE} with {rows:,} rows ...", flush=True)
    with pg.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}; DROP TABLE IF EXISTS {SCHEMA}.{TABLE}")
        cur.execute(
            f"SELECT setseed(0.42); CREATE TABLE {SCHEMA}.{TABLE} AS SELECT "
            "g::bigint AS order_id, (random() * 100000)::int AS customer_id, "
            "timestamptz '2024-01-01' + (g || ' seconds')::interval AS created_at, "
            "round((random() * 10000)::numeric, 2)::numeric(12, 2) AS amount, "
            "(ARRAY['new','paid','shipped','refunded'])[1 + (g % 4)] AS status, "
            "md5(g::text) AS note, "
            "timestamptz '2024-01-01' + (g || ' seconds')::interval AS updated_at "
            f"FROM generate_series(1, {rows}) g"
        )
        cur.execute(
            f"ALTER TABLE {SCHEMA}.{TABLE} ADD PRIMARY KEY ({KEY}); "
            f"CREATE INDEX ON {SCHEMA}.{TABLE} (updated_at); ANALYZE {SCHEMA}.{TABLE}"
        )


class Nights:
    """The source's nightly changes, drawn from a seeded generator over the live keys."""

    def __init__(self, pg: Any, rows: int, changed: float, inserted: float, deleted: float):
        import numpy as np

        self.pg = pg
        self.rng = np.random.default_rng(25)
        self.alive = np.arange(1, rows + 1, dtype=np.int64)
        self.next_key = rows + 1
        self.counts = (round(rows * changed), round(rows * inserted), round(rows * deleted))

    @classmethod
    def resume(cls, pg: Any, rows: int, changed: float, inserted: float, deleted: float) -> Nights:
        """The generator for a source an earlier run left (its live keys read back)."""
        import numpy as np

        nights = cls(pg, rows, changed, inserted, deleted)
        with pg.cursor() as cur:
            cur.execute(f"SELECT order_id FROM {SCHEMA}.{TABLE} ORDER BY order_id")
            nights.alive = np.array([r[0] for r in cur.fetchall()], dtype=np.int64)
        nights.next_key = int(nights.alive.max()) + 1
        return nights

    def apply(self, night: int) -> list[int]:
        """Change the source as night `night` does; returns the deleted keys."""
        import numpy as np

        changed, inserted, deleted = self.counts
        picked = self.rng.choice(self.alive.size, changed + deleted, replace=False)
        update_keys = self.alive[picked[:changed]]
        delete_keys = self.alive[picked[changed:]]
        self.alive = np.delete(self.alive, picked[changed:])
        new_keys = np.arange(self.next_key, self.next_key + inserted, dtype=np.int64)
        self.next_key += inserted
        self.alive = np.concatenate([self.alive, new_keys])
        stamp = NIGHT_ZERO + dt.timedelta(days=night)
        with self.pg.cursor() as cur:
            cur.execute(
                f"UPDATE {SCHEMA}.{TABLE} SET amount = amount + 1, "
                "status = (ARRAY['new','paid','shipped','refunded'])[1 + (order_id + %s) %% 4], "
                "updated_at = %s + (order_id %% 3600) * interval '1 second' "
                "WHERE order_id = ANY(%s)",
                (night, stamp, update_keys.tolist()),
            )
            cur.execute(
                f"DELETE FROM {SCHEMA}.{TABLE} WHERE order_id = ANY(%s)", (delete_keys.tolist(),)
            )
            cur.execute(
                f"INSERT INTO {SCHEMA}.{TABLE} SELECT g, (g %% 100000)::int, %s, "
                "round((g %% 10000)::numeric / 3, 2), 'new', md5(g::text), "
                "%s + (g %% 3600) * interval '1 second' FROM unnest(%s::bigint[]) AS g",
                (stamp, stamp, new_keys.tolist()),
            )
        return delete_keys.tolist()


# ------------------------------------------------------------------------------------------
# the lake


def job_config(path: Path) -> Path:
    path.write_text(
        "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
        "watermark_column,primary_key,delete_detection\n"
        f"{JOB},Y,postgresql,{SOURCE},{SCHEMA},{TABLE},INCREMENTAL,updated_at,{KEY},keys\n"
    )
    return path


def the_job(config: Path) -> Any:
    from ingest.configuration import load_config

    return next(j for j in load_config(str(config)).jobs if j.job_id == JOB)


def cli(env: dict[str, str], *args: str, ok_codes: tuple[int, ...] = (0,)) -> Measure:
    return run_process([PY, "-m", "ingest", "-q", *args], env, ok_codes)


class LakeWriter:
    """Writes a night's load the way a run writes it (see module doc)."""

    def __init__(self, lake: str, job: Any):
        import pyarrow.parquet as pq

        from ingest.lake.destination import Destination
        from ingest.lake.layout import LOADS_DIR
        from ingest.views.inventory import list_source

        self.job = job
        self.dest = Destination.from_url(lake)
        self.fs = self.dest.filesystem()
        markers = list_source(self.dest, job.source_name, self.fs).markers[job.schema_name_in_lake]
        # night 1, the second real run (the job's loads before the generated ones)
        self.last_real = sorted(markers, key=float)[1]
        folder = self.dest.path(job.source_name, job.lake_table)
        files = [p for p in self.fs.find(folder) if p.rsplit("/", 1)[-1].startswith(self.last_real)]
        self.schema = pq.read_schema(files[0])
        with open(self.dest.path(job.source_name, LOADS_DIR, _marker(job, self.last_real))) as f:
            self.marker_fields = set(json.load(f))

    def load_id(self, night: int) -> str:
        return f"{float(self.last_real) + (night - 1) * DAY:.7f}"

    def write(self, night: int, rows: Any, deleted: list[int], watermark: Any) -> int:
        """One load: the night's rows, its delete markers, its marker and commit; returns the
        files written."""
        import pyarrow as pa

        from ingest.lake.layout import LOADS_DIR, date_folder
        from ingest.lake.lease import Holder, lease_for, lease_name

        load_id = self.load_id(night)
        folder = self.dest.path(self.job.source_name, self.job.lake_table, date_folder(load_id))
        self.fs.makedirs(folder, exist_ok=True)
        tables = [_conform(rows, self.schema)]
        if deleted:
            markers = {f.name: pa.nulls(len(deleted), f.type) for f in self.schema}
            markers[KEY] = pa.array(deleted, self.schema.field(KEY).type)
            markers["updated_at"] = pa.array([watermark] * len(deleted)).cast(
                self.schema.field("updated_at").type
            )
            markers["_deleted"] = pa.array([True] * len(deleted))
            tables.append(pa.table(markers, schema=self.schema))
        files = 0
        for table in tables:
            for start in range(0, max(table.num_rows, 1), ROW_GROUP * 10):
                files += 1
                _write_parquet(
                    table.slice(start, ROW_GROUP * 10),
                    f"{folder}/{load_id}.{uuid.uuid4().hex[:10]}.parquet",
                )
        run_id = f"night-{night}"
        lease = lease_for(
            self.dest,
            lease_name(self.job.source_name, self.job.lake_table),
            Holder.me(run_id, "plain"),
            wait_s=10,
            same_task_wait_s=10,
            period_s=60,
        )
        with lease:
            log = lease.read_log()
            lease.write_log(log.add(load_id, self.job.schema_name_in_lake, run_id, "plain"))
            marker = {
                "load_id": load_id,
                "schema_name": self.job.schema_name_in_lake,
                "status": 0,
                "inserted_at": dt.datetime.now(dt.UTC).isoformat(),
                "schema_version_hash": "",
            }
            assert set(marker) == self.marker_fields, (set(marker), self.marker_fields)
            path = self.dest.path(self.job.source_name, LOADS_DIR, _marker(self.job, load_id))
            with self.fs.open(path, "w") as handle:
                handle.write(json.dumps(marker))
        return files


def _marker(job: Any, load_id: str) -> str:
    from ingest.lake.layout import SEPARATOR

    return f"{job.schema_name_in_lake}{SEPARATOR}{load_id}.jsonl"


def _conform(table: Any, schema: Any) -> Any:
    """`table` with the lake file's columns and types (columns it lacks are NULL)."""
    import pyarrow as pa

    columns = {}
    for field in schema:
        if field.name in table.column_names:
            columns[field.name] = table.column(field.name).cast(field.type)
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    return pa.table(columns, schema=schema)


def _write_parquet(table: Any, path: str) -> None:
    import pyarrow.parquet as pq

    from ingest.lake.parquet_writer import dictionary_columns

    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=dictionary_columns(table),
        row_group_size=ROW_GROUP,
    )


def read_source(sql: str) -> Any:
    import connectorx as cx

    return cx.read_sql(CX_URL, sql, return_type="arrow")


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*.parquet")) / 2**20


# ------------------------------------------------------------------------------------------
# the queries


QUERIES = {
    "count(*)": "SELECT count(*) FROM {t}",
    "sum(amount)": "SELECT sum(amount) FROM {t}",
    "key filter": "SELECT * FROM {t} WHERE order_id = {key}",
}


def reference_file(path: Path, schema: Any) -> None:
    """The source table as one Parquet file, in the lake's schema (the rows compacted by hand)."""
    table = read_source(f"SELECT {COLUMNS} FROM {SCHEMA}.{TABLE}")
    columns = [f for f in schema if f.name != "_deleted"]
    import pyarrow as pa

    _write_parquet(_conform(table, pa.schema(columns)), str(path))


def measure_queries(
    lake: str, reference: Path, keys: list[int], repeat: int, prototype: str | None
) -> dict[str, Any]:
    """The queries over the current view and over the reference file (and over the prototype
    view, when given); the row-for-row checks."""
    from ingest.lake.destination import Destination
    from ingest.views.duck import connect, create_views

    dest = Destination.from_url(lake)
    connection = connect(dest)
    create_views(connection, dest, dest.filesystem())
    connection.execute(f"CREATE VIEW ref AS SELECT * FROM read_parquet('{reference}')")
    view = f"{SOURCE}.{TABLE}"
    tables = [view, "ref"]
    if prototype:
        connection.execute(f"CREATE VIEW proto AS {prototype}")
        tables.append("proto")
    results: dict[str, Any] = {"except": {}, "rows": {}}
    for table in (view, "proto") if prototype else (view,):
        both = []
        for a, b in ((table, "ref"), ("ref", table)):
            sql = f"SELECT {COLUMNS} FROM {a} EXCEPT ALL SELECT {COLUMNS} FROM {b}"
            both.append(connection.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])
        results["except"][table] = both
    for table in tables:
        results["rows"][table] = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    timings: dict[str, list[float]] = {}
    for name, template in QUERIES.items():
        medians = []
        for table in tables:
            values = []
            for attempt in range(repeat + 1):
                sql = template.format(t=table, key=keys[attempt % len(keys)])
                start = time.perf_counter()
                connection.execute(sql).fetchall()
                if attempt:  # the first is a warm-up
                    values.append(time.perf_counter() - start)
            medians.append(statistics.median(values))
        timings[name] = medians
    results["timings"] = timings
    connection.close()
    return results


def view_reads(lake: str, job: Any) -> tuple[int, int, float]:
    """What the current view reads: loads, files, MB."""
    from ingest.lake.destination import Destination
    from ingest.views.state import current_state

    dest = Destination.from_url(lake)
    state = current_state(dest, job)
    assert state is not None
    files = state.view.files
    size = sum(Path(dest.path(f)).stat().st_size for f in files)
    return len(state.view.loads), len(files), size / 2**20


def print_phase(title: str, result: dict[str, Any], reads: tuple[int, int, float]) -> list[str]:
    loads, files, mb = reads
    view = f"{SOURCE}.{TABLE}"
    rows = result["rows"]
    lines = [
        f"\n{title}",
        f"  the current view reads {loads} load(s), {files} file(s), {mb:.1f} MB",
        f"  rows: view {rows[view]:,}, reference file {rows['ref']:,}",
    ]
    for table, (extra, missing) in result["except"].items():
        name = "view" if table == view else "prototype"
        lines.append(
            f"  EXCEPT ALL, {name} vs file: {extra} row(s) only in the {name}, "
            f"{missing} only in the file"
        )
    prototype = "proto" in rows
    lines.append(
        f"  {'query':<14} {'view s':>9} {'file s':>9} {'view/file':>10}"
        + (f" {'proto s':>9} {'proto/file':>10}" if prototype else "")
    )
    for name, medians in result["timings"].items():
        line = f"  {name:<14} {medians[0]:9.4f} {medians[1]:9.4f} {medians[0] / medians[1]:10.1f}"
        if prototype:
            line += f" {medians[2]:9.4f} {medians[2] / medians[1]:10.1f}"
        lines.append(line)
    print("\n".join(lines), flush=True)
    return lines


# ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (1,000,000)")
    parser.add_argument("--nights", type=int, default=365, help="nightly loads (365)")
    parser.add_argument("--changed", type=float, default=0.01, help="share updated per night")
    parser.add_argument("--inserted", type=float, default=0.001, help="share inserted per night")
    parser.add_argument("--deleted", type=float, default=0.001, help="share deleted per night")
    parser.add_argument("--after", type=int, default=29, help="nights after the compaction (29)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query (5)")
    parser.add_argument(
        "--nightly",
        type=int,
        default=5,
        help="phase D: nights each followed by a compaction, the default "
        "INGEST_COMPACT_LOADS=1 (5)",
    )
    parser.add_argument("--keep", metavar="DIR", help="build the lake in DIR and keep it")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: measure the lake a previous --keep run built (the source as it left it)",
    )
    parser.add_argument(
        "--retry-memory-mb",
        type=int,
        default=2048,
        help="INGEST_STATE_MEMORY_MB for a second compaction when the default one fails (2048)",
    )
    parser.add_argument("--queries", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.queries:  # a child: the queries of one phase
        lake, config, reference, keys, repeat = args.queries
        job = the_job(Path(config))
        result = measure_queries(
            lake,
            Path(reference),
            [int(k) for k in keys.split(",")],
            int(repeat),
            None,  # the engine's view reads a base and the loads after it (no prototype)
        )
        print(json.dumps([result, view_reads(lake, job)]))
        return 0

    env = dict(
        os.environ,
        RUNTIME__DLTHUB_TELEMETRY="false",
        PYTHONPATH=str(ROOT),
        INGEST_COMPACT_LOADS="1000000",  # no compaction by the runs: phase A is uncompacted
        INGEST_COMPACT_RATIO="0",
        **{f"SOURCES__{SOURCE.upper()}__{k}": v for k, v in _source_env().items()},
    )
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("SOURCES__")})
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-year-"))
    scratch.mkdir(parents=True, exist_ok=True)
    env["INGEST_WORK_DIR"] = str(scratch / "work")
    lake_dir = scratch / "lake"
    reuse = bool(args.keep and args.reuse and lake_dir.exists())
    if not reuse:
        shutil.rmtree(lake_dir, ignore_errors=True)
    lake = lake_dir.as_uri()
    config = job_config(scratch / "jobs.csv")
    pg = connect_pg()
    report = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PostgreSQL {_scalar(pg, 'SHOW server_version')}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d}",
        f"{args.rows:,} rows; per night {args.changed:.1%} updated, {args.inserted:.1%} "
        f"inserted, {args.deleted:.1%} deleted; {args.nights} nights",
    ]
    try:
        if reuse:
            nights = Nights.resume(pg, args.rows, args.changed, args.inserted, args.deleted)
            job = the_job(config)
            writer = LakeWriter(lake, job)
            report.append(f"(the lake and source of an earlier run, {scratch})")
        else:
            nights = Nights(pg, args.rows, args.changed, args.inserted, args.deleted)
            create_source(pg, args.rows)
            run = ["run", "--config", str(config), "--destination", lake]
            first = cli(env, *run, "--run-id", "night-0")
            nights.apply(1)
            one = cli(env, *run, "--run-id", "night-1")
            report.append(
                f"night 0 (first load, python -m ingest run): {first.wall_s:.2f} s, "
                f"peak {first.peak_mb:.0f} MB"
            )
            report.append(
                f"night 1 (a real night: {nights.counts[0]:,} updated, {nights.counts[1]:,} "
                f"inserted, {nights.counts[2]:,} deleted; delete detection over every key): "
                f"{one.wall_s:.2f} s, peak {one.peak_mb:.0f} MB"
            )
            print("\n".join(report), flush=True)
            job = the_job(config)
            writer = LakeWriter(lake, job)
            clock = time.perf_counter()
            files = generate(pg, nights, writer, range(2, args.nights + 1))
            report.append(
                f"nights 2..{args.nights} written directly: {files} files, "
                f"{time.perf_counter() - clock:.0f} s"
            )
            print(report[-1], flush=True)
        keys = _probe_keys(pg)
        lines, size_a = phase(env, config, lake, lake_dir, job, scratch, writer, keys, args, "A")
        report += lines
        report.append(f"  lake: {size_a:.1f} MB of Parquet")

        baseline = run_process(
            [PY, "-c", "import ingest.job.maintenance, ingest.views.state, duckdb"], env
        )
        compact = ["compact", "--config", str(config), "--destination", lake, "--json"]
        for memory in (None, args.retry_memory_mb):
            compact_env = env if memory is None else {**env, "INGEST_STATE_MEMORY_MB": str(memory)}
            compaction = cli(compact_env, *compact, ok_codes=(0, 1))
            done = json.loads(compaction.stdout)[0]
            setting = f"INGEST_STATE_MEMORY_MB={memory or 'default (512)'}"
            if done["error"]:
                report.append(
                    f"\ncompaction, {setting}: FAILED after {compaction.wall_s:.2f} s, peak RSS "
                    f"{compaction.peak_mb:.0f} MB: {done['error'].splitlines()[0]}"
                )
                print(report[-1], flush=True)
                continue
            report.append(
                f"\ncompaction, {setting} (python -m ingest compact, own process): "
                f"{compaction.wall_s:.2f} s wall ({done['seconds']:.2f} s in compact()), peak RSS "
                f"{compaction.peak_mb:.0f} MB (a process that only imports the engine: "
                f"{baseline.peak_mb:.0f} MB); {done['rows']:,} rows in {done['files']} file(s), "
                f"{done['loads_folded']} loads folded"
            )
            print(report[-1], flush=True)
            break
        lines, size_b = phase(env, config, lake, lake_dir, job, scratch, writer, keys, args, "B")
        report += lines
        report.append(
            f"  lake: {size_b:.1f} MB of Parquet (the history keeps every version; "
            f"INGEST_HISTORY_RETENTION_DAYS=0)"
        )
        if args.after:
            generate(pg, nights, writer, range(args.nights + 1, args.nights + args.after + 1))
            lines, size_c = phase(
                env, config, lake, lake_dir, job, scratch, writer, keys, args, "C"
            )
            report += lines
            report.append(f"  lake: {size_c:.1f} MB of Parquet")
        if args.nightly:
            report += nightly(
                env, config, lake, lake_dir, job, scratch, writer, keys, args, pg, nights
            )
    finally:
        pg.close()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n" + "\n".join(report))
    return 0


def _source_env() -> dict[str, str]:
    return {"HOST": PG["host"], "PORT": PG["port"], "DATABASE": PG["db"], "USERNAME": PG["user"]}


def _scalar(pg: Any, sql: str) -> Any:
    with pg.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def _probe_keys(pg: Any) -> list[int]:
    """Keys for the filter query: ones that changed several times, and an untouched one."""
    with pg.cursor() as cur:
        cur.execute(
            f"SELECT order_id FROM {SCHEMA}.{TABLE} WHERE updated_at >= %s "
            "ORDER BY order_id LIMIT 3",
            (NIGHT_ZERO + dt.timedelta(days=30),),
        )
        keys = [r[0] for r in cur.fetchall()]
        cur.execute(
            f"SELECT min(order_id) FROM {SCHEMA}.{TABLE} WHERE updated_at < %s", (NIGHT_ZERO,)
        )
        return [*keys, cur.fetchone()[0]]


def generate(pg: Any, nights: Nights, writer: LakeWriter, which: range) -> int:
    files = 0
    for night in which:
        watermark = _scalar(pg, f"SELECT max(updated_at) FROM {SCHEMA}.{TABLE}")
        deleted = nights.apply(night)
        rows = read_source(
            f"SELECT {COLUMNS} FROM {SCHEMA}.{TABLE} WHERE updated_at > "
            f"'{watermark.isoformat()}'::timestamptz"
        )
        files += writer.write(night, rows, deleted, watermark)
        if night % 50 == 0:
            print(f"  night {night}", flush=True)
    return files


def compaction(env: dict[str, str], config: Path, lake: str) -> tuple[Measure, dict[str, Any]]:
    """`python -m ingest compact` in its own process: its wall time, peak RSS and report."""
    done = cli(env, "compact", "--config", str(config), "--destination", lake, "--json")
    return done, json.loads(done.stdout)[0]


def nightly(
    env: dict[str, str],
    config: Path,
    lake: str,
    lake_dir: Path,
    job: Any,
    scratch: Path,
    writer: LakeWriter,
    keys: list[int],
    args: argparse.Namespace,
    pg: Any,
    nights: Nights,
) -> list[str]:
    """Phase D, the default (INGEST_COMPACT_LOADS=1): every night is followed by a compaction
    of the base and that night, timed as the run's last step is (its own process here); then
    the queries over the view, which reads the newest base."""
    first = args.nights + args.after + 1
    _, folded = compaction(env, config, lake)  # the loads of phase C folded first
    lines = [f"\nD: every night compacted (folding phase C's loads first: {folded['seconds']} s)"]
    walls, peaks, inner = [], [], []
    for night in range(first, first + args.nightly):
        generate(pg, nights, writer, range(night, night + 1))
        measured, done = compaction(env, config, lake)
        assert not done["error"], done["error"]
        walls.append(measured.wall_s)
        peaks.append(measured.peak_mb)
        inner.append(done["seconds"])
        lines.append(
            f"  night {night}: compaction {measured.wall_s:.2f} s wall ({done['seconds']:.2f} s "
            f"in compact()), peak RSS {measured.peak_mb:.0f} MB, {done['rows']:,} rows, "
            f"{done['loads_folded']} loads folded"
        )
        print(lines[-1], flush=True)
    lines.append(
        f"  compaction per night, median of {args.nightly}: {statistics.median(walls):.2f} s "
        f"wall ({statistics.median(inner):.2f} s in compact()), peak RSS "
        f"{statistics.median(peaks):.0f} MB (max {max(peaks):.0f})"
    )
    view_lines, size_d = phase(env, config, lake, lake_dir, job, scratch, writer, keys, args, "D")
    return lines + view_lines + [f"  lake: {size_d:.1f} MB of Parquet"]


def phase(
    env: dict[str, str],
    config: Path,
    lake: str,
    lake_dir: Path,
    job: Any,
    scratch: Path,
    writer: LakeWriter,
    keys: list[int],
    args: argparse.Namespace,
    name: str,
) -> tuple[list[str], float]:
    views = cli(env, "views", "--config", str(config), "--destination", lake, "--dialect", "duckdb")
    reference = scratch / f"reference_{name}.parquet"
    reference_file(reference, writer.schema)
    # the queries run in a process of their own: DuckDB grows this one's memory otherwise, and
    # a child's peak RSS (wait4) starts from its parent's at the fork
    queries = run_process(
        [PY, str(Path(__file__).resolve()), "--queries", lake, str(config), str(reference)]
        + [",".join(map(str, keys)), str(args.repeat)],
        env,
    )
    result, reads = json.loads(queries.stdout.strip().splitlines()[-1])
    titles = {
        "A": f"A: {args.nights + 1} loads, no compaction",
        "B": "B: right after the compaction (the base only)",
        "C": f"C: the base and {args.after} loads after it",
        "D": "D: after the last night's compaction (the default: the base only)",
    }
    lines = print_phase(f"{titles[name]} (views refreshed in {views.wall_s:.2f} s)", result, reads)
    return lines, folder_mb(lake_dir / SOURCE / TABLE)


if __name__ == "__main__":
    raise SystemExit(main())
