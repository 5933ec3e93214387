"""The engine against a real MariaDB (MySQL) source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from ingest.config import JobConfig
from tests.conftest import read_lake_table
from tests.fixtures.jobs import run_task

SOURCE = "shop_db"


def make_items(mariadb, first: int, last: int, updated: dt.datetime) -> None:
    mariadb.executemany(
        "INSERT INTO items VALUES (%s, %s, %s, %s, %s)",
        [
            (
                i,
                f"Crème brûlée №{i} 🍮" if i % 3 else None,
                Decimal(i) / 100 + Decimal("1000.10"),
                updated + dt.timedelta(seconds=i),
                i % 2 == 0,
            )
            for i in range(first, last + 1)
        ],
    )


def lake_rows(destination: str) -> list[tuple]:
    table = read_lake_table(destination, SOURCE, "items")
    columns = ["id", "name", "price", "updated_at", "active"]
    return sorted(tuple(r[c] for c in columns) for r in table.select(columns).to_pylist())


def source_rows(mariadb) -> list[tuple]:
    return sorted(
        (r[0], r[1], r[2], r[3], bool(r[4]))
        for r in mariadb.query("SELECT id, name, price, updated_at, active FROM items")
    )


def test_mariadb_full_then_incremental(mariadb, azure_lake, monkeypatch):
    mariadb.execute(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), price DECIMAL(12,4), "
        "updated_at DATETIME(6) NOT NULL, active BOOLEAN)"
    )
    make_items(mariadb, 1, 3000, dt.datetime(2024, 5, 1))
    mariadb.use_as(monkeypatch, SOURCE)
    job = JobConfig(
        job_id="m1",
        enabled=True,
        source_type="mysql",
        source_name=SOURCE,
        table_name="items",
        load_type="INCREMENTAL",
        watermark_column="updated_at",
        primary_key=("id",),
    )

    def run(run_id: str) -> dict:
        result = run_task({"run_id": run_id, "job": job.to_dict(), "destination": azure_lake})
        assert result["status"] == "SUCCESS", result["error"]
        return result

    first = run("r1")
    assert first["rows_loaded"] == 3000
    landed = read_lake_table(azure_lake, SOURCE, "items")
    assert landed.schema.field("price").type == pa.decimal128(12, 4)
    assert lake_rows(azure_lake) == source_rows(mariadb)

    last = dt.datetime(2024, 5, 1) + dt.timedelta(seconds=3000)
    mariadb.execute(
        "INSERT INTO items VALUES (3001, 'same second', 1.0, %s, 1)", (last,)
    )  # equal to the stored watermark: must land once
    make_items(mariadb, 3002, 3050, dt.datetime(2024, 6, 1))
    second = run("r2")

    assert second["rows_loaded"] == 50
    assert lake_rows(azure_lake) == source_rows(mariadb)
