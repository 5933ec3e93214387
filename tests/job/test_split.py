"""Split loads (`ingest.job.split`): one table read as key ranges, committed as one load.

Every test compares the lake with the source row for row, and counts the completion markers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.config import JobConfig
from ingest.job.split import cut_bounds
from ingest.lake.destination import Destination
from ingest.lake.lease import read_commit_log
from ingest.lake.loads import staged_files, table_files
from tests.fixtures.jobs import SPLIT_KEY, run_chunk_task, run_task, run_tasks_json
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders, lake_rows, source_rows
from tests.fixtures.orders import job as pg_job
from tests.fixtures.processes import HOOK, ROOT, Process, wait_for_file
from tests.fixtures.sheet import TABLE_JOB, sheet_header
from tests.fixtures.split import markers, settings_for, task


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def test_cut_bounds_cover_the_range_once():
    assert cut_bounds(1, 100, 4) == ("26", "51", "76")
    assert cut_bounds(1, 2, 8) == ("2",)
    assert cut_bounds(5, 5, 4) == ()
    assert cut_bounds(None, None, 4) == ()
    import datetime as dt

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    bounds = cut_bounds(start, start + dt.timedelta(days=4), 4)
    assert bounds == tuple((start + dt.timedelta(days=d)).isoformat() for d in (1, 2, 3))
    assert cut_bounds(dt.date(2024, 1, 1), dt.date(2024, 1, 8), 2) == ("2024-01-05",)


def test_split_full_load_lands_every_row_once_in_one_commit(pg, lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=4)

    [result] = run_tasks_json([task(config, lake, "run-1")], settings_for(lake), workers=2)

    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 4
    assert result["rows_loaded"] == 3000
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert lake_rows(lake) == source_rows(pg)
    assert len(markers(lake, config)) == 1
    files = table_files(Destination.from_url(lake), SOURCE, "orders")
    assert {p.rsplit("/", 1)[-1].split(".")[0] for p in files} == {result["load_id"].split(".")[0]}
    log = read_commit_log(Destination.from_url(lake), SOURCE, "orders")
    assert log is not None and log.pending is None and log.is_committed(result["load_id"])


def test_split_first_incremental_load_then_an_ordinary_run(pg, lake, monkeypatch):
    file_lake = lake
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 2000)
    # many rows at the newest watermark: the commit reads them, the chunks below them
    pg.execute("UPDATE orders SET updated_at = '2030-01-01T00:00:00+00' WHERE order_id > 1900")
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, split=3)

    [first] = run_tasks_json([task(config, file_lake, "run-1")], settings_for(file_lake))

    assert first["status"] == "SUCCESS", first["error"]
    assert first["chunks"] == 3
    assert first["rows_loaded"] == 2000
    assert first["reconciled"] == "MATCH", first["reconcile_note"]
    assert first["watermark_after"].startswith("2030-01-01")
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1

    insert_orders(pg, 2001, 2100, updated_at="2031-01-01T00:00:00+00")
    [second] = run_tasks_json([task(config, file_lake, "run-2")], settings_for(file_lake))
    assert second["status"] == "SUCCESS", second["error"]
    assert second["chunks"] in (None, "")
    assert second["rows_loaded"] == 100
    assert lake_rows(file_lake) == source_rows(pg)


def test_split_by_estimate(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)
    pg.execute("ANALYZE orders")
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL")

    [result] = run_tasks_json(
        [task(config, file_lake, "run-1")], settings_for(file_lake, split_rows=300)
    )

    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 4
    assert lake_rows(file_lake) == source_rows(pg)


def test_chunks_are_invisible_until_the_commit_and_land_once(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1200)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake)

    started = run_task(task(config, file_lake, "run-1"), settings=settings)
    plan = started[SPLIT_KEY]
    assert len(plan["bounds"]) == 2
    chunk = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": 1}}

    first = run_chunk_task(chunk, settings=settings)
    again = run_chunk_task(chunk, settings=settings)  # the same chunk activity run twice

    assert first["status"] == "SUCCESS" and first["rows"] > 0
    assert again["status"] == "SUCCESS" and again["already_landed"]
    assert lake_rows(file_lake) == []  # nothing visible before the commit
    # another run of the job meanwhile: busy, not a second writer
    other = run_task(task(config, file_lake, "run-2"), settings=settings)
    assert other["status"] == "SKIPPED" and "split load" in other["error"]

    # the commit before every chunk landed: nothing commits, the split load is abandoned
    commit = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": None}}
    early = run_task(commit, settings=settings)
    assert early["status"] == "FAILED" and "chunk(s) 0, 2 of 3 did not land" in early["error"]
    assert lake_rows(file_lake) == []
    assert markers(file_lake, config) == []

    # the next run starts over and lands every row once
    [result] = run_tasks_json([task(config, file_lake, "run-3")], settings)
    assert result["status"] == "SUCCESS", result["error"]
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1


@pytest.mark.parametrize("load_type", ["FULL", "INCREMENTAL"])
def test_split_loads_mariadb(mariadb, lake, monkeypatch, load_type):
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
        load_type=load_type,
        watermark_column="at" if load_type == "INCREMENTAL" else None,
        split=5,
    )

    [result] = run_tasks_json([task(config, lake, "run-1")], settings_for(lake), workers=2)

    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 5
    assert result["rows_loaded"] == 2500
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    landed = lake_rows(lake, "events", "maria_src")
    expected = sorted(mariadb.query("SELECT id, at, body FROM events"))
    assert landed == expected
    assert len(markers(lake, config)) == 1
    if load_type == "INCREMENTAL":
        mariadb.execute("INSERT INTO events SELECT seq, '2025-01-01', 'late' FROM seq_2501_to_2600")
        [second] = run_tasks_json([task(config, lake, "run-2")], settings_for(lake))
        assert second["status"] == "SUCCESS", second["error"]
        assert second["rows_loaded"] == 100 and not second["chunks"]
        expected = sorted(mariadb.query("SELECT id, at, body FROM events"))
        assert lake_rows(lake, "events", "maria_src") == expected


def test_a_chunk_of_an_abandoned_split_load_never_lands(pg, file_lake, monkeypatch):
    """Run 1 splits and stalls; past INGEST_SPLIT_STALE_S run 2 abandons it and loads the
    table; run 1's chunks and commit then find their split load gone: nothing of it counts."""
    import dataclasses
    import datetime as dt

    from ingest.lake.layout import lease_name
    from ingest.lake.lease import Holder, lease_for

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 900)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake)
    plan = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    stalled = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": 0}}
    assert run_chunk_task(stalled, settings=settings)["status"] == "SUCCESS"

    # run 1 goes quiet for 3 hours (its split load was last touched then)
    dest = Destination.from_url(file_lake)
    with lease_for(
        dest,
        lease_name(SOURCE, "orders"),
        Holder.me("test", "age"),
        wait_s=5,
        same_task_wait_s=5,
        period_s=60,
    ) as lease:
        log = lease.read_log()
        old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).isoformat(timespec="seconds")
        lease.write_log(log.with_pending(dataclasses.replace(log.pending, touched=old)))

    [second] = run_tasks_json([task(config, file_lake, "run-2")], settings)
    assert second["status"] == "SUCCESS", second["error"]
    late = run_chunk_task({**stalled, "split": {**plan, "chunk": 1}}, settings=settings)
    assert late["status"] == "FAILED" and "no longer pending" in late["error"]
    commit = run_task({**stalled, "split": {**plan, "chunk": None}}, settings=settings)
    assert commit["status"] == "FAILED" and "no longer pending" in commit["error"]
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1
    # the next run removes what run 1 left
    [third] = run_tasks_json([task(config, file_lake, "run-3")], settings)
    assert third["status"] == "SUCCESS", third["error"]
    left = table_files(dest, SOURCE, "orders") + staged_files(dest, SOURCE, "orders")
    assert [p for p in left if plan["load_id"] in p] == []


