"""The commit is fenced, and the order of a table's loads follows its commits, not a clock.

Real `python -m ingest run` processes on a real PostgreSQL. The overlap is forced: a writer is
stopped (SIGSTOP, as a frozen VM or a stalled process would be) at a chosen point of its load by
the test hook (tests/pause_hook), another writer takes the job over once the stopped one's blob
lease expired, and the stopped writer is then let go. On a local lake the OS lock of a stopped
process is still held, so nobody can take the job over: there the fence is the `flock` itself
(tests/job/test_exactly_once.py checks a second writer waits or is skipped).
"""

from __future__ import annotations

import signal
from collections import Counter

import pyarrow.parquet as pq
import pytest

from ingest.config.model import BASE_SUFFIX
from ingest.identifiers import lake_schema_name
from ingest.job.compaction import COMPACT_TASK
from ingest.lake.destination import Destination
from ingest.lake.layout import load_id_of
from ingest.lake.lease import read_commit_log
from ingest.lake.loads import completed_load_ids, table_files
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, source_rows
from tests.fixtures.processes import (
    FULL_ROW,
    INCREMENTAL_ROW,
    WAITING,
    Process,
    audit_rows,
    base_env,
    completed_ids,
    wait_for_file,
    write_config,
)

LEASE_ENV = {"INGEST_LEASE_PERIOD_S": "15", "INGEST_LEASE_WAIT_S": "120"}


def _stop_at(point: str, args: list[str], pause, run_id: str) -> Process:
    env = base_env(**LEASE_ENV, INGEST_TEST_PAUSE_AT=point)
    writer = Process([*args, "--run-id", run_id], env, pause_dir=pause)
    wait_for_file(pause / point, writer)
    writer.popen.send_signal(signal.SIGSTOP)  # frozen: no lease renewal, no progress
    (pause / "go").write_text("")  # once it runs again, it goes on at once
    return writer


def _take_over(args: list[str], run_id: str) -> Process:
    second = Process([*args, "--run-id", run_id], base_env(**LEASE_ENV))
    assert second.finish() == 0, second.stderr
    assert WAITING in second.stderr  # it waited for the stopped writer's lease to expire
    return second


def _every_row_once(lake: str, pg) -> None:
    landed = completed_ids(lake)
    assert sorted(landed) == [row[0] for row in source_rows(pg)]
    assert [key for key, times in landed.items() if times > 1] == []


