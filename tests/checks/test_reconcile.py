"""Row-count reconciliation against real PostgreSQL / MariaDB sources.

The race the reconciliation must never hide: a source row that appears while the job runs.
It is simulated by inserting it at a precise point (after the first count, or between the
extraction and the final count) through a wrapper around the reconciler's own steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ingest.checks.reconcile import Reconciler
from ingest.config import JobConfig
from ingest.sources import REGISTRY, builder_class, capabilities
from tests.conftest import read_lake_table
from tests.fixtures.jobs import run_task
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, job, run
from tests.fixtures.rest import api_row, job_row, write_workbook
from tests.fixtures.rest import run as run_config
from tests.fixtures.sheet import TABLE_JOB, sheet_header


def lake_ids(destination: str, table: str = "orders", source: str = SOURCE) -> list[int]:
    landed = read_lake_table(destination, source, table)
    return [] if landed is None else sorted(landed.column("order_id").to_pylist())


def source_ids(pg, table: str = "orders") -> list[int]:
    return [r[0] for r in pg.query(f"SELECT order_id FROM {table} ORDER BY 1")]


def tag_sessions(pg, monkeypatch) -> str:
    """Give this test's engine connections an application_name of their own (the engine's is
    `dlt-ingest` for all jobs; other test runs on this server use it at the same time)."""
    from ingest.sources.sql import PostgresBuilder

    name = f"dlt-ingest-{pg.name}"
    original = PostgresBuilder.engine_kwargs

    def engine_kwargs(self):
        kwargs = original(self)
        assert kwargs["connect_args"]["application_name"] == "dlt-ingest"
        kwargs["connect_args"]["application_name"] = name
        return kwargs

    monkeypatch.setattr(PostgresBuilder, "engine_kwargs", engine_kwargs)
    return name


def our_sessions(pg, where: str = "TRUE") -> int:
    """Open connections of this test's engine (see `tag_sessions`) to the source."""
    rows = pg.query(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND {where}",
        (f"dlt-ingest-{pg.name}",),
    )
    return int(rows[0][0])


def insert_late_row(pg, order_id: int, updated_at: str = "2024-01-01T00:00:30+00") -> None:
    pg.execute(
        "INSERT INTO orders (order_id, qty, created_at, updated_at) VALUES (%s, 1, now(), %s)",
        (order_id, updated_at),
    )


def before_final_count(monkeypatch, action) -> None:
    """Run `action` after dlt extracted, right before the reconciler starts its final count
    (which then runs while dlt normalizes and loads)."""
    original = Reconciler.after_extraction

    def after_extraction(self, *args, **kwargs):
        action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Reconciler, "after_extraction", after_extraction)


def after_first_count(monkeypatch, action) -> None:
    """Run `action` after the FULL "before" count, before dlt reads the table."""
    original = Reconciler.before_extraction

    def before_extraction(self):
        original(self)
        action()

    monkeypatch.setattr(Reconciler, "before_extraction", before_extraction)


# ------------------------------------------------------------------------------------------
# FULL, PostgreSQL in one REPEATABLE READ snapshot (pyarrow backend reads through our engine)


def test_full_snapshot_counts_the_extracted_snapshot_not_a_later_row(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 300)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", "pyarrow")
    # committed by another session while the job's snapshot is open: after the first count
    # (dlt has not read yet) and again between the extraction and the final count
    after_first_count(monkeypatch, lambda: insert_late_row(pg, 1001))
    before_final_count(monkeypatch, lambda: insert_late_row(pg, 1002))

    result = run(job(pg, load_type="FULL"), file_lake, "run-1")

    assert result["status"] == "SUCCESS", result["error"]
    assert result["reconciled"] == "MATCH"
    assert "snapshot" in result["reconcile_note"]
    # consistent: the count and the lake are the same snapshot (neither late row)
    assert result["source_rows"] == result["rows_loaded"] == 300
    assert lake_ids(file_lake) == list(range(1, 301))
    # the rows were not lost: the next FULL load has them
    monkeypatch.undo()
    pg.use_as(monkeypatch, SOURCE)
    second = run(job(pg, load_type="FULL"), file_lake, "run-2")
    assert second["reconciled"] == "MATCH" and second["rows_loaded"] == 302


