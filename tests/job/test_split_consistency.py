"""A split FULL load of a table that is written while its chunks read it (`ingest.job.split`,
`ingest.job.split_snapshot`): on PostgreSQL through the local runner every chunk reads one
exported snapshot, and the lake equals the table as of that snapshot row for row (the Durable
path: tests/app/test_orchestration_split_snapshot.py); a snapshot that ended before the chunks
read leaves them reading at their own times, and the reconciliation says so; where no snapshot
is held (MariaDB; chunks run alone without one) the reconciliation says what it counted when
the load started, at its commit and in the chunks."""

from __future__ import annotations

import subprocess
import sys

import psycopg2
import pytest

import ingest.runner
from ingest.config import JobConfig
from ingest.vocabulary import Backend
from tests.conftest import MARIA_HOST, MARIA_PORT, MARIA_USER, PG_DB, PG_HOST, PG_PORT, PG_USER
from tests.fixtures.jobs import SPLIT_KEY, run_chunk_task, run_task, run_tasks_json
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, lake_rows, source_rows
from tests.fixtures.orders import job as pg_job
from tests.fixtures.split import settings_for, start_pg_writer, task, wait_for_writer


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])  # ConnectorX, SQLAlchemy/psycopg2
def test_a_split_full_load_reads_one_snapshot_while_a_writer_changes_the_table(
    pg, lake, monkeypatch, tmp_path, backend
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 20000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=8)
    exported = ingest.runner.export_snapshot
    seen: list[str] = []

    def export_capture_then_change(task_, settings):
        held = exported(task_, settings)
        assert held is not None
        seen.append(held.id)
        # the table as the snapshot holds it, captured inside that snapshot: the lake's truth
        conn = psycopg2.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname=PG_DB,
            options=f"-c search_path={pg.name}",
        )
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SET TRANSACTION SNAPSHOT %s", (held.id,))
                cur.execute("CREATE TABLE orders_at_snapshot AS SELECT * FROM orders")
            conn.commit()
        finally:
            conn.close()
        # then, before any chunk reads, every range changes (committed)
        pg.execute("UPDATE orders SET note = 'changed after the snapshot'")
        pg.execute("DELETE FROM orders WHERE order_id % 10 = 3")
        insert_orders(pg, 20001, 21000)
        return held

    monkeypatch.setattr(ingest.runner, "export_snapshot", export_capture_then_change)
    writer = start_pg_writer(pg.name, tmp_path)
    try:
        wait_for_writer(tmp_path / "writing", writer)
        settings = settings_for(lake, backend=Backend(backend))
        [result] = run_tasks_json([task(config, lake, "run-1")], settings, workers=2)
    finally:
        (tmp_path / "stop").write_text("")
        out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err

    assert int(out.strip()) > 0 and len(seen) == 1
    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 8
    expected = source_rows(pg, "orders_at_snapshot")
    assert lake_rows(lake) == expected  # row for row the table as of the snapshot
    assert source_rows(pg) != expected  # which the table no longer is
    assert result["rows_loaded"] == len(expected)
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert "8 chunks read one exported snapshot" in result["reconcile_note"]
    assert f"counted in it: {len(expected):,} rows" in result["reconcile_note"]


def test_chunks_without_a_held_snapshot_report_a_source_that_changed(pg, file_lake, monkeypatch):
    """Chunks run one by one with no snapshot held (as with INGEST_SPLIT_SNAPSHOT=off): each
    reads its range when it runs. A change between them is reported, not matched."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake)
    plan = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    chunk = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": 0}}

    assert run_chunk_task(chunk, settings=settings)["rows"] == 1000
    # a row deleted from the range read and one added to a range not read yet: same count
    pg.execute("DELETE FROM orders WHERE order_id = 10")
    insert_orders(pg, 5000, 5000)
    for index in (1, 2):
        assert run_chunk_task({**chunk, "split": {**plan, "chunk": index}}, settings=settings)[
            "rows"
        ]
    result = run_task({**chunk, "split": {**plan, "chunk": None}}, settings=settings)

    assert result["reconciled"] == "MISMATCH", result["reconcile_note"]
    note = result["reconcile_note"]
    assert "source changed during the split load: 3,000 rows when it started, 3,000 at" in note
    assert "the 3 chunks read 3,001" in note
    assert "chunk 0: 1,000 -> 999, read 1,000" in note
    assert "chunk 2: 1,000 -> 1,001, read 1,001" in note


MARIA_WRITER = """
import pathlib, sys, time
import pymysql
host, port, user, db, folder = sys.argv[1:6]
folder = pathlib.Path(folder)
deadline = time.monotonic() + 120
while not (folder / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)
conn = pymysql.connect(host=host, port=int(port), user=user, password="", database=db,
                       autocommit=True)