# ------------------------------------------------------------------------------------------
# crashes: a chunk killed -9, in a chunk process and in the CLI's worker pool


def _chunk_process(chunk_task: dict, pause_dir: Path, pause_at: str = "") -> subprocess.Popen:
    script = (
        "import json, sys\n"
        "from tests.fixtures.jobs import run_chunk_task\n"
        "print(json.dumps(run_chunk_task(json.loads(sys.argv[1]))))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HOOK), str(ROOT)]),
        "INGEST_TEST_PAUSE_DIR": str(pause_dir),
        "DATA_WRITER__FILE_MAX_ITEMS": "1000",
        "INGEST_CHUNK_SIZE": "1000",
    }
    if pause_at:
        env["INGEST_TEST_PAUSE_AT"] = pause_at
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(chunk_task)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"ended before pausing: {process.communicate()}")
        assert time.monotonic() < deadline, f"no {path.name} within {timeout} s"
        time.sleep(0.02)


def test_a_chunk_killed_after_its_first_file_lands_once_on_its_retry(
    pg, lake, monkeypatch, tmp_path
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 6000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=2)
    settings = settings_for(lake, file_max_rows=1000)
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "1000")

    plan = run_task(task(config, lake, "run-1"), settings=settings)[SPLIT_KEY]
    chunk = {**task(config, lake, "run-1"), "split": {**plan, "chunk": 0}}
    pause = tmp_path / "pause"
    pause.mkdir()
    doomed = _chunk_process(chunk, pause)
    _wait_for(pause / "first_file", doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(30)
    dest = Destination.from_url(lake)
    assert staged_files(dest, SOURCE, "orders", plan["load_id"])  # the kill left a staged file
    assert table_files(dest, SOURCE, "orders") == []  # none in the table: invisible
    assert lake_rows(lake) == []

    # the commit now: chunk 0 never landed, nothing commits
    commit = {**task(config, lake, "run-1"), "split": {**plan, "chunk": None}}
    assert run_chunk_task({**chunk, "split": {**plan, "chunk": 1}}, settings=settings)["rows"] > 0
    retried = run_chunk_task(chunk, settings=settings)  # the retry removes what the kill left
    assert retried["status"] == "SUCCESS", retried["error"]
    result = run_task(commit, settings=settings)

    assert result["status"] == "SUCCESS", result["error"]
    assert result["rows_loaded"] == 6000
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert lake_rows(lake) == source_rows(pg)
    assert len(markers(lake, config)) == 1
    # the commit of the same task again reports the load, lands nothing
    again = run_task(commit, settings=settings)
    assert again["status"] == "SUCCESS" and again["load_id"] == result["load_id"]
    assert lake_rows(lake) == source_rows(pg)


@pytest.mark.parametrize("ending", ["killed", "continues"])
def test_a_late_duplicate_attempt_never_touches_the_committed_load(
    pg, lake, monkeypatch, tmp_path, ending
):
    """Durable runs an activity at least once: a second attempt of chunk 0, in its own
    process, passes its checks and stops right before writing; meanwhile the first attempt
    lands chunk 0, chunk 1 lands and the split load commits. Then the late attempt writes all
    its files (after the commit) and is killed -9 before it records its landing, or goes on
    and finds its split load committed. Either way the committed load keeps exactly its files
    and every row once; the late files were staged, never in the table, and the next run's
    clean-up removes what the killed attempt left."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=2)
    settings = settings_for(lake, file_max_rows=1000)
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "1000")
    dest = Destination.from_url(lake)
    plan = run_task(task(config, lake, "run-1"), settings=settings)[SPLIT_KEY]
    chunk = {**task(config, lake, "run-1"), "split": {**plan, "chunk": 0}}
    commit = {**task(config, lake, "run-1"), "split": {**plan, "chunk": None}}
    pause = tmp_path / "pause"
    pause.mkdir()

    late = _chunk_process(chunk, pause, "chunk_write,chunk_written")
    _wait_for(pause / "chunk_write", late)  # checked: pending, chunk 0 not landed
    first = run_chunk_task(chunk, settings=settings)
    other = run_chunk_task({**chunk, "split": {**plan, "chunk": 1}}, settings=settings)
    result = run_task(commit, settings=settings)
    assert [first["status"], other["status"]] == ["SUCCESS", "SUCCESS"], (first, other)
    assert result["status"] == "SUCCESS", result["error"]
    committed = table_files(dest, SOURCE, "orders")
    assert lake_rows(lake) == source_rows(pg)

    (pause / "go_chunk_write").write_text("")  # the late attempt writes, after the commit
    _wait_for(pause / "chunk_written", late)
    late_files = staged_files(dest, SOURCE, "orders", plan["load_id"])
    assert len(late_files) >= 2  # it wrote its rows (1,500 in files of 1,000): all staged
    assert table_files(dest, SOURCE, "orders") == committed
    assert lake_rows(lake) == source_rows(pg)  # no row twice, not even for a moment
    if ending == "killed":
        late.send_signal(signal.SIGKILL)
        late.wait(30)
    else:
        (pause / "go_chunk_written").write_text("")
        out, err = late.communicate(timeout=120)
        outcome = json.loads(out.strip().splitlines()[-1])
        assert outcome["status"] == "FAILED" and "no longer pending" in outcome["error"], err
        assert staged_files(dest, SOURCE, "orders") == []  # it removed its own files

    assert table_files(dest, SOURCE, "orders") == committed  # nothing added, nothing removed
    assert lake_rows(lake) == source_rows(pg)
    assert len(markers(lake, config)) == 1
    # the next run of the job removes whatever the late attempt left in the staging folder
    [again] = run_tasks_json([task(config, lake, "run-2")], settings)
    assert again["status"] == "SUCCESS", again["error"]
    assert again["rows_loaded"] == 3000 and again["reconciled"] == "MATCH"
    assert staged_files(dest, SOURCE, "orders") == []


def test_the_cli_retries_a_chunk_whose_worker_was_killed(pg, file_lake, monkeypatch, tmp_path):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 8000)
    pg.use_as(monkeypatch, SOURCE)
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            *TABLE_JOB,
            "primary_key",
            "split",
        )
        + "\n"
        f"s1,Y,postgresql,{SOURCE},{pg.name},orders,FULL,order_id,4\n",
        encoding="utf-8",
    )
    pause = tmp_path / "pause"
    pause.mkdir()
    args = ["run", "--config", str(path), "--destination", file_lake, "--workers", "2"]
    process = Process(args, {**os.environ, "DATA_WRITER__FILE_MAX_ITEMS": "1000"}, pause_dir=pause)
    wait_for_file(pause / "first_file", process)
    os.kill(int((pause / "first_file.pid").read_text()), signal.SIGKILL)
    (pause / "go").write_text("")

    assert process.finish() == 0, process.stderr
    assert "trying it again" in process.stderr
    assert "4 of 4 chunks landed, 8,000 rows" in process.stderr, process.stderr
    assert lake_rows(file_lake) == source_rows(pg)
    config = pg_job(pg, load_type="FULL", job_id="s1")
    assert len(markers(file_lake, config)) == 1


# ------------------------------------------------------------------------------------------
# configuration


def test_split_and_split_column_are_validated_with_row_and_column(tmp_path):
    from ingest.configuration import load_config
    from ingest.errors import ConfigError

    path = tmp_path / "jobs.csv"
    header = sheet_header(
        "job_id",
        "enabled",
        "source_type",
        "source_name",
        "table_name",
        "load_type",
        "primary_key",
        "split",
        "split_column",
    )
    path.write_text(
        "\n".join(
            [
                header,
                "a,Y,postgresql,erp,orders,FULL,id,8,",
                "b,Y,postgresql,erp,events,FULL,,4,created_at",
                "c,Y,postgresql,erp,t_c,FULL,id,1,",
                "d,Y,postgresql,erp,t_d,FULL,id,lots,",
                "e,Y,rest_api,api,items,FULL,id,4,",
                "f,Y,postgresql,erp,t_f,FULL,id,4,id; drop table x",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as failure:
        load_config(str(path))
    text = str(failure.value)
    assert "row 4" in text and "'1' must be a number of key ranges from 2 to 256" in text
    assert "row 5" in text and "'lots'" in text
    assert "row 6" in text and "only SQL sources are read as key ranges" in text
    assert "row 7" in text and "split_column" in text and "not a plain SQL name" in text

    path.write_text(
        "\n".join(
            [
                header,
                "a,Y,postgresql,erp,orders,FULL,id,8,",
                "b,Y,postgresql,erp,events,FULL,,,created_at",
            ]
        )
        + "\n"
    )
    config = load_config(str(path))
    assert config.job("a").split == 8 and config.job("a").split_column is None
    assert config.job("b").split is None and config.job("b").split_column == "created_at"
    assert JobConfig.from_dict(config.job("a").to_dict()) == config.job("a")


def test_a_split_incremental_commit_with_no_row_left_at_the_boundary(pg, file_lake, monkeypatch):
    """The rows at the newest watermark (the commit's part) are deleted before the commit:
    the commit still lands the chunks' rows, in one load, and the next run goes on."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1500)
    pg.execute("UPDATE orders SET updated_at = '2030-01-01T00:00:00+00' WHERE order_id > 1400")
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, split=3)
    settings = settings_for(file_lake)
    plan = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    for chunk in range(3):
        landed = run_chunk_task(
            {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": chunk}},
            settings=settings,
        )
        assert landed["status"] == "SUCCESS", landed["error"]
    pg.execute("DELETE FROM orders WHERE order_id > 1400")

    result = run_task(
        {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": None}}, settings=settings
    )

    assert result["status"] == "SUCCESS", result["error"]
    assert result["load_id"] == plan["load_id"] and result["rows_loaded"] == 1400
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1
    insert_orders(pg, 1501, 1510, updated_at="2031-01-01T00:00:00+00")
    [second] = run_tasks_json([task(config, file_lake, "run-2")], settings)
    assert second["status"] == "SUCCESS", second["error"]
    assert lake_rows(file_lake) == source_rows(pg)


def test_a_split_backfill_loads_exactly_its_range_once(pg, lake, monkeypatch):
    from ingest.lake.loads import completed_load_ids

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)  # updated 2024-01-01 00:00:01 + 1 s per row
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, split=4)
    settings = settings_for(lake)
    [first] = run_tasks_json([task(config, lake, "run-1")], settings)
    assert first["status"] == "SUCCESS" and first["chunks"] == 4

    start, end = "2024-01-01T00:10:00+00:00", "2024-01-01T00:30:00+00:00"
    backfill = {"from": start, "to": end}
    [result] = run_tasks_json([task(config, lake, "run-2", backfill=backfill)], settings, workers=2)

    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 4 and result["load_type"] == "BACKFILL"
    expected = pg.query(
        "SELECT order_id FROM orders WHERE updated_at >= %s AND updated_at < %s ORDER BY 1",
        (start, end),
    )
    assert result["rows_loaded"] == len(expected) == 1200
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert result["watermark_after"].startswith("2024-01-01T00:29:59")
    dest = Destination.from_url(lake)
    done = completed_load_ids(
        dest, SOURCE, config.backfill_schema_name_in_lake, table=config.lake_table
    )
    assert done == {result["load_id"]}
    import pyarrow.parquet as pq

    fs = dest.filesystem()
    ids = []
    for path in table_files(dest, SOURCE, "orders", fs):
        if result["load_id"] in path:
            with fs.open(path, "rb") as handle:
                ids += pq.read_table(handle, columns=["order_id"]).column(0).to_pylist()
    assert sorted(ids) == [r[0] for r in expected]


def test_a_reading_chunk_renews_its_split_load(pg, file_lake, monkeypatch):
    import ingest.job.chunk

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setattr(ingest.job.chunk, "TOUCH_EVERY_S", 0.0)  # every batch
    config = pg_job(pg, load_type="FULL", split=2, chunk_size=500)
    settings = settings_for(file_lake)
    plan = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    dest = Destination.from_url(file_lake)
    before = read_commit_log(dest, SOURCE, "orders")
    seen: list[str] = []
    original = ingest.job.chunk._touch

    def touch(lease, plan_):
        original(lease, plan_)
        seen.append(lease.read_log().pending.touched)

    monkeypatch.setattr(ingest.job.chunk, "_touch", touch)
    chunk = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": 1}}
    result = run_chunk_task(chunk, settings=settings)

    assert result["status"] == "SUCCESS", result["error"]
    assert len(seen) >= 2 and before.pending.touched <= seen[-1]


def test_an_attempt_that_lands_after_the_commit_removes_its_files(pg, file_lake, monkeypatch):
    """Two attempts of one chunk at once (Durable runs activities at least once): the second
    writes its files after the first landed and the split load committed; at its landing it
    finds the split load gone and removes them: the committed load keeps every row once."""
    import ingest.job.chunk

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 900)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=2)
    settings = settings_for(file_lake)
    plan = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    chunk = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": 0}}
    commit = {**task(config, file_lake, "run-1"), "split": {**plan, "chunk": None}}
    real_commit = ingest.job.chunk._commit
    done: list[dict] = []

    def late_write(pipeline, table, workers):
        # the other attempt lands chunk 0, chunk 1 lands, the split load commits: then this
        # attempt, which passed its check before all that, writes its files
        if not done:
            monkeypatch.setattr(ingest.job.chunk, "_commit", real_commit)
            done.append(run_chunk_task(chunk, settings=settings))
            done.append(run_chunk_task({**chunk, "split": {**plan, "chunk": 1}}, settings=settings))
            done.append(run_task(commit, settings=settings))
        return real_commit(pipeline, table, workers)

    monkeypatch.setattr(ingest.job.chunk, "_commit", late_write)
    late = run_chunk_task(chunk, settings=settings)

    assert [d["status"] for d in done] == ["SUCCESS", "SUCCESS", "SUCCESS"], done
    assert late["status"] == "FAILED" and "no longer pending" in late["error"]
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1


