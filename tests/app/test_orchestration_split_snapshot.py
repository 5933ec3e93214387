"""A split FULL load of a live PostgreSQL table on the Durable path reads one exported snapshot
(`hold_snapshot`, `ingest.job.split_snapshot`).

The orchestrations run in the replay harness; every activity is the real one, called as a
function, except that `hold_snapshot` runs in a process of its own (as it runs beside the
chunks on the host: `tests.durable_harness.Deferred`), which a test can kill -9. Between the
chunks another connection updates, deletes and inserts rows in every range (and a writer
process does so all along): the lake equals the table as a copy taken inside the snapshot has
it, and the reconciliation is MATCH. The holder killed mid-split: the chunks not read yet read
at their own times and the reconciliation says the load was not read in one state. With
INGEST_SPLIT_SNAPSHOT=off no holder runs and the reconciliation says so (CLI too)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ingest.app import activities as app_activities
from ingest.app.runstore import RunStore
from ingest.config import JobConfig
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER
from tests.fixtures.app import activity, batch_handle, orchestrator_handle
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, lake_rows, source_rows
from tests.fixtures.sheet import TABLE_JOB, sheet_header
from tests.fixtures.split import (
    Holder,
    markers,
    settings_for,
    start_pg_writer,
    task,
    wait_for_writer,
)

JOB_ID = "002"
RUN_ID = "run-snap"


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def _configure(pg, monkeypatch, tmp_path, lake: str, chunks: int = 8, rows: int = 20000) -> None:
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, rows)
    pg.use_as(monkeypatch, SOURCE)
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "split",
        )
        + "\n"
        f"{JOB_ID},Y,postgresql,{SOURCE},{pg.name},orders,FULL,{chunks}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(config))
    monkeypatch.setenv("INGEST_DESTINATION", lake)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    monkeypatch.setenv("INGEST_RETRY_FIRST_INTERVAL_S", "1")
    # bounded waits of the in-process chunks for the holder's record (the sim runs one
    # activity at a time: a chunk picked before the holder would otherwise wait 120 s)
    monkeypatch.setattr(app_activities, "SNAPSHOT_WAIT_S", 60.0)
    monkeypatch.setattr(app_activities, "SNAPSHOT_POLL_S", 0.1)


def _run(
    lake: str, before_chunk: Any, holders: list[Holder], folder: Path, order: str = "fifo"
) -> Any:
    from tests.durable_harness import ActivityFailure, Deferred, DurableSim

    def run_activity(call: Any) -> Any:
        if call.name == "hold_snapshot":
            holder = Holder(call.input, folder)
            holders.append(holder)
            return Deferred(holder.ready, holder.outcome)
        if call.name == "ingest_chunk":
            before_chunk(call)
        try:
            return activity(call.name)(call.input)
        except Exception as exc:
            raise ActivityFailure(f"{type(exc).__name__}: {exc}") from exc

    handles = {"ingest_run": orchestrator_handle(), "ingest_batch": batch_handle()}
    sim = DurableSim(handles, run_activity, order=order, seed=29, deferred_wait_s=120)
    sim.start("ingest_run", RUN_ID, {"run_id": RUN_ID, "trigger": "http"})
    sim.run()
    return sim


def _recorded_snapshot(lake: str, timeout: float = 60) -> str:
    store = RunStore(lake, RUN_ID)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recorded = store.snapshot(JOB_ID)
        if recorded is not None:
            assert recorded["snapshot"], recorded
            return str(recorded["snapshot"])
        time.sleep(0.05)
    raise AssertionError("the holder recorded no snapshot")


def _copy_inside(pg, snapshot: str) -> None:
    """The table as the snapshot holds it, copied inside that snapshot: the lake's truth."""
    conn = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_DB, options=f"-c search_path={pg.name}"
    )
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            cur.execute("CREATE TABLE orders_at_snapshot AS SELECT * FROM orders")
        conn.commit()
    finally:
        conn.close()


