"""CDC against a FULL copy: a table with --rows rows, --changed (1 %) of them updated or deleted
since the last run; and the CDC reader's changes per second against the floor.

`.venv/bin/python bench/cdc.py --help`. Starts its own PostgreSQL cluster with
`wal_level = logical` (the installed server binaries, a temporary folder, a free port: the
shared server is never reconfigured; `tests/cdc/cluster.py`), removed at the end.

The source is an 8-column `orders` table (key `order_id`, numeric, text, timestamptz). Each
measurement is a process of its own (`python -m ingest run`; wall time and peak RSS from wait4;
CPU seconds: the process's and its PostgreSQL cluster's meanwhile, from /proc, which a machine
shared with other work stretches far less than wall time):

- CDC first copy: the CDC job's first run (slot, exported snapshot, copy);
- then --repeat rounds, interleaved (the machine's load hits both alike), medians printed:
  FULL: a FULL job copies the table (its latest snapshot); then --changed rows change (80 %
  updates, 20 % deletes, in transactions of 10,000) and the CDC job's next run reads and lands
  exactly those changes. A CDC run that compacted the table at its end (the default compacts
  this table every 5th load) is printed and left out of the median (unless every run did: a
  table small enough to be compacted after each run);
- reader floor: psycopg2 reads the same changes from a slot of their own (made before the
  changes) with no processing (`read_message` until the end marker);
- decoder: the same from another slot, each message decoded (`ingest.sources.cdc.pgoutput`) and
  turned into change rows (`ingest.sources.cdc.changes`), without typing or landing them;
- --activity: as many rounds again, each job as the function app runs it: the `ingest_table`
  activity in one warm worker process (bench/activity_worker.py; the imports and the engine's
  warm-up done once, as on a Functions worker that ran an activity before), timed around the
  activity, its peak memory the worker's VmHWM during it;
- --compaction: one more round whose CDC run compacts the table at its end (what every run
  paid with INGEST_COMPACT_LOADS=1 before INGEST_COMPACT_MAX_ROWS), and a CDC run's average
  over the runs the default waits between two compactions.
The processes share a bytecode cache in the scratch folder (written by the first, as an
installed package has its .pyc files; --no-bytecode-cache: every process compiles the
project's modules again, as under PYTHONDONTWRITEBYTECODE=1).
Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cdc.cluster import logical_cluster  # noqa: E402

PY = sys.executable
M = TypeVar("M")
SOURCE, FULL_SOURCE = "bench_cdc", "bench_full"
TABLE_DDL = """
CREATE TABLE orders (
    order_id bigint PRIMARY KEY,
    customer_id int NOT NULL,
    status text NOT NULL,
    amount numeric(12, 2),
    qty int,
    note text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)"""
FILL = """
INSERT INTO orders
SELECT g, g %% 100000, (ARRAY['new','paid','shipped','done'])[1 + g %% 4], (g %% 100000) / 7.0,
       g %% 13, CASE WHEN g %% 5 = 0 THEN NULL ELSE 'note ' || g END,
       timestamptz '2024-01-01' + g * interval '1 second',
       timestamptz '2024-01-01' + g * interval '1 second'