def test_plan_shows_the_split(tmp_path, capsys):
    from ingest.cli import main

    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "primary_key",
            "split",
        )
        + "\n"
        "a,Y,postgresql,erp,orders,FULL,id,8\n"
        "b,Y,postgresql,erp,items,FULL,id,\n",
        encoding="utf-8",
    )
    assert main(["plan", "--config", str(path), "--destination", (tmp_path / "l").as_uri()]) == 0
    out = capsys.readouterr().out
    assert "FULL (split 8)" in out and out.count("(split") == 1


def test_split_on_a_timestamp_column_with_nulls(pg, file_lake, monkeypatch):
    pg.execute("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, body text)")
    pg.execute(
        "INSERT INTO events SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE "
        "timestamptz '2024-01-01 00:00:00+00' + (g || ' minutes')::interval END, 'e' || g "
        "FROM generate_series(1, 2000) g"
    )
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(
        pg, table="events", load_type="FULL", primary_key=("id",), split=6, split_column="at"
    )

    [result] = run_tasks_json(
        [task(config, file_lake, "run-1")], settings_for(file_lake), workers=2
    )

    assert result["status"] == "SUCCESS", result["error"]
    assert result["chunks"] == 6 and result["rows_loaded"] == 2000
    assert result["reconciled"] == "MATCH", result["reconcile_note"]
    assert lake_rows(file_lake, "events") == source_rows(pg, "events")