def _change_every_range(pg, step: int) -> None:
    """Another connection: updates, deletes and inserts rows all over the key range."""
    pg.execute(
        f"UPDATE orders SET note = 'changed {step}', qty = qty + 1 WHERE order_id % 97 = {step}"
    )
    pg.execute(f"DELETE FROM orders WHERE order_id % 89 = {step}")
    insert_orders(pg, 30000 + 10 * step, 30000 + 10 * step + 9)
    pg.execute(  # below the first range (the writer process inserts from -1 down)
        "INSERT INTO orders (order_id, qty, created_at) VALUES (%s, 1, now())",
        (-1_000_000 - step,),
    )


def _audit_row(lake: str) -> dict[str, str]:
    from ingest.reports.history import run_results

    rows = {row["job_id"]: row for row in run_results(lake, RUN_ID)}
    return rows[JOB_ID]


def _markers(lake: str, pg) -> list[str]:
    job = JobConfig(JOB_ID, True, "postgresql", SOURCE, "orders", "FULL", schema_name=pg.name)
    return markers(lake, job)


def _held_transactions(pg, holders: list[Holder]) -> int:
    """How many of the holders' transactions are still open on the server."""
    pids = [pid for holder in holders if (pid := holder.backend()) is not None]
    [(count,)] = pg.query("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,))
    return int(count)


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])  # ConnectorX, SQLAlchemy/psycopg2
def test_durable_split_full_load_reads_one_snapshot_while_the_table_changes(
    pg, lake, monkeypatch, tmp_path, backend
):
    if backend == "pyarrow" and not lake.startswith("file"):
        pytest.skip("the pyarrow read path once, on file://")
    _configure(pg, monkeypatch, tmp_path, lake)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    holders: list[Holder] = []
    chunk_calls: list[int] = []

    def before_chunk(call: Any) -> None:
        if not chunk_calls:  # the holder has exported: copy the table inside its snapshot
            _copy_inside(pg, _recorded_snapshot(lake))
        chunk_calls.append(int(call.input["chunk"]))
        _change_every_range(pg, len(chunk_calls))  # committed before this chunk reads

    writer = start_pg_writer(pg.name, tmp_path)
    try:
        wait_for_writer(tmp_path / "writing", writer)
        sim = _run(lake, before_chunk, holders, tmp_path)
    finally:
        (tmp_path / "stop").write_text("")
        out, err = writer.communicate(timeout=60)
        for holder in holders:
            if not holder.ready():
                holder.kill()
    assert writer.returncode == 0, err
    assert int(out.strip()) > 0

    output = sim.hosts[RUN_ID].state["output"]
    row = _audit_row(lake)
    assert output["jobs_succeeded"] == 1, row["error"]
    assert sorted(chunk_calls) == list(range(8))
    assert [c.name for c in sim.activity_log].count("hold_snapshot") == 1
    [holder] = holders
    assert holder.result is not None
    assert holder.result["ended"] in (
        "every chunk of 8 landed",
        "the split load's commit ended",
        "the split load is no longer pending (committed or abandoned)",
    ), holder.result
    expected = source_rows(pg, "orders_at_snapshot")
    assert lake_rows(lake) == expected  # row for row the table as of the snapshot
    assert source_rows(pg) != expected  # which the table no longer is
    assert row["chunks"] == "8" and row["rows_loaded"] == str(len(expected))
    assert row["reconciled"] == "MATCH", row["reconcile_note"]
    assert (
        f"8 chunks read one exported snapshot of the source, counted in it: {len(expected):,} "
        "rows" in row["reconcile_note"]
    )
    assert len(_markers(lake, pg)) == 1
    assert holders[0].backend() is not None
    assert _held_transactions(pg, holders) == 0  # the holder let go of the snapshot


