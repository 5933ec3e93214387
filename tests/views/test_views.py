"""Views over the lake: what they return, in DuckDB, against the source.

Nights are simulated by giving dlt's load ids a clock shifted by whole days (a load id is the
load's unix time; dlt names the date folder after it), so several nights run in one test.
Every view result is compared with the source row for row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.views import DIALECTS
from ingest.views.duck import connect, create_views
from ingest.views.refresh import refresh_views
from tests.fixtures.app import job_row, write_config
from tests.fixtures.orders import SOURCE, run

DAY = 86400.0

CUSTOMERS_DDL = """
CREATE TABLE customers (
    customer_id int PRIMARY KEY,
    name text NOT NULL,
    balance numeric(10, 2),
    note text,
    seen_at timestamptz
)"""
ORDERS_DDL = """
CREATE TABLE orders (
    order_id bigint PRIMARY KEY,
    customer_id int,
    amount numeric(12, 2),
    updated_at timestamptz NOT NULL
)"""


@pytest.fixture
def night(monkeypatch):
    """`night(n)`: loads from now on get load ids n days before now (n=0: today)."""
    import dlt.extract.storage as storage

    offset = {"days": 0}
    counter = itertools.count()

    def load_id() -> str:
        # strictly increasing within the test, shifted into the chosen night
        return f"{time.time() - offset['days'] * DAY + next(counter) * 1e-3:.7f}"

    monkeypatch.setattr(storage, "create_load_id", load_id)

    def set_night(days_ago: int) -> None:
        offset["days"] = days_ago

    return set_night


def jobs_for(pg, **kw: Any) -> list[JobConfig]:
    common = dict(enabled=True, source_type="postgresql", source_name=SOURCE, schema_name=pg.name)
    return [
        JobConfig(
            job_id="cust",
            table_name="customers",
            load_type="FULL",
            primary_key=("customer_id",),
            **common,
            **kw,
        ),
        JobConfig(
            job_id="ord",
            table_name="orders",
            load_type="INCREMENTAL",
            watermark_column="updated_at",
            primary_key=("order_id",),
            **common,
            **kw,
        ),
    ]


def run_night(jobs: list[JobConfig], lake: str, run_id: str) -> None:
    for job in jobs:
        result = run(job, lake, f"{run_id}-{job.job_id}")
        assert result["status"] == "SUCCESS", result["error"]
    report = refresh_views(jobs, lake)
    assert not report.errors, report.errors


def view_rows(lake: str, sql: str) -> list[tuple]:
    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    connection = connect(dest, fs)
    try:
        create_views(connection, dest, fs)
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def source(pg, sql: str) -> list[tuple]:
    return pg.query(sql)


def source_dicts(pg, sql: str) -> list[dict[str, Any]]:
    with pg.conn.cursor() as cursor:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def view_dicts(lake: str, sql: str) -> list[dict[str, Any]]:
    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    connection = connect(dest, fs)
    try:
        create_views(connection, dest, fs)
        cursor = connection.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def add_customers(pg, first: int, last: int) -> None:
    pg.execute(
        """INSERT INTO customers SELECT g, 'Zoë ' || g, g * 1.5, 'note ' || g,
           timestamptz '2024-03-01 10:00:00+00' + (g || ' hours')::interval
           FROM generate_series(%s, %s) g""",
        (first, last),
    )


def add_orders(pg, first: int, last: int, day: str) -> None:
    pg.execute(
        """INSERT INTO orders (order_id, customer_id, amount, updated_at)
           SELECT g, g %% 13, g * 2.25, %s::timestamptz + (g || ' seconds')::interval
           FROM generate_series(%s, %s) g""",
        (day, first, last),
    )


# ------------------------------------------------------------------------------------------
# several nights: FULL, INCREMENTAL, drift, two loads on one day


def test_views_return_the_source_after_several_nights(pg, file_lake, monkeypatch, night, caplog):
    pg.execute(CUSTOMERS_DDL)
    pg.execute(ORDERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    jobs = jobs_for(pg)
    lake = file_lake
    current = "SELECT * EXCLUDE (_load_id, _load_date) FROM pg_erp.{} ORDER BY 1"
    snapshots: dict[str, list[dict[str, Any]]] = {}

    def snapshot_of_last_load() -> None:
        load_id = view_rows(lake, "SELECT DISTINCT _load_id FROM pg_erp.customers")
        assert len(load_id) == 1
        snapshots[load_id[0][0]] = source_dicts(pg, "SELECT * FROM customers ORDER BY 1")

    # night 1 (3 days ago)
    night(3)
    add_customers(pg, 1, 40)
    add_orders(pg, 1, 100, "2024-01-01T00:00:00+00")
    run_night(jobs, lake, "n1")
    assert view_rows(lake, current.format("customers")) == source(
        pg, "SELECT * FROM customers ORDER BY 1"
    )
    assert view_rows(lake, current.format("orders")) == source(
        pg, "SELECT * FROM orders ORDER BY 1"
    )
    snapshot_of_last_load()

    # night 2: drift in both tables (a new column), changed and new rows
    night(2)
    pg.execute("ALTER TABLE customers ADD COLUMN tier text")
    pg.execute("UPDATE customers SET tier = 'gold', balance = balance + 1 WHERE customer_id < 10")
    add_customers(pg, 41, 50)
    pg.execute("ALTER TABLE orders ADD COLUMN discount numeric(5, 2)")
    add_orders(pg, 101, 150, "2024-02-01T00:00:00+00")
    pg.execute("UPDATE orders SET discount = 0.5 WHERE order_id > 100")
    run_night(jobs, lake, "n2")
    assert view_rows(lake, current.format("customers")) == source(
        pg, "SELECT * FROM customers ORDER BY 1"
    )
    # rows loaded before the column existed read it as NULL
    assert view_rows(lake, current.format("orders")) == source(
        pg, "SELECT * FROM orders ORDER BY 1"
    )
    assert view_rows(lake, "SELECT count(*) FROM pg_erp.orders WHERE discount IS NULL") == [(100,)]
    snapshot_of_last_load()

    # night 3 (yesterday): two runs on one day; a column removed from the source
    night(1)
    pg.execute("DELETE FROM customers WHERE customer_id > 45")
    run_night(jobs[:1], lake, "n3a")
    snapshot_of_last_load()
    pg.execute("ALTER TABLE customers DROP COLUMN note")
    pg.execute("UPDATE customers SET name = name || ' (moved)' WHERE customer_id % 2 = 0")
    add_orders(pg, 151, 170, "2024-03-01T00:00:00+00")
    run_night(jobs, lake, "n3b")
    latest = view_rows(
        lake, "SELECT * EXCLUDE (_load_id, _load_date, note) FROM pg_erp.customers ORDER BY 1"
    )  # noqa: E501
    assert latest == source(pg, "SELECT * FROM customers ORDER BY 1")
    # the dropped column stays in the view (the stored schema keeps it): NULL in this snapshot
    assert view_rows(lake, "SELECT count(*) FROM pg_erp.customers WHERE note IS NOT NULL") == [(0,)]
    snapshot_of_last_load()
    assert view_rows(lake, current.format("orders")) == source(
        pg, "SELECT * FROM orders ORDER BY 1"
    )

    # the history view: every snapshot, each exactly as the source was at its load
    history = view_rows(
        lake,
        "SELECT _load_id, count(*), min(_load_date), max(_load_date) FROM pg_erp.customers_history "
        "GROUP BY 1 ORDER BY 1",
    )
    assert [h[0] for h in history] == sorted(snapshots, key=float)
    for load_id, count, first_day, last_day in history:
        assert count == len(snapshots[load_id])
        expected_day = dt.datetime.fromtimestamp(float(load_id), dt.UTC).date()
        assert first_day == last_day == expected_day
    columns = [c[0] for c in view_rows(lake, "DESCRIBE pg_erp.customers_history")]
    assert columns == [
        "customer_id", "name", "balance", "note", "seen_at", "tier", "_load_id", "_load_date"
    ]  # fmt: skip
    for load_id, rows in snapshots.items():
        got = view_dicts(
            lake,
            f"SELECT * FROM pg_erp.customers_history WHERE _load_id = '{load_id}' ORDER BY 1",
        )
        assert len(got) == len(rows)
        for view_row, source_row in zip(got, rows, strict=True):
            # every column the source had then, as it was; the others NULL
            assert {k: view_row[k] for k in source_row} == source_row
            assert all(view_row[k] is None for k in columns[:-2] if k not in source_row)
    # three days of date folders, two loads on the last one
    days = {
        r[0] for r in view_rows(lake, "SELECT DISTINCT _load_date FROM pg_erp.customers_history")
    }  # noqa: E501
    assert len(days) == 3
    # the files of every load were where the load id's date says: no table folder was listed
    assert "not in their load's date folder" not in caplog.text

    # a consumer of another engine gets the same files and columns
    texts = {d: (Path(lake[7:]) / "metadata/views" / d / "pg_erp__customers.sql").read_text()
             for d in DIALECTS}  # fmt: skip
    for text in texts.values():
        for load_id in snapshots:
            assert load_id in text


def test_an_empty_snapshot_is_an_empty_current_view(pg, file_lake, monkeypatch, night):
    pg.execute(CUSTOMERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    jobs = jobs_for(pg)[:1]
    night(1)
    add_customers(pg, 1, 20)
    run_night(jobs, file_lake, "e1")
    night(0)
    pg.execute("DELETE FROM customers")
    run_night(jobs, file_lake, "e2")
    assert view_rows(file_lake, "SELECT count(*) FROM pg_erp.customers") == [(0,)]
    history = view_rows(
        file_lake, "SELECT count(*), count(DISTINCT _load_id) FROM pg_erp.customers_history"
    )
    assert history == [(20, 1)]


# ------------------------------------------------------------------------------------------
# a killed load


def _fake_killed_load(lake: str, table: str) -> list[Path]:
    """What a load killed mid-write leaves: data files without a completion marker (a copy
    of a real file under a new load id, and a truncated one no Parquet reader can open)."""
    root = Path(lake[len("file://") :]) / SOURCE / table
    real = sorted(root.rglob("*.parquet"))[-1]
    dead = f"{time.time():.7f}"
    copy = real.parent / f"{dead}.aaaaaaaaaa.parquet"
    copy.write_bytes(real.read_bytes())
    truncated = real.parent / f"{dead}.bbbbbbbbbb.parquet"
    truncated.write_bytes(real.read_bytes()[:100])
    return [copy, truncated]


def test_a_killed_load_is_never_seen_before_or_after_the_next_run(pg, file_lake, monkeypatch):
    pg.execute(ORDERS_DDL)
    pg.execute(CUSTOMERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    jobs = jobs_for(pg)
    add_orders(pg, 1, 50, "2024-01-01T00:00:00+00")
    add_customers(pg, 1, 30)
    run_night(jobs, file_lake, "k1")
    leftovers = _fake_killed_load(file_lake, "orders") + _fake_killed_load(file_lake, "customers")
    all_rows = "SELECT * EXCLUDE (_load_id, _load_date) FROM pg_erp.{} ORDER BY 1"

    # before the job runs again: the views do not reference the dead load's files
    report = refresh_views(jobs, file_lake)
    assert not report.errors
    for table in ("orders", "customers"):
        assert view_rows(file_lake, all_rows.format(table)) == source(
            pg, f"SELECT * FROM {table} ORDER BY 1"
        )
    lake_root = Path(file_lake[7:])
    for text in (lake_root / "metadata/views").rglob("*.sql"):
        assert not any(p.name in text.read_text() for p in leftovers), text
    # (a reader globbing the folder would count the dead load's rows, or fail on the
    # truncated file)

    # the next run removes the leftovers and loads; the views still match the source
    add_orders(pg, 51, 60, "2024-02-01T00:00:00+00")
    run_night(jobs, file_lake, "k2")
    assert not any(p.exists() for p in leftovers)
    for table in ("orders", "customers"):
        assert view_rows(file_lake, all_rows.format(table)) == source(
            pg, f"SELECT * FROM {table} ORDER BY 1"
        )


# ------------------------------------------------------------------------------------------
# refreshing reads the markers, not the lake


class RecordingFs:
    """An fsspec filesystem that records which folders were listed."""

    def __init__(self, fs: Any):
        self._fs = fs
        self.listed: list[str] = []
        self.found: list[str] = []

    def ls(self, path: str, **kw: Any) -> Any:
        self.listed.append(path)
        return self._fs.ls(path, **kw)

    def find(self, path: str, **kw: Any) -> Any:
        self.found.append(path)
        return self._fs.find(path, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


def test_a_refresh_lists_markers_and_new_loads_date_folders_only(pg, file_lake, monkeypatch, night):
    pg.execute(ORDERS_DDL)
    pg.execute(CUSTOMERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    jobs = jobs_for(pg)
    for days_ago in (3, 2):
        night(days_ago)
        add_orders(pg, days_ago * 100, days_ago * 100 + 9, f"2024-01-0{5 - days_ago}T00:00:00+00")
        add_customers(pg, days_ago * 100, days_ago * 100 + 4)
        run_night(jobs, file_lake, f"r{days_ago}")

    recorders: list[RecordingFs] = []
    real = Destination.filesystem

    def recording(self: Destination) -> Any:
        recorders.append(RecordingFs(real(self)))
        return recorders[-1]

    monkeypatch.setattr(Destination, "filesystem", recording)
    unchanged = refresh_views(jobs, file_lake)
    assert unchanged.unchanged == 2 and unchanged.files_written == 0
    listed = [p.rsplit("/", 2)[-2:] for r in recorders for p in r.listed]
    assert {folder for _, folder in listed} == {"_dlt_loads", "_dlt_version"}
    assert not any(r.found for r in recorders)

    # a new load: its own date folder is listed, nothing else under the table
    recorders.clear()
    night(0)
    add_orders(pg, 1000, 1004, "2024-02-01T00:00:00+00")
    result = run(jobs[1], file_lake, "r0")
    assert result["status"] == "SUCCESS", result["error"]
    recorders.clear()
    refresh_views(jobs, file_lake)
    table_listings = [p for r in recorders for p in r.listed if "/orders" in p]
    today = dt.datetime.fromtimestamp(float(result["load_id"]), dt.UTC)
    assert table_listings == [f"{file_lake[7:]}/{SOURCE}/orders/{today:%Y/%m/%d}"]
    assert not any(r.found for r in recorders)


def test_date_folders_are_the_utc_date_of_the_load_id(pg, file_lake, monkeypatch, night):
    """dlt's {YYYY}/{MM}/{DD} come from the load package's creation time, which is its load
    id: the rule the views rely on to find a load's files without listing the table."""
    pg.execute(ORDERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    job = jobs_for(pg)[1]
    for days_ago in (40, 0):
        night(days_ago)
        add_orders(
            pg, 1000 - days_ago, 1000 - days_ago, f"2024-0{3 - days_ago // 40}-01T00:00:00+00"
        )  # noqa: E501
        result = run(job, file_lake, f"d{days_ago}")
        assert result["status"] == "SUCCESS", result["error"]
        day = dt.datetime.fromtimestamp(float(result["load_id"]), dt.UTC)
        files = list((Path(file_lake[7:]) / SOURCE / "orders").rglob(f"{result['load_id']}.*"))
        assert files and all(f.parent.relative_to(Path(file_lake[7:]) / SOURCE / "orders")
                             == Path(f"{day:%Y/%m/%d}") for f in files)  # fmt: skip


# ------------------------------------------------------------------------------------------
# the run refreshes the views; failures never fail the run


def test_every_run_refreshes_the_views_next_to_the_audit(pg, file_lake, monkeypatch, tmp_path):
    from ingest.commands.core import execute_run
    from ingest.settings import Settings

    pg.execute(ORDERS_DDL)
    add_orders(pg, 1, 20, "2024-01-01T00:00:00+00")
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(
        tmp_path / "jobs.csv",
        [job_row("001", "orders", source=SOURCE, schema_name=pg.name,
                 load_type="INCREMENTAL", watermark_column="updated_at")],
    )  # fmt: skip
    summary, results = execute_run(
        Settings.from_env(), config_path=str(config), destination=file_lake
    )
    assert results[0].status == "SUCCESS", results[0].error
    assert summary.views["files_written"] == len(DIALECTS) and not summary.views["errors"]
    views = Path(file_lake[7:]) / "metadata" / "views"
    assert sorted(p.parent.name for p in views.glob("*/pg_erp__orders.sql")) == sorted(DIALECTS)
    assert view_rows(file_lake, "SELECT count(*) FROM pg_erp.orders") == [(20,)]

    add_orders(pg, 21, 25, "2024-02-01T00:00:00+00")
    summary, _ = execute_run(Settings.from_env(), config_path=str(config), destination=file_lake)
    assert view_rows(file_lake, "SELECT count(*) FROM pg_erp.orders") == [(25,)]


def test_a_views_failure_is_reported_and_the_audit_kept(pg, file_lake, monkeypatch, tmp_path):
    from ingest.app import activities
    from ingest.reports.history import run_results

    pg.execute(ORDERS_DDL)
    add_orders(pg, 1, 5, "2024-01-01T00:00:00+00")
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(
        tmp_path / "jobs.csv",
        [job_row("001", "orders", source=SOURCE, schema_name=pg.name,
                 load_type="INCREMENTAL", watermark_column="updated_at")],
    )  # fmt: skip
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(config))
    monkeypatch.setenv("INGEST_DESTINATION", file_lake)
    from ingest.app.runstore import RunStore

    planned = activities.plan_run({"run_id": "run-v"})
    activities.ingest_table(
        {"run_id": "run-v", "destination": file_lake, "batch": 0, "position": 0}
    )
    stored = RunStore(file_lake, "run-v")  # the plan and the full result, by reference
    task, result = stored.task(0, 0), stored.result("001")
    run_payload = {"run_id": "run-v", "destination": file_lake, "started_at": planned["started_at"]}
    # the function app's audit step writes the views too
    summary = activities.write_audit(run_payload)
    assert summary["views"]["files_written"] == len(DIALECTS)
    assert view_rows(file_lake, "SELECT count(*) FROM pg_erp.orders") == [(5,)]

    # a views step that breaks: the audit is written, the run's summary says what failed
    import ingest.views.inventory as inventory

    def broken(*args: Any, **kw: Any) -> Any:
        raise OSError("lake unreachable")

    monkeypatch.setattr(inventory, "find_load_files", broken)
    monkeypatch.setattr(inventory, "read_manifest", lambda *a: inventory.Manifest())
    other = RunStore(file_lake, "run-w")
    import dataclasses

    from ingest.model.plan import Plan

    moved = dataclasses.replace(task, run_id="run-w")
    other.write_plan(Plan("run-w", file_lake, None, (moved,)), 25)
    other.write_result(dataclasses.replace(result, run_id="run-w"))
    summary = activities.write_audit({**run_payload, "run_id": "run-w"})
    assert summary["audit_rows_added"] == 1
    assert summary["views"]["errors"] == [{"job_id": "001", "error": "OSError: lake unreachable"}]
    assert [r["job_id"] for r in run_results(file_lake, "run-w")] == ["001"]


