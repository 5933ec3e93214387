"""Optional Delta output: `table_format = delta` lands as a Delta table
under `<source>/<table>/`, merged by key per run (a keyed INCREMENTAL job: the table is its
current state), with the same audit; read back with deltalake."""

from __future__ import annotations

import pytest

from ingest.lake import delta
from ingest.lake.destination import Destination
from ingest.lake.lease import Holder, lease_for, lease_name
from ingest.lake.loads import is_delta_table, remove_incomplete_loads
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, job, run


def delta_rows(destination: str) -> list[tuple]:
    table = delta.read_table(Destination.from_url(destination), SOURCE, "orders")
    data = [c for c in table.column_names if not c.startswith("_dlt") and c != "_deleted"]
    return sorted(tuple(r.values()) for r in table.select(data).to_pylist())


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def test_incremental_job_lands_as_a_delta_table_merged_by_key(pg, lake, monkeypatch):
    from deltalake import DeltaTable

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 500)
    pg.use_as(monkeypatch, SOURCE)
    config = job(pg, table_format="delta")

    first = run(config, lake, "run-1")
    assert first["status"] == "SUCCESS", first["error"]
    assert first["rows_loaded"] == 500 and first["reconciled"] == "MATCH"
    dest = Destination.from_url(lake)
    assert is_delta_table(dest, SOURCE, "orders")
    assert delta_rows(lake) == pg.query("SELECT * FROM orders ORDER BY 1")

    insert_orders(pg, 501, 560, updated_at="2024-05-01T00:00:00+00")
    # a new row exactly at the stored watermark: landed; the window [stored, reached] is read
    # and counted whole (the row that landed before at the stored watermark is told apart)
    watermark = pg.query("SELECT max(updated_at) FROM orders WHERE order_id <= 500")[0][0]
    pg.execute(
        "INSERT INTO orders (order_id, qty, created_at, updated_at) VALUES (9001, 1, now(), %s)",
        (watermark,),
    )
    # the clean-up before each run leaves the Delta table's files alone
    second = run(config, lake, "run-2")
    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_loaded"] == 61 and second["reconciled"] == "MATCH", second
    assert second["source_rows"] == 62  # 60 new + the two rows at the stored watermark
    assert delta_rows(lake) == pg.query("SELECT * FROM orders ORDER BY 1")
    # an update merges: the table holds the key once, with its new values
    pg.execute(
        "UPDATE orders SET qty = 99, updated_at = '2024-06-01T00:00:00+00' WHERE order_id = 3"
    )
    assert run(config, lake, "run-3")["status"] == "SUCCESS"
    assert delta_rows(lake) == pg.query("SELECT * FROM orders ORDER BY 1")
    uri, options = delta.table_uri(dest, SOURCE, "orders")
    table = DeltaTable(uri, storage_options=options or None)
    writes = [h.get("operation") for h in table.history()]
    assert "MERGE" in writes
    assert table.version() >= 1
    lease = lease_for(
        dest,
        lease_name(SOURCE, "orders"),
        Holder.me("check", "plain"),
        wait_s=0,
        same_task_wait_s=0,
        period_s=60,
    )
    with lease:
        report, _ = remove_incomplete_loads(
            dest, SOURCE, "orders", config.pipeline_name, config.schema_name_in_lake, (), lease
        )
    assert report.data_files_removed == 0


def test_a_keyed_delta_table_applies_its_delete_markers(pg, file_lake, monkeypatch):
    """delete_detection = keys on a Delta job: the markers delete their keys from the table
    itself (a merge), so every Delta reader sees the source's current state."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 100)
    pg.use_as(monkeypatch, SOURCE)
    config = job(pg, table_format="delta", delete_detection="keys")
    assert run(config, file_lake, "run-1")["status"] == "SUCCESS"
    pg.execute("DELETE FROM orders WHERE order_id IN (5, 50, 99)")
    second = run(config, file_lake, "run-2")
    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_deleted"] == 3
    assert delta_rows(file_lake) == pg.query("SELECT * FROM orders ORDER BY 1")