def test_split_without_a_column_to_cut_on_says_what_to_do(pg, file_lake, monkeypatch):
    pg.execute("CREATE TABLE pairs (a int, b int, note text, PRIMARY KEY (a, b))")
    pg.execute("INSERT INTO pairs SELECT g, g, 'x' FROM generate_series(1, 50) g")
    pg.execute('CREATE TABLE "odd" ("select" numeric(10, 2) PRIMARY KEY)')
    pg.execute('INSERT INTO "odd" SELECT g FROM generate_series(1, 50) g')
    pg.use_as(monkeypatch, SOURCE)
    settings = settings_for(file_lake)
    composite = pg_job(pg, table="pairs", load_type="FULL", primary_key=(), split=4)
    result = run_task(task(composite, file_lake, "run-1"), settings=settings)
    assert result["status"] == "FAILED" and not result["retriable"]
    assert "no one-column primary key; set split_column" in result["error"]
    decimal = pg_job(pg, table="odd", load_type="FULL", primary_key=("select",), split=4)
    result = run_task(task(decimal, file_lake, "run-1"), settings=settings)
    assert result["status"] == "FAILED"
    assert "split column select is neither an integer nor a date or timestamp" in result["error"]
    # a column that is not there is named
    missing = pg_job(pg, table="pairs", load_type="FULL", split=4, split_column="nope")
    result = run_task(task(missing, file_lake, "run-1"), settings=settings)
    assert result["status"] == "FAILED" and "split column 'nope' not found" in result["error"]
    assert lake_rows(file_lake, "pairs") == []