# ------------------------------------------------------------------------------------------
# Delta tables


def test_delta_tables_views(pg, file_lake, monkeypatch, caplog):
    pg.execute(ORDERS_DDL)
    pg.execute(CUSTOMERS_DDL)
    pg.use_as(monkeypatch, SOURCE)
    jobs = jobs_for(pg, table_format="delta")
    add_orders(pg, 1, 30, "2024-01-01T00:00:00+00")
    add_customers(pg, 1, 12)
    run_night(jobs, file_lake, "dl1")
    pg.execute("ALTER TABLE orders ADD COLUMN discount numeric(5, 2)")
    add_orders(pg, 31, 40, "2024-02-01T00:00:00+00")
    pg.execute("UPDATE customers SET name = 'changed' WHERE customer_id < 4")
    run_night(jobs, file_lake, "dl2")
    rows = "SELECT * EXCLUDE (_load_id, _load_date) FROM pg_erp.{} ORDER BY 1"
    # INCREMENTAL: the Delta table's current version; FULL: the files the newest write added
    assert view_rows(file_lake, rows.format("orders")) == source(
        pg, "SELECT * FROM orders ORDER BY 1"
    )
    assert view_rows(file_lake, rows.format("customers")) == source(
        pg, "SELECT * FROM customers ORDER BY 1"
    )
    latest_load = view_rows(file_lake, "SELECT DISTINCT _load_id FROM pg_erp.customers")
    assert len(latest_load) == 1 and latest_load[0][0] is not None
    views = Path(file_lake[7:]) / "metadata" / "views"
    synapse = (views / "synapse" / "pg_erp__orders.sql").read_text()
    assert "FORMAT = 'DELTA'" in synapse and "/pg_erp/orders/'" in synapse
    assert "delta.`file://" in (views / "databricks" / "pg_erp__orders.sql").read_text()
    assert "customers_history" not in (views / "duckdb" / "pg_erp__customers.sql").read_text()


