"""Exactly once under overlap, retry and crash (one writer per job, idempotent tasks, audit).

Real `python -m ingest run` processes on a real PostgreSQL, into a local lake and into Azurite.
Overlap is forced, not hoped for: the first writer stops right after its first data file
reached the lake (`tests/pause_hook`), the second starts then, and the first goes on only
once the second has said that it waits for the lease.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from ingest.identifiers import lake_schema_name
from ingest.lake.destination import Destination
from ingest.lake.layout import STATE_DIR, is_base_file, load_id_of
from ingest.lake.loads import completed_load_ids, table_files
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, source_rows
from tests.fixtures.processes import (
    FULL_ROW,
    HOOK,
    INCREMENTAL_ROW,
    ROOT,
    WAITING,
    Process,
    audit_rows,
    base_env,
    completed_ids,
    wait_for_file,
    write_config,
)


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> Iterator[str]:
    """A local lake and an Azurite lake (blob lease) for the same scenario."""
    if request.param == "file":
        yield request.getfixturevalue("file_lake")
    else:
        yield request.getfixturevalue("azure_lake")


# ------------------------------------------------------------------------------------------
# one writer per job


def test_a_second_writer_waits_for_the_first_and_every_row_lands_once(
    pg, lake, monkeypatch, tmp_path
):
    """Run B of an INCREMENTAL job starts while run A is writing its files: B waits for A's
    lease (before, B deleted A's unmarked files: rows lost for good), then loads what is new."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 6000)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    args = ["run", "--config", config, "--destination", lake]
    pause = tmp_path / "pause"
    pause.mkdir()

    first = Process([*args, "--run-id", "run-A"], base_env(), pause_dir=pause)
    wait_for_file(pause / "first_file", first)
    assert completed_ids(lake) == Counter()  # A is mid-load: nothing completed yet
    insert_orders(pg, 6001, 6500, updated_at="2030-01-01T00:00:00+00")  # new rows for B

    # a writer that may not wait gives up at once, naming the holder
    impatient = Process([*args, "--run-id", "run-C"], base_env(INGEST_LEASE_WAIT_S="0"))
    assert impatient.finish() == 0, impatient.stderr
    assert "SKIPPED" in impatient.stdout
    assert "run run-A (plain) on host" in impatient.stderr

    second = Process([*args, "--run-id", "run-B"], base_env(INGEST_LEASE_WAIT_S="300"))
    held_by = second.wait_for_line(WAITING)
    assert "run-A" in held_by
    (pause / "go").write_text("")
    assert first.finish() == 0, first.stderr
    assert second.finish() == 0, second.stderr

    landed = completed_ids(lake)
    expected = {row[0] for row in source_rows(pg)}
    assert set(landed) == expected and len(expected) == 6500
    assert [i for i, n in landed.items() if n > 1] == []  # every row exactly once
    rows = {row["run_id"]: row for row in audit_rows(lake)}
    assert rows["run-A"]["status"] == "SUCCESS" and rows["run-A"]["rows_loaded"] == "6000"
    assert rows["run-B"]["status"] == "SUCCESS" and rows["run-B"]["rows_loaded"] == "500"
    assert rows["run-C"]["status"] == "SKIPPED" and "run-A" in rows["run-C"]["error"]
    assert rows["run-A"]["reconciled"] == rows["run-B"]["reconciled"] == "MATCH"


def test_a_killed_holder_is_taken_over_once_its_lease_expires(pg, lake, monkeypatch, tmp_path):
    """The holder is SIGKILLed mid-load. On blob storage its lease outlives it for at most one
    lease period (15 s here); the next run waits that out, removes the dead load's files and
    lands everything once. On a local lake the OS lock dies with the process."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    args = ["run", "--config", config, "--destination", lake]
    pause = tmp_path / "pause"
    pause.mkdir()
    env = base_env(INGEST_LEASE_PERIOD_S="15", INGEST_LEASE_WAIT_S="60")

    doomed = Process([*args, "--run-id", "run-dead"], env, pause_dir=pause)
    wait_for_file(pause / "first_file", doomed)
    doomed.popen.send_signal(signal.SIGKILL)
    assert doomed.finish() == -signal.SIGKILL
    dest = Destination.from_url(lake)
    assert table_files(dest, SOURCE, "orders")  # the dead load's files are in the lake
    assert completed_ids(lake) == Counter()

    started = time.monotonic()
    rerun = Process([*args, "--run-id", "run-next"], env)
    assert rerun.finish() == 0, rerun.stderr
    waited = time.monotonic() - started
    if lake.startswith("az://"):
        assert WAITING in rerun.stderr and "run-dead" in rerun.stderr
        assert waited >= 5  # it could not take the lease before it expired
    else:
        assert WAITING not in rerun.stderr
    assert "never committed" in rerun.stderr
    landed = completed_ids(lake)
    assert set(landed) == {row[0] for row in source_rows(pg)} and max(landed.values()) == 1
    assert {load_id_of(p) for p in table_files(dest, SOURCE, "orders")} == set(
        completed_load_ids(dest, SOURCE, lake_schema_name(f"{SOURCE}__orders"), table="orders")
    )  # no file of the dead load is left


# ------------------------------------------------------------------------------------------
# audit

APPENDER = textwrap.dedent(
    """
    import datetime as dt, pathlib, sys, time
    from tests.fixtures.audit import append_audit_json
    from ingest.lake.destination import Destination

    lake, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
    dest = Destination.from_url(lake)
    while not go.exists():
        time.sleep(0.005)
    day = dt.date(2026, 1, 2)
    for i in range(count):
        row = dict(run_id=f"run-{name}", job_id=f"{name}-{i}", source_type="postgresql",
                   source_name="s", table_name="t", load_type="FULL", status="SUCCESS",
                   rows_loaded=i, load_id=f"{name}.{i}")
        append_audit_json(dest, [row], day)
    """
)


def test_concurrent_audit_appenders_lose_no_row(lake, tmp_path):
    """Two processes append 120 rows each, one at a time, to the same day's audit file."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    appenders = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, lake, name, "120", str(go)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    go.write_text("")
    for appender in appenders:
        _, err = appender.communicate(timeout=300)
        assert appender.returncode == 0, err
    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    with fs.open(dest.path("metadata", "audit_20260102.csv"), "r", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    keys = Counter(row["job_id"] for row in rows)
    assert len(keys) == 240 and set(keys.values()) == {1}


# ------------------------------------------------------------------------------------------
# idempotent tasks of every kind


def run_cli(*args: str) -> int:
    from ingest.cli import main

    return main(list(args))


def test_retried_tasks_of_every_kind_load_once_and_every_snapshot_is_audited(
    pg, file_lake, monkeypatch, tmp_path
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 200)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    base = ["--config", config, "--destination", file_lake]

    def loads_of() -> Counter:
        dest = Destination.from_url(file_lake)
        # the loads' own files (a run also compacts the table: its bases are no load)
        files = [p for p in table_files(dest, SOURCE, "orders") if not is_base_file(p)]
        return Counter(load_id_of(p) for p in files)

    # plain incremental run, then a full refresh retried with the same run id
    assert run_cli("run", *base, "--job", "k1", "--run-id", "r-plain") == 0
    assert run_cli("run", *base, "--job", "k1", "--run-id", "r-reload", "--full-refresh") == 0
    after_reload = loads_of()
    assert run_cli("run", *base, "--job", "k1", "--run-id", "r-reload", "--full-refresh") == 0
    assert loads_of() == after_reload  # the retried full refresh did not load again
    assert completed_ids(file_lake) == Counter({i: 2 for i in range(1, 201)})

    # a backfill retried with the same run id and range loads once
    backfill = ["backfill", *base, "--job", "k1", "--run-id", "r-bf"]
    window = ["--from", "2024-01-01T00:00:50+00:00", "--to", "2024-01-01T00:01:40+00:00"]
    assert run_cli(*backfill, *window) == 0
    after_backfill = loads_of()
    assert len(after_backfill) == len(after_reload) + 1
    assert run_cli(*backfill, *window) == 0
    assert loads_of() == after_backfill
    # the same run id with another range is another task: it loads
    assert run_cli(*backfill, "--from", "2024-01-01T00:02:00+00:00") == 0
    assert len(loads_of()) == len(after_backfill) + 1

    audit = audit_rows(file_lake)
    by_load = Counter(row["load_id"] for row in audit if row["load_id"])
    assert set(by_load) == set(loads_of()) and set(by_load.values()) == {1}
    retried = [row for row in audit if row["run_id"] in ("r-reload", "r-bf")]
    assert len(retried) == 3  # one row per load: the retries reported the same loads


def test_an_older_run_id_reused_on_a_full_job_never_leaves_a_snapshot_unaudited(
    pg, file_lake, monkeypatch, tmp_path
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 50)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [FULL_ROW])
    base = ["run", "--config", config, "--destination", file_lake, "--job", "f1"]
    assert run_cli(*base, "--run-id", "night-1") == 0
    insert_orders(pg, 51, 60)
    assert run_cli(*base, "--run-id", "night-2") == 0
    assert run_cli(*base, "--run-id", "night-1") == 0  # an older run id, run again

    dest = Destination.from_url(file_lake)
    snapshots = {load_id_of(p) for p in table_files(dest, SOURCE, "orders")}
    audit = audit_rows(file_lake)
    assert len(snapshots) == 2  # night-1 was reported as already loaded, not loaded again
    assert {row["load_id"] for row in audit} == snapshots  # every snapshot has its audit row
    assert [row["run_id"] for row in audit] == ["night-1", "night-2"]


# ------------------------------------------------------------------------------------------
# empty FULL snapshot


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_a_full_table_that_became_empty_lands_an_empty_snapshot(
    pg, file_lake, monkeypatch, backend
):
    import pyarrow.parquet as pq

    from tests.fixtures.orders import job, run

    monkeypatch.setenv("INGEST_BACKEND", backend)
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 10)
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg, load_type="FULL"), file_lake, "night-1")
    assert first["rows_loaded"] == 10
    pg.execute("TRUNCATE orders")
    empty = run(job(pg, load_type="FULL"), file_lake, "night-2")
    assert empty["status"] == "SUCCESS", empty["error"]
    assert (empty["rows_loaded"], empty["files_written"]) == (0, 1)
    assert empty["reconciled"] == "MATCH" and empty["source_rows"] == 0
    assert empty["load_id"] > first["load_id"]

    dest = Destination.from_url(file_lake)
    done = completed_load_ids(dest, SOURCE, lake_schema_name(f"{SOURCE}__orders"), table="orders")
    assert empty["load_id"] in done  # a completed load: the latest snapshot
    files = [p for p in table_files(dest, SOURCE, "orders") if load_id_of(p) == empty["load_id"]]
    assert len(files) == 1
    snapshot = pq.read_table(files[0])
    assert snapshot.num_rows == 0
    first_files = [
        p for p in table_files(dest, SOURCE, "orders") if load_id_of(p) == first["load_id"]
    ]
    previous = pq.read_schema(first_files[0])
    assert [f.name for f in previous if not f.name.startswith("_dlt")] == [
        f.name for f in snapshot.schema if not f.name.startswith("_dlt")
    ]
    assert snapshot.schema.field("amount").type == previous.field("amount").type