with conn.cursor() as cur:
    cur.execute("INSERT INTO events SELECT seq, '2024-02-01', 'new' FROM seq_5001_to_5100")
    cur.execute("DELETE FROM events WHERE id <= 50")
    cur.execute("UPDATE events SET body = 'changed' WHERE id BETWEEN 1000 AND 1100")
(folder / "done").write_text("")
"""


def test_a_writer_during_a_split_load_on_mariadb_is_reported(mariadb, lake, monkeypatch, tmp_path):
    """MariaDB exports no snapshot: a writer process changes the table while the chunks land
    (released when the first chunk has landed, so the change falls between the split load's
    start and its commit); the reconciliation says what it counted and what the chunks read."""
    mariadb.execute(
        "CREATE TABLE events (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL, body TEXT)"
    )
    mariadb.execute(
        "INSERT INTO events SELECT seq, '2024-01-01' + INTERVAL (seq DIV 10) SECOND, "
        "CONCAT('e', seq) FROM seq_1_to_2500"
    )
    mariadb.use_as(monkeypatch, "maria_src")
    config = JobConfig(
        job_id="events",
        enabled=True,
        source_type="mysql",
        source_name="maria_src",
        table_name="events",
        load_type="FULL",
        split=5,
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", MARIA_WRITER, MARIA_HOST, str(MARIA_PORT), MARIA_USER]
        + [mariadb.name, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def first_chunk_landed(event: dict) -> None:
        if not (tmp_path / "go").exists():
            (tmp_path / "go").write_text("")
            wait_for_writer(tmp_path / "done", writer)

    try:
        [result] = run_tasks_json(
            [task(config, lake, "run-1")],
            settings_for(lake),
            workers=2,
            on_chunk=first_chunk_landed,
        )
    finally:
        (tmp_path / "go").write_text("")
        _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err

    assert result["chunks"] == 5
    assert result["reconciled"] == "MISMATCH", result["reconcile_note"]
    note = result["reconcile_note"]
    assert "source changed during the split load: 2,500 rows when it started, 2,550 at its " in note
    assert "chunk 0: 500 -> 450" in note


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])  # ConnectorX, SQLAlchemy/psycopg2
def test_a_chunk_whose_snapshot_ended_reads_at_its_own_time_and_says_so(
    pg, file_lake, monkeypatch, backend
):
    """The snapshot's holder ends while the chunks still need it (as a killed `hold_snapshot`
    does on Azure): a chunk whose read can no longer import it (it ended right after the chunk
    counted its range) fails retriable, nothing landed; its retry, and the chunks after it,
    read their ranges at their own times; the commit's reconciliation says the load was not
    read in one state and what changed."""
    from ingest.job import split_snapshot
    from ingest.model.task import Task
    from ingest.sources.sql import PostgresBuilder

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake, backend=Backend(backend))
    whole = task(config, file_lake, "run-1")
    plan = run_task(whole, settings=settings)[SPLIT_KEY]
    held = split_snapshot.export(Task.from_dict(whole), settings)
    assert held is not None
    plan = {**plan, "snapshot": held.id}

    def chunk(index: int) -> dict:
        return run_chunk_task({**whole, "split": {**plan, "chunk": index}}, settings=settings)

    try:
        assert chunk(0)["rows"] == 1000
        counted = PostgresBuilder.range_count

        def count_then_end(self, *args, **kwargs):
            rows = counted(self, *args, **kwargs)
            held.close()  # the holder ends between this chunk's count and its read
            return rows

        monkeypatch.setattr(PostgresBuilder, "range_count", count_then_end)
        failed = chunk(1)
        monkeypatch.setattr(PostgresBuilder, "range_count", counted)
    finally:
        held.close()
    assert failed["status"] == "FAILED" and failed["retriable"] is True, failed
    assert "the exported snapshot" in failed["error"] and "ended while it read" in failed["error"]
    pg.execute("DELETE FROM orders WHERE order_id IN (1500, 2500)")
    assert chunk(1)["rows"] == 999  # its retry: at its own time
    assert chunk(2)["rows"] == 999
    result = run_task({**whole, "split": {**plan, "chunk": None}}, settings=settings)

    assert result["reconciled"] == "MISMATCH", result["reconcile_note"]
    note = result["reconcile_note"]
    assert f"not read in one state: 1 of 3 read exported snapshot {held.id} (chunks 0)" in note
    assert "source changed during the split load: 3,000 rows when it started, 2,998" in note
