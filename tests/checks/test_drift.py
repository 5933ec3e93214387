"""Schema drift: add a column, change a type, drop a column in
PostgreSQL between runs; each schema_policy behaves as specified, and the audit and the
`IngestionSchemaChanged` telemetry event name the columns."""

from __future__ import annotations

import logging

import pytest

from ingest import telemetry
from ingest.checks.drift import SOURCE_COLUMNS_HINT, stored_schema
from ingest.lake.destination import Destination
from tests.conftest import lake_files, read_lake_table
from tests.fixtures.orders import SOURCE, job, run

DDL = "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint, note text, updated_at timestamptz)"


def add_rows(pg, first: int, last: int, day: str) -> None:
    pg.execute(
        "INSERT INTO items (id, qty, note, updated_at) "
        "SELECT g, g * 10, 'n' || g, %s::timestamptz + (g || ' seconds')::interval "
        "FROM generate_series(%s, %s) g",
        (day, first, last),
    )


def items_job(pg, policy: str, load_type: str = "INCREMENTAL"):
    return job(
        pg,
        table="items",
        load_type=load_type,
        primary_key=("id",),
        schema_policy=policy,
        job_id="d1",
    )


def drift_all(pg) -> None:
    """Add `discount`, change `qty` bigint -> text, drop `note`, and add two rows."""
    pg.execute("ALTER TABLE items ADD COLUMN discount numeric(10, 2)")
    pg.execute("ALTER TABLE items ALTER COLUMN qty TYPE text")
    pg.execute("ALTER TABLE items DROP COLUMN note")
    pg.execute(
        "INSERT INTO items (id, qty, updated_at, discount) VALUES "
        "(101, 'ten', '2024-02-01T00:00:00+00', 1.50), (102, 'x', '2024-02-02T00:00:00+00', 2.25)"
    )