def test_the_holder_killed_mid_split_leaves_the_rest_reading_at_their_own_times(
    pg, file_lake, monkeypatch, tmp_path
):
    """kill -9 of the holder after 3 of 8 chunks landed: its snapshot is gone. The chunks not
    read yet cannot import it and read their ranges at their own times (no chunk lands rows of
    another state than the one it records); the holder's retry finds the snapshot lost and
    records so. The table changed after the kill: the reconciliation is a MISMATCH that says
    the load was not read in one state, which chunks read the snapshot, and what changed."""
    _configure(pg, monkeypatch, tmp_path, file_lake)
    holders: list[Holder] = []
    chunk_calls: list[int] = []

    def before_chunk(call: Any) -> None:
        if not chunk_calls:
            _recorded_snapshot(file_lake)
        if len(chunk_calls) == 3:
            holders[0].kill()
            deadline = time.monotonic() + 30
            while _held_transactions(pg, holders):  # the server ends the dead one's transaction
                assert time.monotonic() < deadline
                time.sleep(0.05)
            pg.execute("DELETE FROM orders WHERE order_id % 10 = 3")
        chunk_calls.append(int(call.input["chunk"]))

    try:
        sim = _run(file_lake, before_chunk, holders, tmp_path)
    finally:
        for holder in holders:
            if not holder.ready():
                holder.kill()

    assert sorted(chunk_calls) == list(range(8))
    outcomes = [(h.process.returncode, h.result, h.err[-600:]) for h in holders]
    assert len(holders) == 2, outcomes  # the killed one, and its retry
    assert holders[1].result is not None
    assert holders[1].result["ended"] == "lost: its holder ended before every chunk landed"
    recorded = RunStore(file_lake, RUN_ID).snapshot(JOB_ID)
    assert recorded is not None and recorded["snapshot"] is None and recorded["lost"]
    row = _audit_row(file_lake)
    assert row["reconciled"] == "MISMATCH", row["reconcile_note"]
    note = row["reconcile_note"]
    assert "not read in one state: 3 of 8 read exported snapshot" in note, note
    assert "(chunks 0, 1, 2)" in note
    assert "source changed during the split load: 20,000 rows when it started, 18,000" in note
    assert row["status"] == "FAILED"  # INGEST_RECONCILE=FAILED: a mismatch fails the job
    assert sim.hosts[RUN_ID].state["output"]["jobs_failed"] == 1
    assert _held_transactions(pg, holders) == 0


def test_snapshots_off_on_the_durable_path(pg, lake, monkeypatch, tmp_path):
    """INGEST_SPLIT_SNAPSHOT=off: no holder; each chunk reads its range when it runs; a change
    between chunks is reported, naming the setting."""
    _configure(pg, monkeypatch, tmp_path, lake, chunks=4, rows=4000)
    monkeypatch.setenv("INGEST_SPLIT_SNAPSHOT", "off")
    chunk_calls: list[int] = []

    def before_chunk(call: Any) -> None:
        if len(chunk_calls) == 1:  # after the first chunk: one row fewer in every range
            pg.execute("DELETE FROM orders WHERE order_id IN (10, 1010, 2010, 3010)")
        chunk_calls.append(int(call.input["chunk"]))

    sim = _run(lake, before_chunk, [], tmp_path)

    assert not any(c.name == "hold_snapshot" for c in sim.activity_log)
    assert not any("hold" in c.input for c in sim.activity_log if c.name == "ingest_chunk")
    assert RunStore(lake, RUN_ID).snapshot(JOB_ID) is None
    row = _audit_row(lake)
    assert row["reconciled"] == "MISMATCH", row["reconcile_note"]
    note = row["reconcile_note"]
    assert "source changed during the split load: 4,000 rows when it started, 3,996" in note
    assert "each read its range at its own time (INGEST_SPLIT_SNAPSHOT=off)" in note


def test_snapshots_off_on_the_cli(pg, file_lake, monkeypatch):
    """The CLI's runner exports no snapshot with the setting off: MATCH on a quiet table, the
    note saying how the chunks read."""
    import ingest.runner
    from tests.fixtures.jobs import run_tasks_json
    from tests.fixtures.orders import job as pg_job

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    exported: list[Any] = []
    export = ingest.runner.export_snapshot

    def watching(task_: Any, settings: Any) -> Any:
        held = export(task_, settings)
        exported.append(held)
        return held

    monkeypatch.setattr(ingest.runner, "export_snapshot", watching)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake, split_snapshot=False)
    [result] = run_tasks_json([task(config, file_lake, "run-1")], settings, workers=2)

    assert exported == [None]
    assert result["status"] == "SUCCESS", result["error"]
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert (
        "each read its range at its own time (INGEST_SPLIT_SNAPSHOT=off)"
        in (result["reconcile_note"])
    )
    assert lake_rows(file_lake) == source_rows(pg)