@pytest.mark.parametrize("point", ["first_file", "commit"])
def test_a_writer_that_stalled_past_its_lease_never_commits(
    pg, azure_lake, monkeypatch, tmp_path, point
):
    """A writer stalls longer than its lease period, either while uploading (before its commit)
    or right after its commit was written but before its completion marker. Another writer takes
    the job over and loads every row. When the stalled one wakes up, its commit is refused by the
    storage (first point) or found void (second point: its commit had no marker when the new
    holder cleaned up, so it was dropped): it ends FAILED and retriable, claims no rows, and no
    row is in the lake twice."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 4000)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    args = ["run", "--config", config, "--destination", azure_lake]
    pause = tmp_path / "pause"
    pause.mkdir()

    stalled = _stop_at(point, args, pause, "run-stalled")
    second = _take_over(args, "run-second")
    assert "run-stalled" in second.stderr  # it named the writer it waited for
    stalled.popen.send_signal(signal.SIGCONT)
    assert stalled.finish() == 1, stalled.stderr
    assert "lost before the load committed" in stalled.stdout + stalled.stderr

    _every_row_once(azure_lake, pg)
    rows = {row["run_id"]: row for row in audit_rows(azure_lake)}
    assert rows["run-second"]["status"] == "SUCCESS"
    assert rows["run-second"]["rows_loaded"] == "4000"
    assert rows["run-stalled"]["status"] == "FAILED"
    assert rows["run-stalled"]["rows_loaded"] == "0" and rows["run-stalled"]["load_id"] == ""

    # the stalled writer's leftovers are no load: the next run removes them and loads nothing
    insert_orders(pg, 4001, 4010, updated_at="2030-01-01T00:00:00+00")
    third = Process([*args, "--run-id", "run-third"], base_env(**LEASE_ENV))
    assert third.finish() == 0, third.stderr
    _every_row_once(azure_lake, pg)
    dest = Destination.from_url(azure_lake)
    schema = lake_schema_name(f"{SOURCE}__orders")
    committed = completed_load_ids(dest, SOURCE, schema, table="orders")
    # the third run also compacts (INGEST_COMPACT_LOADS=1): its base is a committed load too
    bases = completed_load_ids(dest, SOURCE, f"{schema}{BASE_SUFFIX}", table="orders")
    assert len(bases) == 1
    assert {load_id_of(p) for p in table_files(dest, SOURCE, "orders")} == committed | bases
    log = read_commit_log(dest, SOURCE, "orders")
    assert log is not None
    assert [c.run_id for c in log.commits] == ["run-second", "run-third", "run-third"]
    assert [c.task == COMPACT_TASK for c in log.commits] == [False, False, True]
    seqs = [c.seq for c in log.commits]  # (a dropped commit keeps its number)
    assert seqs == sorted(set(seqs)) and len(seqs) == 3


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def _run(args: list[str], run_id: str, skew: str = "") -> None:
    env = base_env(INGEST_TEST_CLOCK_SKEW_S=skew) if skew else base_env()
    process = Process([*args, "--run-id", run_id], env, hook=bool(skew))
    assert process.finish() == 0, process.stderr


def test_a_host_whose_clock_is_behind_still_writes_the_newest_load(pg, lake, monkeypatch, tmp_path):
    """Load ids order a table's loads (the newest state wins, the newest snapshot is the table).
    A run on a host whose clock is 5 minutes behind still makes the newest load: the next run
    continues from its state (nothing loaded twice, nothing reloaded), and a FULL job's snapshot
    taken with the clock behind is its current one."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 100)
    pg.use_as(monkeypatch, SOURCE)
    incremental = ["run", "--config", write_config(tmp_path, pg, [INCREMENTAL_ROW])]
    incremental += ["--destination", lake]
    _run(incremental, "night-1")
    insert_orders(pg, 101, 1100, updated_at="2024-06-01T00:00:00+00")
    _run(incremental, "night-2-behind", skew="-300")
    insert_orders(pg, 1101, 1200, updated_at="2024-07-01T00:00:00+00")
    _run(incremental, "night-3")
    _every_row_once(lake, pg)
    rows = {row["run_id"]: row for row in audit_rows(lake)}
    assert rows["night-2-behind"]["rows_loaded"] == "1000"
    assert rows["night-3"]["rows_loaded"] == "100"  # only the new rows
    loads = [float(rows[r]["load_id"]) for r in ("night-1", "night-2-behind", "night-3")]
    assert loads == sorted(loads)

    # a FULL job (another lake table): the snapshot taken with the clock behind is the current one
    (tmp_path / "full").mkdir()
    full_config = write_config(tmp_path / "full", pg, [FULL_ROW.replace(",orders,", ",orders,")])
    dest = Destination.from_url(lake)
    full = ["run", "--config", full_config, "--destination", f"{lake}/full"]
    _run(full, "full-1")
    pg.execute("DELETE FROM orders WHERE order_id > 1000")
    _run(full, "full-2-behind", skew="-300")
    dest = Destination.from_url(f"{lake}/full")
    schema = lake_schema_name(f"{SOURCE}__orders")
    newest = max(completed_load_ids(dest, SOURCE, schema, table="orders"), key=float)
    behind = next(r for r in audit_rows(f"{lake}/full") if r["run_id"] == "full-2-behind")
    assert newest == behind["load_id"]
    fs = dest.filesystem()
    ids: Counter = Counter()
    for path in table_files(dest, SOURCE, "orders", fs):
        if load_id_of(path) == newest:
            with fs.open(path, "rb") as handle:
                ids.update(pq.read_table(handle, columns=["order_id"]).column(0).to_pylist())
    assert sorted(ids) == list(range(1, 1001))


def test_the_clean_up_removes_only_files_named_as_loads(tmp_path):
    """Files that never committed are removed; a file a person put into the table folder (any
    other name) stays."""
    from ingest.lake.layout import is_load_file
    from ingest.lake.lease import Holder, lease_for, lease_name
    from ingest.lake.loads import remove_incomplete_loads

    lake = tmp_path / "lake"
    folder = lake / "src" / "t" / "2026" / "12" / "07"
    folder.mkdir(parents=True)
    dead = folder / "1796000000.123.a1b2c3d4e5.parquet"
    base = folder / "1796000001.5.base0001.parquet"
    mine = folder / "my_export.parquet"
    odd = folder / "notes.2024.parquet"
    for path in (dead, base, mine, odd):
        path.write_bytes(b"x")
    assert [is_load_file(str(p)) for p in (dead, base, mine, odd)] == [True, True, False, False]
    dest = Destination.from_url(str(lake))
    lease = lease_for(
        dest,
        lease_name("src", "t"),
        Holder.me("r", "plain"),
        wait_s=0,
        same_task_wait_s=0,
        period_s=60,
    )
    with lease:
        report, _ = remove_incomplete_loads(dest, "src", "t", "src__t", "src_t", (), lease)
    assert report.data_files_removed == 2
    assert not dead.exists() and not base.exists() and mine.exists() and odd.exists()