FROM generate_series(%s, %s) g
"""


def server_cpu(cluster: Any) -> float:
    """CPU seconds the cluster's processes used so far: the postmaster's own and its reaped
    children's (ended backends), plus every live child's (backends, WAL senders, workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((Path(cluster.folder) / "data" / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def whole_process(
    cmd: list[str], env: dict[str, str], cluster: Any = None
) -> tuple[float, float, str, float, float]:
    """(seconds, peak RSS MB of that process, stderr tail, its CPU seconds, the CPU seconds
    of the PostgreSQL cluster meanwhile)."""
    server = server_cpu(cluster) if cluster is not None else 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    server = (server_cpu(cluster) - server) if cluster is not None else 0.0
    _, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, err.decode()[-500:], cpu, server


def read_slot(cluster: Any, database: str, slot: str, decode: bool) -> tuple[int, float]:
    """(changes read, seconds) from `slot` up to an end marker written now."""
    import psycopg2
    import psycopg2.extras

    from ingest.sources.cdc import pgoutput
    from ingest.sources.cdc.changes import MARKER_PREFIX, Bound, ChangeReader

    marker = uuid.uuid4().hex
    admin = cluster.connect(database)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_logical_emit_message(false, %s, %s)::text", (MARKER_PREFIX, marker)
        )
        end = pgoutput.parse_lsn(cursor.fetchone()[0])
    admin.close()
    connection = cluster.connect(
        database, connection_factory=psycopg2.extras.LogicalReplicationConnection
    )
    cursor = connection.cursor()
    started = time.monotonic()
    cursor.start_replication(
        slot_name=slot,
        decode=False,
        options={"proto_version": "1", "publication_names": "bench_pub", "messages": "true"},
    )

    def raw() -> Any:
        while True:
            message = cursor.read_message()
            if message is None:
                select.select([cursor], [], [], 1.0)
                continue
            yield message

    changes = 0
    if decode:
        columns = (
            "order_id",
            "customer_id",
            "status",
            "amount",
            "qty",
            "note",
            "created_at",
            "updated_at",
        )
        reader = ChangeReader(
            "public", "orders", ("order_id",), columns, 0, Bound(end, None, marker.encode())
        )
        stream = ((m.data_start, pgoutput.decode(m.payload), 0, len(m.payload)) for m in raw())
        for _ in reader.rows(stream):
            changes += 1
    else:
        tail = marker.encode()
        for message in raw():
            payload = message.payload
            if payload[:1] in (b"I", b"U", b"D"):
                changes += 1
            elif payload[:1] == b"M" and bytes(payload).endswith(tail):
                break
    seconds = time.monotonic() - started
    connection.close()
    return changes, seconds


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def job_seconds(lake: str, run_id: str) -> float:
    """The audit duration_s of run `run_id`'s job."""
    folder = Path(lake.removeprefix("file://")) / "metadata"
    rows = []
    for path in sorted(folder.glob("audit_*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows += [r for r in csv.DictReader(handle) if r["run_id"] == run_id]
    return float(rows[-1]["duration_s"]) if rows else float("nan")


def change(source: Any, rows: int, changed: int, round_: int) -> tuple[int, int]:
    """`changed` rows changed: 80 % updated, 20 % deleted (rows not touched by an earlier
    round), in transactions of 10,000."""
    updates = int(changed * 0.8)
    stride = max(1, rows // changed)
    with source.cursor() as cursor:
        for first in range(0, changed, 10_000):
            ids = [1 + round_ + (i * stride) for i in range(first, min(first + 10_000, changed))]
            upd = [i for n, i in enumerate(ids, start=first) if n < updates]
            gone = [i for n, i in enumerate(ids, start=first) if n >= updates]
            cursor.execute(
                "BEGIN; UPDATE orders SET status = 'changed', amount = amount + 1, "
                "updated_at = now() WHERE order_id = ANY(%s); "
                "DELETE FROM orders WHERE order_id = ANY(%s); COMMIT",
                (upd, gone),
            )
    return updates, changed - updates


def bases(lake: str) -> frozenset[str]:
    """The compacted bases' files of the CDC table (a compaction writes new ones)."""
    folder = Path(lake.removeprefix("file://")) / SOURCE / "orders"
    return frozenset(p.name for p in folder.rglob("*.base*.parquet"))


def compacting(lake: str, measure: Callable[[], M]) -> tuple[M, str]:
    """`measure()`'s result, and what to say of it when the run compacted the table (a
    compaction writes a new base): then it stays out of the medians (`steady`)."""
    before = bases(lake)
    measured = measure()
    return measured, " (it compacted the table)" if bases(lake) != before else ""


def steady(runs: list[tuple[M, bool]]) -> list[M]:
    """The runs that did not compact (the medians' runs); every run when each compacted (a
    table small enough to be compacted after every run: that is what its run costs)."""
    return [m for m, compacted in runs if not compacted] or [m for m, _ in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the table")
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows changed")
    parser.add_argument(
        "--repeat", type=int, default=3, help="FULL copies and CDC runs measured (medians)"
    )
    parser.add_argument(
        "--compact-loads",
        default="",
        help="INGEST_COMPACT_LOADS of the runs (default: not set, the setting's default 1, "
        "which INGEST_COMPACT_MAX_ROWS stretches to every 5th run for a 10M-row table)",
    )
    parser.add_argument(
        "--compaction",
        action="store_true",
        help="after the rounds, one more whose CDC run compacts the table at its end "
        "(INGEST_COMPACT_LOADS=1, INGEST_COMPACT_MAX_ROWS=0: what every run paid before "
        "INGEST_COMPACT_MAX_ROWS), and the average of a CDC run over the default's 5 runs",
    )
    parser.add_argument(
        "--activity",
        action="store_true",
        help="each round also measures the FULL copy and a CDC run as the function app runs "
        "them: the `ingest_table` activity in a warm worker process (bench/activity_worker.py: "
        "imports done once, as on a Functions worker that ran an activity before), interleaved "
        "with the CLI rounds",
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="every process compiles the project's modules again (PYTHONDONTWRITEBYTECODE=1, "
        "nothing cached): what an environment that sets it pays; by default the processes "
        "share a bytecode cache in the scratch folder, as an installed package has its .pyc",
    )
    args = parser.parse_args()
    changed = int(args.rows * args.changed)
    scratch = Path(tempfile.mkdtemp(prefix="bench-cdc-"))
    with logical_cluster() as cluster:
        database = "bench"
        admin = cluster.connect()
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
        admin.close()
        source = cluster.connect(database)
        source.autocommit = True
        with source.cursor() as cursor:
            cursor.execute(TABLE_DDL)
            step = 1_000_000
            for first in range(1, args.rows + 1, step):
                cursor.execute(FILL, (first, min(first + step - 1, args.rows)))
            cursor.execute("VACUUM ANALYZE orders")
        env = dict(os.environ)
        env.update(
            INGEST_WORK_DIR=str(scratch / "work"),
            INGEST_SECRETS_FILE=str(scratch / "none.toml"),
            RUNTIME__DLTHUB_TELEMETRY="false",
            **({"INGEST_COMPACT_LOADS": args.compact_loads} if args.compact_loads else {}),
            PYTHONPATH=str(ROOT),
            **{
                f"SOURCES__{name.upper()}__{key}": value
                for name in (SOURCE, FULL_SOURCE)
                for key, value in (
                    ("HOST", cluster.host),
                    ("PORT", str(cluster.port)),
                    ("DATABASE", database),
                    ("USERNAME", cluster.user),
                )
            },
        )
        env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:  # compiled once (by the first copy's process), read by every later one
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        config = scratch / "jobs.csv"
        config.write_text(
            "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,primary_key\n"
            f"full,Y,postgresql,{FULL_SOURCE},public,orders,FULL,order_id\n"
            f"cdc,Y,postgresql,{SOURCE},public,orders,CDC,\n"
        )

        def run(
            job: str, lake: str, extra: dict[str, str] | None = None
        ) -> tuple[float, float, float, float]:
            """(process seconds, peak MB, the job's own seconds: its audit duration_s, CPU
            seconds of the process and of the PostgreSQL cluster meanwhile)."""
            run_id = new_run_id()
            cmd = [PY, "-m", "ingest", "-q", "run", "--config", str(config), "--job", job]
            seconds, peak, _, cpu, server = whole_process(
                [*cmd, "--destination", lake, "--run-id", run_id],
                {**env, **(extra or {})},
                cluster,
            )
            return seconds, peak, job_seconds(lake, run_id), cpu + server

        worker = None
        if args.activity:
            worker = subprocess.Popen(
                [PY, str(ROOT / "bench" / "activity_worker.py")],
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )

        def activity(job: str, lake: str) -> tuple[float, float, float]:
            """(seconds, peak MB, CPU seconds of the worker and the cluster) of one
            `ingest_table` activity in the warm worker."""
            assert worker is not None and worker.stdin is not None and worker.stdout is not None
            request = {
                "run_id": new_run_id(),
                "job": job,
                "destination": lake,
                "config": str(config),
            }
            server = server_cpu(cluster)
            worker.stdin.write(json.dumps(request) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
            if not line:
                raise SystemExit("the activity worker ended (see its stderr above)")
            answer = json.loads(line)
            if answer["status"] != "SUCCESS":
                raise SystemExit(f"activity {job}: {answer}")
            cpu = answer["cpu"] + server_cpu(cluster) - server
            return answer["seconds"], answer["peak_mb"], cpu

        print(
            f"table: {args.rows:,} rows; {changed:,} changed ({args.changed:.0%}); "
            f"INGEST_COMPACT_LOADS={args.compact_loads or 'default'}; bytecode "
            f"{'compiled by every process' if args.no_bytecode_cache else 'cached'}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        lake = (scratch / "lake-cdc").as_uri()
        first_s, first_mb, _, _ = run("cdc", lake)
        print(f"CDC first copy:     {first_s:8.1f} s   peak {first_mb:7.0f} MB")
        with source.cursor() as cursor:
            for slot in ("bench_raw", "bench_decode"):
                cursor.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            cursor.execute("CREATE PUBLICATION bench_pub FOR TABLE orders")
        fulls: list[tuple[float, float, float, float]] = []
        cdcs_all: list[tuple[tuple[float, float, float, float], bool]] = []
        for round_ in range(args.repeat):  # interleaved: the machine's load hits both alike
            fulls.append(run("full", (scratch / f"lake-full-{round_}").as_uri()))
            updates, deletes = change(source, args.rows, changed, round_)
            measured, compacted = compacting(lake, lambda: run("cdc", lake))
            cdcs_all.append((measured, bool(compacted)))
            print(
                f"round {round_ + 1}: FULL {fulls[-1][0]:6.1f} s (job {fulls[-1][2]:.1f} s, "
                f"CPU {fulls[-1][3]:.1f} s) / {fulls[-1][1]:4.0f} MB, CDC run ({updates:,} "
                f"updates, {deletes:,} deletes) {measured[0]:6.1f} s (job {measured[2]:.1f} s, "
                f"CPU {measured[3]:.1f} s) / {measured[1]:4.0f} MB; "
                f"{measured[0] / fulls[-1][0]:.2f} x"
                f"{compacted}; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        cdcs = steady(cdcs_all)
        rounds = args.repeat
        warm_fulls: list[tuple[float, float, float]] = []
        warm_cdcs_all: list[tuple[tuple[float, float, float], bool]] = []
        if worker is not None:
            activity("cdc", lake)  # the worker's first activity: its imports and warm-up
            for round_ in range(args.repeat):
                lake_full = (scratch / f"lake-full-warm-{round_}").as_uri()
                warm_fulls.append(activity("full", lake_full))
                updates, deletes = change(source, args.rows, changed, rounds)
                rounds += 1
                warm, compacted = compacting(lake, lambda: activity("cdc", lake))
                warm_cdcs_all.append((warm, bool(compacted)))
                print(
                    f"activity round {round_ + 1}: FULL {warm_fulls[-1][0]:6.1f} s (CPU "
                    f"{warm_fulls[-1][2]:.1f} s) / {warm_fulls[-1][1]:4.0f} MB, CDC run "
                    f"({updates:,} updates, {deletes:,} deletes) {warm[0]:6.2f} s (CPU "
                    f"{warm[2]:.1f} s) / {warm[1]:4.0f} MB; "
                    f"{warm[0] / warm_fulls[-1][0]:.2f} x"
                    f"{compacted}; "
                    f"load average {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait()
        warm_cdcs = steady(warm_cdcs_all)
        full_s = statistics.median(f[0] for f in fulls)
        cdc_s = statistics.median(c[0] for c in cdcs)
        print(
            f"CLI process, FULL:  {full_s:8.1f} s   peak {max(f[1] for f in fulls):7.0f} MB "
            "(timed whole: the interpreter, imports, audit, views and report included)"
        )
        print(
            f"CLI process, CDC:   {cdc_s:8.1f} s   peak {max(c[1] for c in cdcs):7.0f} MB   "
            f"{changed / cdc_s:,.0f} changes/s   {cdc_s / full_s:.2f} x the FULL process (medians)"
        )
        full_cpu = statistics.median(f[3] for f in fulls)
        cdc_cpu = statistics.median(c[3] for c in cdcs)
        print(
            f"CPU seconds:        FULL {full_cpu:.1f} s, CDC {cdc_cpu:.1f} s: "
            f"{cdc_cpu / full_cpu:.2f} x (the process and its PostgreSQL: what a busy machine "
            "stretches the least)"
        )
        full_job = statistics.median(f[2] for f in fulls)
        cdc_job = statistics.median(c[2] for c in cdcs)
        print(
            f"the jobs alone:     FULL {full_job:.1f} s, CDC {cdc_job:.1f} s: "
            f"{cdc_job / full_job:.2f} x (audit duration_s: without the process's start, "
            "audit, views and report)"
        )
        if warm_cdcs:
            warm_full = statistics.median(f[0] for f in warm_fulls)
            warm_cdc = statistics.median(c[0] for c in warm_cdcs)
            full_cpu = statistics.median(f[2] for f in warm_fulls)
            cdc_cpu = statistics.median(c[2] for c in warm_cdcs)
            print(
                f"as activities:      FULL {warm_full:.2f} s (peak "
                f"{max(f[1] for f in warm_fulls):.0f} MB), CDC run {warm_cdc:.2f} s (peak "
                f"{max(c[1] for c in warm_cdcs):.0f} MB): {warm_cdc / warm_full:.2f} x; CPU "
                f"{full_cpu:.1f} s and {cdc_cpu:.1f} s: {cdc_cpu / full_cpu:.2f} x (medians; "
                "the `ingest_table` activity in a warm worker, as the function app runs it)"
            )
        if args.compaction:
            updates, deletes = change(source, args.rows, changed, rounds)
            rounds += 1
            every = {"INGEST_COMPACT_LOADS": "1", "INGEST_COMPACT_MAX_ROWS": "0"}
            seconds, peak, job_s, cpu = run("cdc", lake, every)
            print(
                f"CDC run that compacts the table at its end: {seconds:.1f} s (job {job_s:.1f} "
                f"s, CPU {cpu:.1f} s) / {peak:.0f} MB: {seconds / full_s:.2f} x the FULL copy; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            wait = max(1, -(-args.rows // 2_000_000))  # INGEST_COMPACT_MAX_ROWS's default
            average = (cdc_s * (wait - 1) + seconds) / wait
            print(
                f"CDC run, averaged over the default's {wait} runs (one compacts): "
                f"{average:.1f} s: {average / full_s:.2f} x the FULL copy"
            )
        # the slots of the floor and the decoder saw every round's changes
        changed *= rounds
        raw_n, raw_s = read_slot(cluster, database, "bench_raw", decode=False)
        print(
            f"reader floor:       {raw_s:8.1f} s   {raw_n / raw_s:,.0f} changes/s (psycopg2, no processing)"
        )
        dec_n, dec_s = read_slot(cluster, database, "bench_decode", decode=True)
        print(
            f"decoder:            {dec_s:8.1f} s   {dec_n / dec_s:,.0f} changes/s "
            f"({dec_n:,} change rows; {raw_s / dec_s:.2f} x the floor's rate)"
        )
        source.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
