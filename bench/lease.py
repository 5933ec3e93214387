"""What the job lease costs: `.venv/bin/python bench/lease.py [--repeat N]` (Azurite and
PostgreSQL running, e.g. after `python3 tasks.py services`).

One warm process (imports done, one job run first and thrown away), a 1,000-row FULL table in
the local PostgreSQL, `run_job` into a file:// lake and into an Azurite lake, with the job's
lease (the product) and with a no-op lease in its place (what the job cost before leases),
interleaved per repetition; and the lease's own work alone (acquire, check, release). Prints
every pair and the medians. Numbers only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


class NoLease:
    """Stands in for the job lease: what a job cost before it had one."""

    def __enter__(self) -> NoLease:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def check(self) -> None:
        return None


@contextlib.contextmanager
def without_lease() -> Iterator[None]:
    import ingest.job.run

    original = ingest.job.run._lease
    ingest.job.run._lease = lambda *args, **kwargs: NoLease()  # type: ignore[assignment]
    try:
        yield
    finally:
        ingest.job.run._lease = original  # type: ignore[assignment]


def setup_table(schema: str) -> None:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
            cur.execute(
                f'CREATE TABLE "{schema}".small AS SELECT g::bigint AS id, '
                "'name ' || g AS name, (g * 1.5)::numeric(12,2) AS amount, "
                "now() AS updated_at FROM generate_series(1, 1000) g"
            )
            cur.execute(f'ALTER TABLE "{schema}".small ADD PRIMARY KEY (id)')


def drop_schema(schema: str) -> None:
    import psycopg2

    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test") as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def task(schema: str, lake: str, run_id: str) -> dict[str, Any]:
    from ingest.config import JobConfig

    job = JobConfig(
        job_id="b1",
        enabled=True,
        source_type="postgresql",
        source_name="bench_lease",
        table_name="small",
        load_type="FULL",
        schema_name=schema,
    )
    return {"run_id": run_id, "job": job.to_dict(), "destination": lake}


def timed(schema: str, lake: str) -> float:
    from ingest.job import run_job

    started = time.perf_counter()
    result = run_job(task(schema, lake, f"bench-{uuid.uuid4().hex[:8]}"))
    elapsed = time.perf_counter() - started
    if result["status"] != "SUCCESS" or result["rows_loaded"] != 1000:
        raise SystemExit(f"bench job failed: {result['error'] or result}")
    return elapsed


def lease_alone(lake: str, repeat: int) -> list[float]:
    """Seconds for the lease's own work in a job: acquire, one check, release."""
    from ingest.lake.destination import Destination
    from ingest.lake.lease import Holder, lease_for

    dest = Destination.from_url(lake)
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        lease = lease_for(
            dest,
            "bench__lease",
            Holder.me(f"bench-{i}", "plain"),
            wait_s=0,
            same_task_wait_s=0,
            period_s=60,
        )
        with lease:
            lease.check()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15, help="pairs per lake (default 15)")
    args = parser.parse_args()
    os.environ.update(
        SOURCES__BENCH_LEASE__HOST="127.0.0.1",
        SOURCES__BENCH_LEASE__PORT="5432",
        SOURCES__BENCH_LEASE__DATABASE="test",
        SOURCES__BENCH_LEASE__USERNAME="postgres",
        RUNTIME__DLTHUB_TELEMETRY="false",
        AZURE_STORAGE_CONNECTION_STRING=AZURITE,
    )
    import logging

    logging.basicConfig(level=logging.WARNING)
    from azure.storage.blob import BlobServiceClient

    schema = f"bench_lease_{uuid.uuid4().hex[:6]}"
    container = f"bench-lease-{uuid.uuid4().hex[:6]}"
    service = BlobServiceClient.from_connection_string(AZURITE)
    service.create_container(container)
    setup_table(schema)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            lakes = {"file://": Path(scratch, "lake").as_uri(), "azurite": f"az://{container}"}
            for lake in lakes.values():  # warm: imports, first connection, dataset folders
                timed(schema, lake)
            for name, lake in lakes.items():
                alone = lease_alone(lake, 50)
                print(
                    f"\n{name} lake, the lease alone (acquire, check, release), 50 times: "
                    f"median {statistics.median(alone) * 1000:.1f} ms, "
                    f"min {min(alone) * 1000:.1f} ms, max {max(alone) * 1000:.1f} ms"
                )
            for name, lake in lakes.items():
                pairs = []
                for _ in range(args.repeat):
                    with_lease = timed(schema, lake)
                    with without_lease():
                        without = timed(schema, lake)
                    pairs.append((with_lease, without))
                print(f"\n{name} lake, 1,000-row FULL table, run_job warm, {args.repeat} pairs")
                print(
                    "  with lease / without (s): " + ", ".join(f"{a:.3f}/{b:.3f}" for a, b in pairs)
                )
                med_with = statistics.median(a for a, _ in pairs)
                med_without = statistics.median(b for _, b in pairs)
                diffs = statistics.median(a - b for a, b in pairs)
                print(
                    f"  median with {med_with:.3f} s, without {med_without:.3f} s, "
                    f"median pair difference {diffs * 1000:+.1f} ms"
                )
    finally:
        drop_schema(schema)
        service.delete_container(container)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
