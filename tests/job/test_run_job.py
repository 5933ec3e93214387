"""The engine against a real PostgreSQL source, into a file:// lake and into Azurite."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.settings import Settings
from tests.conftest import lake_files, read_lake_table
from tests.fixtures.jobs import run_tasks_json
from tests.fixtures.orders import (
    ORDERS_DDL,
    SOURCE,
    insert_orders,
    job,
    lake_rows,
    run,
    source_rows,
)
from tests.fixtures.sheet import TABLE_JOB, sheet_header


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def test_full_load_round_trips_values_and_types(pg, lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 2500)
    pg.use_as(monkeypatch, SOURCE)

    result = run(job(pg, load_type="FULL"), lake, "run-1")

    assert result["status"] == "SUCCESS", result["error"]
    assert result["rows_loaded"] == 2500
    assert result["files_written"] >= 1
    assert lake_rows(lake) == source_rows(pg)
    landed = read_lake_table(lake, SOURCE, "orders")
    schema = landed.schema
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("created_at").type.tz == "UTC"
    assert schema.field("order_id").type == pa.int64()
    assert landed.column("note").null_count == 500
    # the layout: <source>/<table>/YYYY/MM/DD/<load_id>.<file_id>.parquet, dated by the load (UTC)
    today = dt.datetime.now(dt.UTC)
    for path in lake_files(lake, SOURCE, "orders"):
        parts = path.split("/")
        assert parts[-5:-1] == ["orders", f"{today:%Y}", f"{today:%m}", f"{today:%d}"]
        assert parts[-1].startswith(result["load_id"] + ".")


def test_full_load_keeps_history(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 10)
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg, load_type="FULL"), file_lake, "run-1")
    second = run(job(pg, load_type="FULL"), file_lake, "run-2")
    assert first["status"] == second["status"] == "SUCCESS"
    assert first["load_id"] != second["load_id"]
    # two complete snapshots: every source row twice, earlier files not replaced
    assert lake_rows(file_lake) == sorted(source_rows(pg) * 2)


def test_incremental_loads_exactly_the_new_rows(pg, lake, monkeypatch, tmp_path):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1000)
    pg.use_as(monkeypatch, SOURCE)
    the_job = job(pg)

    first = run(the_job, lake, "run-1")
    assert first["status"] == "SUCCESS", first["error"]
    assert first["rows_loaded"] == 1000
    max_wm = pg.query("SELECT max(updated_at) FROM orders")[0][0]
    assert dt.datetime.fromisoformat(first["watermark_after"]) == max_wm

    # new rows, some of them with a watermark EQUAL to the previous maximum
    pg.execute(
        "INSERT INTO orders SELECT g, 1, now(), 1.00, 'same-ts ' || g, NULL, %s "
        "FROM generate_series(1001, 1005) g",
        (max_wm,),
    )
    insert_orders(pg, 1006, 1100, updated_at="2025-06-01T00:00:00+00")
    # the worker's disk is wiped between runs: state must come from the lake
    work_dir = Settings.from_env().work_dir
    assert not any(work_dir.glob("pipelines/*")), "run_job leaves no working folder behind"

    second = run(the_job, lake, "run-2")

    assert second["status"] == "SUCCESS", second["error"]
    assert second["rows_loaded"] == 100
    assert second["watermark_before"] == first["watermark_after"]
    assert lake_rows(lake) == source_rows(pg)  # each row exactly once


def test_incremental_honours_initial_watermark_and_skips_null_watermarks(
    pg, file_lake, monkeypatch
):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 100)
    pg.execute("UPDATE orders SET updated_at = NULL WHERE order_id <= 3")
    pg.use_as(monkeypatch, SOURCE)
    start = "2024-01-01T00:00:50+00:00"

    result = run(job(pg, initial_watermark=start), file_lake, "run-1")

    assert result["status"] == "SUCCESS", result["error"]
    expected = source_rows(pg, where=f"updated_at >= '{start}'")
    assert lake_rows(file_lake) == expected
    assert len(expected) == 51  # seconds 50..100; NULL watermarks are not loaded


def test_same_run_id_twice_is_one_load(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 300)
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg, load_type="FULL"), file_lake, "run-7")
    again = run(job(pg, load_type="FULL"), file_lake, "run-7")
    assert again["status"] == "SUCCESS"
    assert again["load_id"] == first["load_id"]
    assert again["rows_loaded"] == first["rows_loaded"] == 300
    assert lake_rows(file_lake) == source_rows(pg)  # not twice


def test_aborted_load_is_cleaned_and_reloaded_exactly_once(pg, lake, monkeypatch):
    """A load dies after its first file reached the lake; the next run removes the partial
    files and loads again: each source row exactly once among completed loads."""
    from dlt.destinations.impl.filesystem.filesystem import FilesystemClient

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 5000)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "1000")
    monkeypatch.setenv("INGEST_CHUNK_SIZE", "1000")
    the_job = job(pg)

    def die_before_marker(self, load_id):  # files are in the lake, the marker is not
        raise RuntimeError("injected crash before the load completed")

    with monkeypatch.context() as patch:
        patch.setattr(FilesystemClient, "complete_load", die_before_marker)
        broken = run(the_job, lake, "run-1")
    assert broken["status"] == "FAILED"
    assert "injected crash" in broken["error"]
    assert len(lake_files(lake, SOURCE, "orders")) >= 2  # partial files are there...
    assert lake_rows(lake) == []  # ...but no completed load

    healed = run(the_job, lake, "run-2")

    assert healed["status"] == "SUCCESS", healed["error"]
    assert healed["watermark_before"] == ""  # the dead load's state was not restored
    assert healed["rows_loaded"] == 5000
    assert healed["files_written"] >= 5  # rolled over at 1,000 rows per file
    files = lake_files(lake, SOURCE, "orders")
    assert all(Path(f).name.startswith(healed["load_id"]) for f in files)
    assert lake_rows(lake) == source_rows(pg)


def test_jobs_of_one_source_in_parallel_keep_separate_states(pg, file_lake, monkeypatch):
    pg.use_as(monkeypatch, SOURCE)
    names = ["alpha", "beta", "gamma"]
    for index, name in enumerate(names):
        pg.execute(ORDERS_DDL.replace("orders", name))
        pg.execute(
            f"INSERT INTO {name} SELECT g, 1, now(), 1.5, 'x', NULL, "
            "timestamptz '2024-01-01' + (g || ' hours')::interval "
            "FROM generate_series(1, %s) g",
            (100 * (index + 1),),
        )
    jobs = [job(pg, table=name, job_id=name) for name in names]
    settings = Settings.from_env()

    def tasks(run_id):
        return [{"run_id": run_id, "job": j.to_dict(), "destination": file_lake} for j in jobs]

    first = run_tasks_json(tasks("run-1"), settings, workers=2)
    assert [r["rows_loaded"] for r in first] == [100, 200, 300]
    for index, name in enumerate(names):
        pg.execute(
            f"INSERT INTO {name} SELECT g, 1, now(), 1.5, 'y', NULL, "
            "timestamptz '2030-01-01' + (g || ' hours')::interval "
            "FROM generate_series(1000, %s) g",
            (1000 + index,),
        )
    second = run_tasks_json(tasks("run-2"), settings, workers=2)

    assert [r["status"] for r in second] == ["SUCCESS"] * 3
    assert [r["rows_loaded"] for r in second] == [1, 2, 3]
    for result, name in zip(second, names, strict=True):
        expected_wm = pg.query(f"SELECT max(updated_at) FROM {name}")[0][0]
        assert dt.datetime.fromisoformat(result["watermark_after"]) == expected_wm
        assert lake_rows(file_lake, name) == source_rows(pg, name)


def test_amounts_keep_exact_precision(pg, file_lake, monkeypatch):
    pg.execute("CREATE TABLE money (id int PRIMARY KEY, v numeric(18, 6), f double precision)")
    pg.execute(
        "INSERT INTO money VALUES (1, 123456789012.123456, 0.1), (2, -0.000001, NULL), "
        "(3, NULL, 1e300)"
    )
    pg.use_as(monkeypatch, SOURCE)
    result = run(job(pg, table="money", load_type="FULL", primary_key=("id",)), file_lake, "r")
    assert result["status"] == "SUCCESS", result["error"]
    landed = read_lake_table(file_lake, SOURCE, "money")
    assert landed.schema.field("v").type == pa.decimal128(18, 6)
    values = dict(zip(landed.column("id").to_pylist(), landed.column("v").to_pylist(), strict=True))
    assert values == {1: Decimal("123456789012.123456"), 2: Decimal("-0.000001"), 3: None}


def test_dataset_init_is_safe_under_concurrent_first_jobs(tmp_path):
    """dlt creates a source's folder check-then-create; jobs of one source starting together
    on a new lake must not fail: ensure_dataset does it idempotently and atomically."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from ingest.lake.destination import Destination
    from ingest.lake.loads import ensure_dataset

    dest = Destination.from_url((tmp_path / "lake").as_uri())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: ensure_dataset(dest, "src"), range(16)))
    marker = json.loads((tmp_path / "lake" / "src" / "init").read_text())
    assert marker == {"initial_version": 2, "current_version": 2}
    assert [p.name for p in (tmp_path / "lake" / "src").iterdir()] == ["init"]