def test_snapshot_reads_through_one_connection_and_rolls_back(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 50)
    pg.use_as(monkeypatch, SOURCE)
    tag_sessions(pg, monkeypatch)
    monkeypatch.setenv("INGEST_BACKEND", "pyarrow")
    seen: dict = {}
    original = Reconciler.close

    def close(self):
        seen["reads"] = self.snapshot.table_reads if self.snapshot else None
        original(self)

    monkeypatch.setattr(Reconciler, "close", close)
    result = run(job(pg, load_type="FULL"), file_lake, "run-1")
    assert result["reconciled"] == "MATCH"
    assert seen["reads"] >= 1  # dlt's SELECT went through the snapshot connection
    # nothing left open on the server: no idle-in-transaction session of ours
    assert our_sessions(pg, "state LIKE 'idle in transaction%%'") == 0


# ------------------------------------------------------------------------------------------
# FULL without a shared snapshot: the counts bracket the extraction


def no_snapshots(monkeypatch) -> None:
    """As for a source type without snapshot isolation: counts before and after the read."""
    for name in REGISTRY:
        cls = builder_class(name)
        unsnapped = dataclasses.replace(cls.capabilities, snapshot_isolation=False)
        monkeypatch.setattr(cls, "capabilities", unsnapped)


@pytest.mark.parametrize("backend", ["auto", "pyarrow-no-snapshot"])
def test_full_row_between_extraction_and_count_is_a_mismatch(backend, pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 200)
    pg.use_as(monkeypatch, SOURCE)
    if backend == "pyarrow-no-snapshot":
        monkeypatch.setenv("INGEST_BACKEND", "pyarrow")
        no_snapshots(monkeypatch)
    before_final_count(monkeypatch, lambda: insert_late_row(pg, 5000))

    result = run(job(pg, load_type="FULL"), file_lake, "run-1")

    assert result["reconciled"] == "MISMATCH"
    assert result["status"] == "FAILED"
    assert result["rows_loaded"] == 200 and result["source_rows"] == 201
    assert "reconciliation mismatch" in result["error"] and "200" in result["error"]
    assert lake_ids(file_lake) == list(range(1, 201))


def test_full_without_change_matches(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 120)
    pg.use_as(monkeypatch, SOURCE)
    result = run(job(pg, load_type="FULL"), file_lake, "run-1")
    assert (result["status"], result["reconciled"]) == ("SUCCESS", "MATCH")
    assert result["source_rows"] == 120 == len(lake_ids(file_lake))


def test_mismatch_is_a_warning_with_ingest_reconcile_warn(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 20)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_RECONCILE", "WARN")
    no_snapshots(monkeypatch)
    before_final_count(monkeypatch, lambda: insert_late_row(pg, 999))
    result = run(job(pg, load_type="FULL"), file_lake, "run-1")
    assert (result["status"], result["reconciled"]) == ("WARN", "MISMATCH")
    assert result["error"] == ""
    assert "21 after extraction, lake 20 rows" in result["reconcile_note"]


def test_bad_ingest_reconcile_value_is_refused_before_anything_loads(
    pg, file_lake, monkeypatch, capsys
):
    """A bad setting is the run's problem, not one job's: refused up front (exit 2)."""
    from ingest.cli import main
    from ingest.settings import SettingsError

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 5)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_RECONCILE", "MAYBE")
    with pytest.raises(
        SettingsError, match="INGEST_RECONCILE: 'MAYBE' is not one of: FAILED, WARN"
    ):
        run(job(pg, load_type="FULL"), file_lake, "run-1")
    config = Path(file_lake.removeprefix("file://")).parent / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
        )
        + "\n"
        f"f1,Y,postgresql,{SOURCE},{pg.name},orders,FULL\n"
    )
    assert main(["run", "--config", str(config), "--destination", file_lake]) == 2
    assert "INGEST_RECONCILE" in capsys.readouterr().err
    assert lake_ids(file_lake) == []


# ------------------------------------------------------------------------------------------
# INCREMENTAL: the loaded watermark window, counted after the extraction