# ------------------------------------------------------------------------------------------
# boundary rows of tables without a key

EVENTS_DDL = "CREATE TABLE events (ts timestamptz NOT NULL, kind text, amount numeric(10,2))"


def events_job(pg, **kw):
    from ingest.config import JobConfig

    return JobConfig(
        job_id="e1",
        enabled=True,
        source_type="postgresql",
        source_name=SOURCE,
        table_name="events",
        load_type="INCREMENTAL",
        watermark_column="ts",
        schema_name=pg.name,
        **kw,
    )


def insert_event(pg, ts: str, kind: str = "click", amount: str = "1.00") -> None:
    pg.execute("INSERT INTO events VALUES (%s, %s, %s)", (ts, kind, amount))


def test_rows_at_the_boundary_are_told_apart_in_bounded_state(pg, file_lake, monkeypatch):
    """A table without a key: rows re-read at the last watermark are told apart by a hash per
    row (counted: two identical rows landed, a third identical one is new). The state keeps at
    most CAP hashes; past it, a new row at that value cannot be told apart: it is not loaded,
    and reconciliation says so instead of matching."""
    from ingest.checks import boundary
    from ingest.checks.reconcile import BOUNDARY_DROPPED
    from tests.fixtures.orders import run

    pg.execute(EVENTS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    for second in (1, 2, 3, 3):  # two identical rows at the last watermark
        insert_event(pg, f"2024-01-01T00:00:0{second}+00")
    first = run(events_job(pg), file_lake, "r1")
    assert first["status"] == "SUCCESS", first["error"]
    assert (first["rows_loaded"], first["reconciled"]) == (4, "MATCH")

    # a different row at the boundary is told apart by its hash: it lands
    insert_event(pg, "2024-01-01T00:00:03+00", kind="view")
    second = run(events_job(pg), file_lake, "r2")
    assert (second["status"], second["rows_loaded"], second["reconciled"]) == (
        "SUCCESS",
        1,
        "MATCH",
    )
    # a third identical row at the boundary: counted apart from the two that landed
    insert_event(pg, "2024-01-01T00:00:03+00")
    third = run(events_job(pg), file_lake, "r3")
    assert (third["status"], third["rows_loaded"], third["reconciled"]) == ("SUCCESS", 1, "MATCH")
    nothing = run(events_job(pg), file_lake, "r4")
    assert (nothing["rows_loaded"], nothing["reconciled"]) == (0, "MATCH"), nothing
    assert completed_ids_of_events(file_lake) == pg.query("SELECT count(*) FROM events")[0][0] == 6

    # past the cap (3 here) the state keeps no hashes: a new row at that value is reported
    monkeypatch.setattr(boundary, "CAP", 3)
    monkeypatch.setattr(boundary, "COUNT_FROM", 2)
    insert_event(pg, "2024-01-01T00:00:04+00")
    insert_event(pg, "2024-01-01T00:00:04+00", kind="a")
    insert_event(pg, "2024-01-01T00:00:04+00", kind="b")
    insert_event(pg, "2024-01-01T00:00:04+00", kind="c")
    over = run(events_job(pg), file_lake, "r5")
    assert (over["rows_loaded"], over["reconciled"]) == (4, "MATCH"), over
    unchanged = run(events_job(pg), file_lake, "r6")  # counted, unchanged: read above it
    assert (unchanged["rows_loaded"], unchanged["reconciled"]) == (0, "MATCH"), unchanged
    insert_event(pg, "2024-01-01T00:00:04+00", kind="late")
    late = run(events_job(pg), file_lake, "r7")
    assert late["status"] == "FAILED" and late["reconciled"] == "MISMATCH"
    assert BOUNDARY_DROPPED in late["reconcile_note"] and "1 row(s)" in late["reconcile_note"]
    assert "primary_key" in late["error"]
    monkeypatch.setenv("INGEST_RECONCILE", "WARN")
    warned = run(events_job(pg), file_lake, "r8")
    assert warned["status"] == "WARN" and BOUNDARY_DROPPED in warned["reconcile_note"]


def completed_ids_of_events(lake: str) -> int:
    from tests.conftest import read_lake_table

    return read_lake_table(lake, SOURCE, "events").num_rows


def test_a_new_key_at_the_boundary_lands_and_matches(pg, file_lake, monkeypatch):
    from tests.fixtures.orders import job, run

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 20, updated_at="2024-01-01T00:00:00+00")
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg), file_lake, "r1")
    top = pg.query("SELECT max(updated_at) FROM orders")[0][0]
    pg.execute(
        "INSERT INTO orders (order_id, qty, created_at, updated_at) VALUES (21, 1, now(), %s)",
        (top,),
    )
    second = run(job(pg), file_lake, "r2")
    assert first["reconciled"] == "MATCH"
    assert (second["status"], second["rows_loaded"], second["reconciled"]) == (
        "SUCCESS",
        1,
        "MATCH",
    )
    assert sorted(completed_ids(file_lake)) == list(range(1, 22))


