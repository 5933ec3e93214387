"""How long writing the lake's views takes: `.venv/bin/python bench/views.py --help`.

Builds a lake the way dlt lays it out (completion markers, stored schemas, one Parquet file per
load in the load id's UTC date folder) for --jobs jobs in sources of 20 tables, --loads nights
each (half the jobs FULL, half INCREMENTAL), then times `refresh_views` for all jobs:
  first       every load is new to the views (date folders listed, footers read)
  nightly     one new load per job (what a nightly run's refresh does)
  unchanged   nothing new (the markers and schema listings only)
on a local folder, and with --azurite on an Azurite container (INGEST_TEST_AZURITE_CONNECTION_STRING
or the one `python3 tasks.py services` starts). Prints numbers only; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = 86400.0
COLUMNS = {
    "id": {"name": "id", "data_type": "bigint", "nullable": False},
    "name": {"name": "name", "data_type": "text", "nullable": True},
    "amount": {"name": "amount", "data_type": "decimal", "precision": 12, "scale": 2},
    "updated_at": {"name": "updated_at", "data_type": "timestamp", "timezone": True},
}


def parquet_bytes(rows: int, seed: int) -> bytes:
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "id": pa.array(range(seed, seed + rows), pa.int64()),
            "name": [f"n{i}" for i in range(rows)],
            "amount": pa.array([Decimal(i) / 100 for i in range(rows)], pa.decimal128(12, 2)),
            "updated_at": pa.array([start + dt.timedelta(seconds=i) for i in range(rows)]),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def jobs_of(count: int) -> list[Any]:
    from ingest.config import JobConfig

    jobs = []
    for n in range(count):
        full = n % 2 == 0
        jobs.append(
            JobConfig(
                job_id=f"{n:03d}",
                enabled=True,
                source_type="postgresql",
                source_name=f"src_{n // 20:02d}",
                table_name=f"table_{n:03d}",
                load_type="FULL" if full else "INCREMENTAL",
                watermark_column=None if full else "updated_at",
            )
        )
    return jobs


def write_loads(fs: Any, root: str, jobs: list[Any], nights: range, now: float) -> None:
    """One load per job per night: marker, data file in its date folder, schema once."""
    import datetime as dt

    data = parquet_bytes(100, 0)
    for job in jobs:
        schema = job.schema_name_in_lake
        base = f"{root}/{job.source_name}"
        version = f"{base}/_dlt_version/{schema}__{now - 400 * DAY:.7f}__h{job.job_id}.jsonl"
        if not fs.exists(version):
            tables = {job.lake_table: {"name": job.lake_table, "columns": COLUMNS}}
            fs.pipe_file(version, json.dumps({"schema": {"tables": tables}}).encode())
        for night in nights:
            load_id = f"{now - night * DAY:.7f}"
            day = dt.datetime.fromtimestamp(float(load_id), dt.UTC)
            name = f"{load_id}.{uuid.uuid4().hex[:10]}.parquet"
            fs.pipe_file(f"{base}/{job.lake_table}/{day:%Y/%m/%d}/{name}", data)
            fs.pipe_file(f"{base}/_dlt_loads/{schema}__{load_id}.jsonl", b"{}")


def measure(jobs: list[Any], destination: str) -> tuple[float, Any]:
    from ingest.views.refresh import refresh_views

    clock = time.perf_counter()
    report = refresh_views(jobs, destination)
    elapsed = time.perf_counter() - clock
    if report.errors:
        raise SystemExit(f"views failed: {report.errors[:3]}")
    return elapsed, report


def bench(destination: str, jobs: list[Any], loads: int, repeat: int) -> None:
    from ingest.lake.destination import Destination

    dest = Destination.from_url(destination)
    fs = dest.filesystem()
    root = dest.path()
    now = time.time() - 2 * DAY
    write_loads(fs, root, jobs, range(loads, 0, -1), now)
    first, report = measure(jobs, destination)
    print(f"  first     {first:7.2f} s  ({report.files_written} files written)")
    nightly, unchanged = [], []
    for step in range(repeat):
        write_loads(fs, root, jobs, range(-step, -step - 1, -1), now)
        elapsed, report = measure(jobs, destination)
        nightly.append(elapsed)
        elapsed, _ = measure(jobs, destination)
        unchanged.append(elapsed)
    print(f"  nightly   {statistics.median(nightly):7.2f} s  (median of {repeat}: {nightly})")
    print(f"  unchanged {statistics.median(unchanged):7.2f} s  (median of {repeat})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--loads", type=int, default=30, help="nights already in the lake")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--azurite", action="store_true", help="also on an Azurite container")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    jobs = jobs_of(args.jobs)
    print(f"{args.jobs} jobs, {args.loads} loads each, one file per load")
    with tempfile.TemporaryDirectory() as folder:
        print("local folder:")
        bench(Path(folder).as_uri(), jobs, args.loads, args.repeat)
    if args.azurite:
        from azure.storage.blob import BlobServiceClient

        from tests import services

        connection = os.environ.get("INGEST_TEST_AZURITE_CONNECTION_STRING")
        connection = connection or services.ensure_azurite()
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection
        container = f"bench-views-{uuid.uuid4().hex[:8]}"
        service = BlobServiceClient.from_connection_string(connection)
        service.create_container(container)
        try:
            print("Azurite (blob API over loopback):")
            bench(f"az://{container}", jobs, args.loads, args.repeat)
        finally:
            service.delete_container(container)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