def test_incremental_windows_match_across_runs_including_boundary_rows(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 100)
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg), file_lake, "run-1")
    assert (first["reconciled"], first["source_rows"], first["rows_loaded"]) == ("MATCH", 100, 100)
    # new rows, one of them exactly at the stored watermark (dlt loads it: new key)
    watermark = pg.query("SELECT max(updated_at) FROM orders")[0][0]
    pg.execute(
        "INSERT INTO orders (order_id, qty, created_at, updated_at) VALUES (7000, 1, now(), %s)",
        (watermark,),
    )
    insert_orders(pg, 101, 130, updated_at="2024-03-01T00:00:00+00")
    second = run(job(pg), file_lake, "run-2")
    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_loaded"] == 31
    assert second["reconciled"] == "MATCH", second["reconcile_note"]
    # the read window [old watermark, new watermark]: 30 new rows, the new row at the old
    # watermark, and the row loaded before at it (re-read, told apart, not landed again)
    assert second["source_rows"] == 32
    assert "1 re-read row(s) at the last watermark had landed before" in second["reconcile_note"]
    third = run(job(pg), file_lake, "run-3")
    # nothing new: the row at the last watermark is read again and known (not landed)
    assert (third["rows_loaded"], third["reconciled"], third["source_rows"]) == (0, "MATCH", 1)
    assert lake_ids(file_lake) == source_ids(pg)


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_incremental_late_row_inside_the_window_is_a_mismatch(backend, pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 100)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    # committed after dlt read, with a watermark below the new one: the next run starts
    # above it, so this row would be lost for good; the count must say so
    before_final_count(monkeypatch, lambda: insert_late_row(pg, 8000))
    result = run(job(pg), file_lake, "run-1")
    assert (result["status"], result["reconciled"]) == ("FAILED", "MISMATCH")
    assert (result["source_rows"], result["rows_loaded"]) == (101, 100)


def test_incremental_row_above_the_window_is_not_counted(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 40)
    pg.use_as(monkeypatch, SOURCE)
    before_final_count(monkeypatch, lambda: insert_late_row(pg, 9000, "2030-01-01T00:00:00+00"))
    result = run(job(pg), file_lake, "run-1")
    assert (result["reconciled"], result["source_rows"]) == ("MATCH", 40)
    monkeypatch.undo()
    pg.use_as(monkeypatch, SOURCE)
    nxt = run(job(pg), file_lake, "run-2")
    assert (nxt["rows_loaded"], nxt["reconciled"]) == (1, "MATCH")


def test_failed_load_reports_the_load_error_and_the_background_count_leaves_nothing_open(
    pg, file_lake, monkeypatch
):
    """The final count runs while dlt loads: when the load fails, the job reports the load's
    error and no moved watermark, and the job's connections are closed once the count ends
    (one engine per job, disposed of at its end)."""
    from dlt.pipeline.pipeline import Pipeline

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 60)
    pg.use_as(monkeypatch, SOURCE)
    tag_sessions(pg, monkeypatch)
    started: list[bool] = []
    original = Reconciler.after_extraction

    def after_extraction(self, *args, **kwargs):
        original(self, *args, **kwargs)
        started.append(self._final_count is not None)

    def broken_load(self, *args, **kwargs):
        raise OSError("lake refused the write")

    monkeypatch.setattr(Reconciler, "after_extraction", after_extraction)
    monkeypatch.setattr(Pipeline, "load", broken_load)
    result = run(job(pg), file_lake, "run-1")

    assert started == [True]  # the count was under way before the load was tried
    assert result["status"] == "FAILED" and "lake refused the write" in result["error"]
    assert not result.get("watermark_after")  # nothing committed, no watermark reported
    assert lake_ids(file_lake) == []
    assert our_sessions(pg) == 0
    # the next run loads everything and reconciles, and also leaves no connection open
    monkeypatch.undo()
    pg.use_as(monkeypatch, SOURCE)
    tag_sessions(pg, monkeypatch)
    again = run(job(pg), file_lake, "run-2")
    assert (again["rows_loaded"], again["reconciled"]) == (60, "MATCH")
    assert our_sessions(pg) == 0


# ------------------------------------------------------------------------------------------
# MariaDB: the same snapshot method (REPEATABLE READ, InnoDB consistent read)