class Events(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def events(monkeypatch):
    """Capture custom events as ingest.telemetry would send them (telemetry 'on')."""
    handler = Events()
    logger = logging.getLogger(telemetry.EVENT_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(telemetry, "configure", lambda: True)
    monkeypatch.setattr(telemetry, "flush", lambda timeout_s=0: True)
    yield handler.records
    logger.removeHandler(handler)


def schema_events(records) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage() == "IngestionSchemaChanged"]


def setup(pg, monkeypatch, file_lake, policy):
    pg.execute(DDL)
    add_rows(pg, 1, 100, "2024-01-01T00:00:00+00")
    pg.use_as(monkeypatch, SOURCE)
    first = run(items_job(pg, policy), file_lake, "run-1")
    assert first["status"] == "SUCCESS", first["error"]
    assert first["schema_changes"] == ""  # first load: nothing to compare with
    return first


EXPECTED = "added: discount (decimal); removed: note; type changed: qty bigint->text"


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_evolve_loads_and_reports_every_change(backend, pg, file_lake, monkeypatch, events):
    monkeypatch.setenv("INGEST_BACKEND", backend)
    setup(pg, monkeypatch, file_lake, "evolve")
    drift_all(pg)

    second = run(items_job(pg, "evolve"), file_lake, "run-2")

    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_loaded"] == 2
    assert second["schema_changes"] == EXPECTED
    (event,) = schema_events(events)
    assert event.schema_changes == EXPECTED
    assert event.columns_added == "discount" and event.columns_removed == "note"
    assert event.columns_type_changed == "qty" and event.job_id == "d1"
    # the new rows landed with the new column and the new type
    newest = [p for p in lake_files(file_lake, SOURCE, "items") if second["load_id"] in p]
    import pyarrow.parquet as pq

    landed = pq.read_table(newest[0])
    assert "discount" in landed.column_names
    # the dropped column is gone from the data (absent, or all null on the cast fast path)
    assert "note" not in landed.column_names or landed.column("note").null_count == 2
    assert sorted(landed.column("qty").to_pylist()) == ["ten", "x"]
    # the audit carries it
    from tests.fixtures.audit import write_audit_json

    write_audit_json({"run_id": "run-2", "destination": file_lake, "results": [second]})
    import csv
    import glob

    (audit,) = glob.glob(file_lake[len("file://") :] + "/metadata/audit_*.csv")
    rows = list(csv.DictReader(open(audit, encoding="utf-8")))
    (row,) = [r for r in rows if r["run_id"] == "run-2"]  # (run-1's row: recovered, untouched)
    assert row["schema_changes"] == EXPECTED
    # reported once: the next run (no change) is quiet, the removed column is not repeated
    third = run(items_job(pg, "evolve"), file_lake, "run-3")
    assert third["status"] == "SUCCESS" and third["schema_changes"] == ""
    assert len(schema_events(events)) == 1


def test_freeze_fails_with_the_diff_before_anything_lands(pg, file_lake, monkeypatch, events):
    setup(pg, monkeypatch, file_lake, "freeze")
    files_before = lake_files(file_lake, SOURCE, "items")
    drift_all(pg)

    second = run(items_job(pg, "freeze"), file_lake, "run-2")

    assert second["status"] == "FAILED"
    assert "schema_policy freeze" in second["error"]
    for part in ("added: discount (decimal)", "removed: note", "type changed: qty bigint->text"):
        assert part in second["error"]
    assert second["rows_loaded"] == 0
    assert lake_files(file_lake, SOURCE, "items") == files_before  # nothing landed
    assert read_lake_table(file_lake, SOURCE, "items").num_rows == 100
    # the watermark did not move: after switching to evolve the two rows load
    third = run(items_job(pg, "evolve"), file_lake, "run-3")
    assert third["status"] == "SUCCESS" and third["rows_loaded"] == 2
    assert third["schema_changes"] == EXPECTED


def test_freeze_with_a_single_added_column(pg, file_lake, monkeypatch):
    setup(pg, monkeypatch, file_lake, "freeze")
    pg.execute("ALTER TABLE items ADD COLUMN extra text")
    second = run(items_job(pg, "freeze"), file_lake, "run-2")
    assert second["status"] == "FAILED" and "added: extra (text)" in second["error"]
    assert "removed" not in second["error"] and "type changed" not in second["error"]


def test_discard_columns_loads_known_columns_and_reports_the_rest(
    pg, file_lake, monkeypatch, events
):
    setup(pg, monkeypatch, file_lake, "discard_columns")
    pg.execute("ALTER TABLE items ADD COLUMN discount numeric(10, 2)")
    pg.execute("ALTER TABLE items DROP COLUMN note")
    pg.execute(
        "INSERT INTO items (id, qty, updated_at, discount) "
        "VALUES (101, 5, '2024-02-01T00:00:00+00', 1.50)"
    )

    second = run(items_job(pg, "discard_columns"), file_lake, "run-2")

    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_loaded"] == 1
    assert second["schema_changes"] == "discarded: discount (decimal); removed: note"
    (event,) = schema_events(events)
    assert event.columns_discarded == "discount"
    landed = read_lake_table(file_lake, SOURCE, "items")
    assert "discount" not in landed.column_names
    assert sorted(landed.column("id").to_pylist()) == list(range(1, 102))
    schema = stored_schema(
        Destination.from_url(file_lake), SOURCE, items_job(pg, "x").schema_name_in_lake
    )
    table = schema["tables"]["items"]
    assert "discount" not in table["columns"]
    assert "discount" in table[SOURCE_COLUMNS_HINT]


def test_full_load_drift_is_reported_too(pg, file_lake, monkeypatch):
    pg.execute(DDL)
    add_rows(pg, 1, 10, "2024-01-01T00:00:00+00")
    pg.use_as(monkeypatch, SOURCE)
    assert run(items_job(pg, "evolve", "FULL"), file_lake, "run-1")["schema_changes"] == ""
    pg.execute("ALTER TABLE items ADD COLUMN flag boolean")
    second = run(items_job(pg, "evolve", "FULL"), file_lake, "run-2")
    assert second["status"] == "SUCCESS" and second["schema_changes"] == "added: flag (bool)"
    assert second["reconciled"] == "MATCH"