def test_ranges_follow_the_rows_where_the_database_keeps_statistics(pg, file_lake, monkeypatch):
    """Keys 1..1000 and 10^12+1..10^12+1000: ranges of equal width would put every row in the
    first and the last chunk; PostgreSQL's histogram cuts them into parts of about equal rows."""
    pg.execute("CREATE TABLE skewed (id bigint PRIMARY KEY, body text)")
    pg.execute("INSERT INTO skewed SELECT g, 'a' || g FROM generate_series(1, 1000) g")
    pg.execute(
        "INSERT INTO skewed SELECT 1000000000000 + g, 'b' || g FROM generate_series(1, 1000) g"
    )
    pg.execute("ANALYZE skewed")
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, table="skewed", load_type="FULL", primary_key=("id",), split=4)
    chunks: dict[int, int] = {}

    [result] = run_tasks_json(
        [task(config, file_lake, "run-1")],
        settings_for(file_lake),
        on_chunk=lambda c: chunks.__setitem__(c["chunk"], c["rows"]),
    )

    assert result["status"] == "SUCCESS", result["error"]
    assert sum(chunks.values()) == 2000 and len(chunks) == 4
    assert all(300 <= rows <= 700 for rows in chunks.values()), chunks
    assert lake_rows(file_lake, "skewed") == source_rows(pg, "skewed")