def test_incremental_run_without_new_rows_loads_nothing(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 50)
    pg.use_as(monkeypatch, SOURCE)
    first = run(job(pg), file_lake, "run-1")
    empty = run(job(pg), file_lake, "run-2")
    assert empty["status"] == "SUCCESS", empty["error"]
    assert (empty["rows_loaded"], empty["files_written"], empty["load_id"]) == (0, 0, "")
    assert empty["watermark_after"] == empty["watermark_before"] == first["watermark_after"]
    assert len(lake_files(file_lake, SOURCE, "orders")) == 1
    insert_orders(pg, 51, 60, updated_at="2030-01-01T00:00:00+00")
    third = run(job(pg), file_lake, "run-3")
    assert third["rows_loaded"] == 10
    assert lake_rows(file_lake) == source_rows(pg)


def test_process_killed_mid_load_then_rerun_lands_each_row_once(
    pg, file_lake, monkeypatch, tmp_path
):
    """A real `python -m ingest run` process is SIGKILLed after its data files reached the lake
    and before the load's completion marker; the next run cleans up and loads exactly once."""
    import os
    import subprocess
    import sys

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 3000)
    pg.use_as(monkeypatch, SOURCE)
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + f"\nk1,Y,postgresql,{SOURCE},{pg.name},orders,"
        "INCREMENTAL,updated_at,order_id\n"
    )
    killer = tmp_path / "killer"
    killer.mkdir()
    (killer / "sitecustomize.py").write_text(
        "import os, signal\n"
        "from dlt.destinations.impl.filesystem.filesystem import FilesystemClient\n"
        "def _die(self, load_id):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "FilesystemClient.complete_load = _die\n"
    )
    env = dict(os.environ, DATA_WRITER__FILE_MAX_ITEMS="1000", INGEST_CHUNK_SIZE="1000")
    command = [
        sys.executable,
        "-m",
        "ingest",
        "-q",
        "run",
        "--config",
        str(config),
        "--destination",
        file_lake,
    ]
    root = str(Path(__file__).resolve().parents[2])

    killed = subprocess.run(
        command,
        env={**env, "PYTHONPATH": f"{killer}{os.pathsep}{root}"},
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert killed.returncode == -9, killed.stderr
    assert len(lake_files(file_lake, SOURCE, "orders")) >= 3  # data files of the dead load
    assert lake_rows(file_lake) == []

    rerun = subprocess.run(
        command,
        env={**env, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "never committed" in rerun.stderr
    assert lake_rows(file_lake) == source_rows(pg)