def test_mariadb_full_snapshot_and_bracketing(mariadb, file_lake, monkeypatch):
    mariadb.execute("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB")
    mariadb.executemany("INSERT INTO items VALUES (%s, %s)", [(i, f"n{i}") for i in range(1, 81)])
    mariadb.use_as(monkeypatch, "maria")
    config = JobConfig(
        job_id="m1",
        enabled=True,
        source_type="mysql",
        source_name="maria",
        table_name="items",
        load_type="FULL",
        schema_name=mariadb.name,
    )

    def task(run_id: str) -> dict:
        return {"run_id": run_id, "job": config.to_dict(), "destination": file_lake}

    after_first_count(monkeypatch, lambda: mariadb.execute("INSERT INTO items VALUES (500, 'x')"))
    result = run_task(task("run-1"))
    assert (result["status"], result["reconciled"]) == ("SUCCESS", "MATCH"), result
    assert result["source_rows"] == result["rows_loaded"] == 80
    landed = read_lake_table(file_lake, "maria", "items")
    assert sorted(landed.column("id").to_pylist()) == list(range(1, 81))

    monkeypatch.undo()
    mariadb.use_as(monkeypatch, "maria")
    no_snapshots(monkeypatch)
    before_final_count(monkeypatch, lambda: mariadb.execute("INSERT INTO items VALUES (501, 'y')"))
    second = run_task(task("run-2"))
    assert (second["reconciled"], second["source_rows"], second["rows_loaded"]) == (
        "MISMATCH",
        82,
        81,
    )


# ------------------------------------------------------------------------------------------
# REST: no count


def test_rest_job_reports_skipped_with_its_reason(tmp_path, monkeypatch, file_lake):
    from tests.conftest import set_source_env
    from tests.rest_server import ApiServer

    with ApiServer(30) as api:
        set_source_env(monkeypatch, "crm", base_url=api.base_url)
        config = write_workbook(
            tmp_path / "ingest.xlsx",
            [job_row("001", "crm", load_type="FULL", watermark_column=None)],
            [api_row("001", "cursor", incremental_param=None)],
        )
        (result,) = run_config(config, file_lake)
    assert result["status"] == "SUCCESS", result["error"]
    assert result["rows_loaded"] == 30
    assert result["reconciled"] == "SKIPPED"
    assert (
        result["reconcile_note"]
        == capabilities("rest_api").no_count_reason
        == ("REST source has no row count")
    )
    assert result["source_rows"] is None


# ------------------------------------------------------------------------------------------
# telemetry and the command line


def test_mismatch_emits_telemetry_and_warn_keeps_exit_code_0(pg, file_lake, monkeypatch, tmp_path):
    import csv
    import logging

    from ingest import telemetry
    from ingest.cli import main

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 10)
    pg.use_as(monkeypatch, SOURCE)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    events = logging.getLogger(telemetry.EVENT_LOGGER)
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    monkeypatch.setattr(telemetry, "configure", lambda: True)
    monkeypatch.setattr(telemetry, "flush", lambda timeout_s=0: True)
    monkeypatch.setattr(telemetry, "emit_run_telemetry", lambda *a, **k: True)
    no_snapshots(monkeypatch)
    late_ids = iter((77, 78))
    before_final_count(monkeypatch, lambda: insert_late_row(pg, next(late_ids)))
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
        )
        + "\n"
        f"r1,Y,postgresql,{SOURCE},{pg.name},orders,FULL\n",
        encoding="utf-8",
    )
    args = ["run", "--config", str(config), "--destination", file_lake]
    try:
        assert main(args) == 1  # default INGEST_RECONCILE=FAILED
        monkeypatch.setenv("INGEST_RECONCILE", "WARN")
        assert main(args) == 0  # WARN: loaded, flagged, the run does not fail
    finally:
        events.removeHandler(handler)
    mismatches = [r for r in records if r.getMessage() == "IngestionReconcileMismatch"]
    assert len(mismatches) == 2
    assert mismatches[0].job_id == "r1" and mismatches[0].status == "FAILED"
    assert mismatches[1].status == "WARN" and mismatches[1].reconciled == "MISMATCH"
    assert mismatches[0].source_rows == "11" and mismatches[0].rows_loaded == "10"
    assert mismatches[1].source_rows == "12" and mismatches[1].rows_loaded == "11"
    (audit,) = (Path(file_lake.removeprefix("file://")) / "metadata").glob("audit_*.csv")
    rows = list(csv.DictReader(audit.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["FAILED", "WARN"]
    assert [r["reconciled"] for r in rows] == ["MISMATCH", "MISMATCH"]