# ------------------------------------------------------------------------------------------
# Durable: a retried ingest_table activity

ACTIVITY = textwrap.dedent(
    """
    import json, sys
    import function_app
    activity = function_app.ingest_table.build().get_user_function()
    print(json.dumps(activity(json.loads(sys.argv[1]))))
    """
)


def activity():
    import function_app

    return function_app.ingest_table.build().get_user_function()


def stored(task: dict) -> dict:
    """Put `task` in its run's run store (as plan_run does); the activity's reference to it."""
    from ingest.app.runstore import RunStore
    from ingest.model.plan import Plan
    from ingest.model.task import Task

    the_plan = Plan(task["run_id"], task["destination"], None, (Task.from_dict(task),))
    RunStore(task["destination"], task["run_id"]).write_plan(the_plan, 25)
    return {"run_id": task["run_id"], "destination": task["destination"], "batch": 0, "position": 0}


def stored_result(task: dict) -> dict | None:
    from ingest.app.runstore import RunStore

    found = RunStore(task["destination"], task["run_id"]).result(task["job"]["job_id"])
    return found.to_dict() if found else None


def test_a_retried_activity_reports_the_load_of_its_first_attempt(pg, lake, monkeypatch, tmp_path):
    """Durable runs the same `ingest_table` task again while the first attempt is still
    loading (a worker it took for dead): the retry waits for the first attempt's lease and
    reports its load. Retried once more after that commit: the same load again."""
    import json

    from tests.fixtures.orders import job

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "1000")
    task = {"run_id": "nightly-2026-11-27", "job": job(pg).to_dict(), "destination": lake}
    reference = stored(task)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**base_env(), "PYTHONPATH": os.pathsep.join([str(HOOK), str(ROOT)])}
    env["INGEST_TEST_PAUSE_DIR"] = str(pause)
    first = subprocess.Popen(
        [sys.executable, "-c", ACTIVITY, json.dumps(reference)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waiter = Process.__new__(Process)  # only for wait_for_file's liveness check
    waiter.popen, waiter.lines = first, []
    wait_for_file(pause / "first_file", waiter)

    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if WAITING in record.getMessage() and "nightly-2026-11-27" in record.getMessage():
                waiting.set()

    handler = Waiting()
    logging.getLogger("ingest.lake.lease").addHandler(handler)
    outcome: dict = {}
    retry = threading.Thread(target=lambda: outcome.update(activity()(reference)))
    try:
        retry.start()
        assert waiting.wait(120), "the retry never waited for the first attempt's lease"
    finally:
        logging.getLogger("ingest.lake.lease").removeHandler(handler)
    (pause / "go").write_text("")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    retry.join(300)
    first_result = json.loads(out.strip().splitlines()[-1])  # the compact result
    assert first_result["status"] == "SUCCESS" and first_result["rows_loaded"] == 3000
    assert outcome == first_result  # the retry reports the same load
    load_id = stored_result(task)["load_id"]  # the full result, in the run store
    again = activity()(reference)
    assert again == first_result and stored_result(task)["load_id"] == load_id
    loads = {load_id_of(p) for p in table_files(Destination.from_url(lake), SOURCE, "orders")}
    assert loads == {load_id}  # exactly one load
    assert completed_ids(lake) == Counter(range(1, 3001))


def test_an_activity_whose_job_another_run_is_loading_fails_retriably_naming_it(
    pg, file_lake, monkeypatch, tmp_path
):
    from ingest.app.activities import RetriableTableError
    from ingest.lake.layout import lease_name
    from ingest.lake.lease import Holder, lease_for
    from tests.fixtures.orders import job

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 10)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_LEASE_WAIT_S", "0")
    task = {"run_id": "nightly-2026-11-27", "job": job(pg).to_dict(), "destination": file_lake}
    dest = Destination.from_url(file_lake)
    holder = Holder.me("manual-run-7", "plain")
    with lease_for(
        dest, lease_name(SOURCE, "orders"), holder, wait_s=0, same_task_wait_s=0, period_s=60
    ):
        with pytest.raises(RetriableTableError, match="manual-run-7"):
            activity()(stored(task))
    assert activity()(stored(task))["rows_loaded"] == 10  # once the other run is done


# ------------------------------------------------------------------------------------------
# the lease itself


def test_the_lease_names_its_holder_and_a_lost_lease_stops_the_commit(lake):
    from ingest.lake.lease import Holder, LeaseBusy, LeaseLost, lease_for

    dest = Destination.from_url(lake)

    def lease(run_id: str, wait_s: float = 0):
        return lease_for(
            dest,
            "src__table",
            Holder.me(run_id, "plain"),
            wait_s=wait_s,
            same_task_wait_s=wait_s,
            period_s=15,
        )

    first = lease("run-1")
    with first:
        first.check()
        with pytest.raises(LeaseBusy, match=r"run run-1 \(plain\) on host .*, since 20"):
            lease("run-2").acquire()
        if dest.protocol == "az":  # another party breaks the blob lease: the holder notices
            from azure.storage.blob import BlobLeaseClient

            BlobLeaseClient(first.blob).break_lease(lease_break_period=0)
            with pytest.raises(LeaseLost, match="lost before the load committed"):
                first.check()
            with lease("run-3"):
                pass  # free for the next writer
    with lease("run-4") as again:  # released: the next writer takes it at once
        again.check()


def test_two_state_files_per_job_survive_a_death_between_state_and_marker(pg, lake, monkeypatch):
    """The lake keeps two state files per job (ingest.settings.MAX_STATE_FILES), not dlt's 100:
    a load that died after its state file but before its completion marker is cleaned up, and
    the job continues from the last completed load's state, every row once."""
    from tests.fixtures.orders import job, run

    pg.execute(ORDERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    the_job = job(pg)
    results = []
    for night in range(4):
        insert_orders(pg, night * 100 + 1, night * 100 + 100, f"2024-01-0{night + 1}T00:00:00+00")
        results.append(run(the_job, lake, f"night-{night}"))
        assert results[-1]["status"] == "SUCCESS", results[-1]["error"]
    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    states = [p.rsplit("/", 1)[-1] for p in fs.ls(dest.path(SOURCE, STATE_DIR), detail=False)]
    assert len([name for name in states if name.startswith(the_job.pipeline_name + "__")]) == 2
    # the last load "died" between its state file and its completion marker
    last = results[-1]["load_id"]
    (marker,) = [
        p
        for p in fs.ls(dest.path(SOURCE, "_dlt_loads"), detail=False)
        if p.endswith(f"__{last}.jsonl")
    ]
    fs.rm(marker)
    again = run(the_job, lake, "night-3-again")
    assert again["status"] == "SUCCESS", again["error"]
    assert again["rows_loaded"] == 100  # the dead load's rows, from the state before it
    assert set(completed_ids(lake).values()) == {1}
    assert sorted(completed_ids(lake)) == [row[0] for row in source_rows(pg)]