# ------------------------------------------------------------------------------------------
# `python -m ingest query` against an Azurite lake


def test_query_reads_an_azurite_lake_through_its_views(azure_lake, tmp_path, monkeypatch, capsys):
    # this test reads the loads' own files: the runs do not compact (INGEST_COMPACT_LOADS=1 would
    # add a base per run)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "1000")
    import dataclasses
    import sqlite3

    from ingest import cli
    from ingest.commands.core import execute_run
    from ingest.commands.demo import build_shop, change_shop, write_demo_project
    from ingest.settings import Settings

    folder = tmp_path / "demo"
    build_shop(folder / "shop.db")
    config, secrets = write_demo_project(folder)
    settings = dataclasses.replace(Settings.from_env(), secrets_file=secrets)
    for day in range(2):
        if day:
            change_shop(folder / "shop.db")
        summary, results = execute_run(settings, config_path=str(config), destination=azure_lake)
        assert summary.jobs_failed == 0, results
        assert summary.views["errors"] == []
    db = sqlite3.connect(folder / "shop.db")

    # a FULL table: the latest snapshot only, row for row
    code = cli.main(
        ["query", "select customer_id, first_name, city from demo_shop.customers order by 1",
         "--destination", azure_lake, "--max-rows", "5000"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    expected = db.execute("SELECT customer_id, first_name, city FROM customers ORDER BY 1")
    assert [line.split(None, 2) for line in lines[2:-1]] == [
        [str(i), first, city] for i, first, city in expected
    ]
    assert lines[-1] == "1200 row(s)"

    # an INCREMENTAL table: every completed load; its loads and dates come from the paths
    code = cli.main(
        ["query", "select _load_id, count(*) from demo_shop.order_items group by 1 order by 1",
         "--destination", azure_lake]
    )  # fmt: skip
    out = capsys.readouterr().out
    counts = [int(line.split()[1]) for line in out.splitlines()[2:-1]]
    assert counts == [db.execute("SELECT count(*) FROM order_items").fetchone()[0] - 150, 150]

    # a bad query: exit 2 with DuckDB's reason
    assert cli.main(["query", "select * from demo_shop.nope", "--destination", azure_lake]) == 2
    assert "nope" in capsys.readouterr().err