def test_a_start_run_twice_returns_the_same_split_load(pg, file_lake, monkeypatch):
    """A retried start (Durable ran the activity twice, or lost its reply): the same plan,
    token and load id; its chunks then land once and the commit makes one load."""
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 600)
    pg.use_as(monkeypatch, SOURCE)
    config = pg_job(pg, load_type="FULL", split=3)
    settings = settings_for(file_lake)
    first = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    again = run_task(task(config, file_lake, "run-1"), settings=settings)[SPLIT_KEY]
    assert again == first
    for chunk in range(3):
        landed = run_chunk_task(
            {**task(config, file_lake, "run-1"), "split": {**first, "chunk": chunk}},
            settings=settings,
        )
        assert landed["status"] == "SUCCESS", landed["error"]
    commit = {**task(config, file_lake, "run-1"), "split": {**first, "chunk": None}}
    result = run_task(commit, settings=settings)
    assert result["status"] == "SUCCESS" and result["rows_loaded"] == 600
    # the start run once more after the commit: this task has loaded; it reports that load
    late = run_task(task(config, file_lake, "run-1"), settings=settings)
    assert late[SPLIT_KEY] is None and late["load_id"] == result["load_id"]
    assert lake_rows(file_lake) == source_rows(pg)
    assert len(markers(file_lake, config)) == 1
