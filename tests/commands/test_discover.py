"""`dlt-ingest discover`, through the installed command: live on PostgreSQL and MariaDB
(discover -> validate -> run -> the lake equals the source), SQLite into a workbook, and SQL
Server / Oracle offline (the catalogue queries they would run, compiled without a server, and
the proposals from what their dialects reflect)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook, load_workbook
from sqlalchemy.dialects import mssql, oracle

from ingest.config.jobrows import next_job_ids
from ingest.configuration import load_config
from ingest.sources.discovery import ROW_ESTIMATES, propose, row_estimates, watermark_candidates
from tests.cli import clean_env, dlt_ingest
from tests.conftest import (
    MARIA_HOST,
    MARIA_PORT,
    MARIA_USER,
    PG_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    read_lake_table,
)
from tests.fixtures.sheet import TABLE_JOB, sheet_header


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def lake_equals_source(lake: str, source: str, table: str, source_rows: list[tuple]) -> None:
    landed = read_lake_table(lake, source, table)
    assert landed is not None, f"{table} did not land"
    names = [f.name for f in landed.schema if not f.name.startswith("_dlt")]
    got = sorted(tuple(r[n] for n in names) for r in landed.to_pylist())
    assert got == sorted(source_rows), table


# ------------------------------------------------------------------------------------------
# PostgreSQL, live

PG_SOURCE = "pgd"


@pytest.fixture
def pg_tables(pg):
    pg.execute(
        "CREATE TABLE customers (id serial PRIMARY KEY, name text, updated_at timestamptz NOT NULL)"
    )
    pg.execute("CREATE INDEX ON customers (updated_at)")
    pg.execute(
        "INSERT INTO customers (name, updated_at) SELECT 'c' || g, "
        "timestamptz '2024-01-01 00:00:00+00' + (g || ' minutes')::interval "
        "FROM generate_series(1, 500) g"
    )
    pg.execute(
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "payload text, at timestamp)"  # `at` has no index: not a candidate
    )
    pg.execute(
        "INSERT INTO events (payload, at) SELECT 'e' || g, now() FROM generate_series(1, 400) g"
    )
    pg.execute("CREATE TABLE codes (code text PRIMARY KEY, label text)")
    pg.execute("INSERT INTO codes VALUES ('a', 'A'), ('b', ''), ('c', NULL)")
    pg.execute("CREATE TABLE log_lines (line text, created_at timestamptz NOT NULL)")
    pg.execute("CREATE INDEX ON log_lines (created_at)")
    pg.execute(
        "INSERT INTO log_lines SELECT 'l' || g, timestamptz '2024-02-01 00:00:00+00' + "
        "(g || ' seconds')::interval FROM generate_series(1, 300) g"
    )
    pg.execute("CREATE TABLE other_table (id int PRIMARY KEY)")
    pg.execute('CREATE TABLE "Odd Name" (x int)')
    pg.execute("ANALYZE")
    return pg


def pg_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        tmp_path,
        SOURCES__PGD__CREDENTIALS=f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}",
    )


EXISTING = (
    sheet_header(
        *TABLE_JOB,
        "watermark_column",
        "primary_key",
        "schedule",
        "notes",
    )
    + "\n"
    '007,N,postgresql,pgd,{schema},other_table,FULL,,id,WEEKLY:MON,"kept, as is"\n'
    "legacy-a,N,sqlite,old_src,,things,FULL,,,DAILY,\n"
)


def test_postgresql_discover_validate_run(pg_tables, tmp_path):
    pg = pg_tables
    env = pg_env(tmp_path)
    jobs = tmp_path / "jobs.csv"
    existing = EXISTING.format(schema=pg.name)
    jobs.write_text(existing, encoding="utf-8")
    args = ["--source", PG_SOURCE, "--schema", pg.name, "--full-below", "100", "--out", str(jobs)]

    proc = dlt_ingest("discover", "--source-type", "postgresql", *args, env=env)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = jobs.read_text(encoding="utf-8")
    assert text.startswith(existing)  # the existing rows, untouched
    rows = {r["table_name"]: r for r in rows_of(jobs)}
    assert rows["other_table"]["job_id"] == "007"  # configured before: no second job
    assert rows["other_table"]["schedule"] == "WEEKLY:MON"
    assert "Odd Name" not in rows
    new = {t: rows[t] for t in ("codes", "customers", "events", "log_lines")}
    assert [new[t]["job_id"] for t in sorted(new)] == ["008", "009", "010", "011"]
    assert {
        t: (r["load_type"], r["watermark_column"], r["primary_key"]) for t, r in new.items()
    } == {
        "codes": ("FULL", "", "code"),  # 3 rows: under --full-below
        "customers": ("INCREMENTAL", "updated_at", "id"),  # the indexed timestamp
        "events": ("INCREMENTAL", "id", "id"),  # identity; `at` has no index
        "log_lines": ("INCREMENTAL", "created_at", ""),  # no primary key
    }
    assert all(r["schema_name"] == pg.name and r["enabled"] == "Y" for r in new.values())
    assert "by dlt-ingest discover: ~500 rows" in new["customers"]["notes"]
    assert "'Odd Name' is not a plain SQL name" in proc.stdout
    assert "already job 007" in proc.stdout
    assert "4 new job row(s), 1 already configured" in proc.stdout

    checked = dlt_ingest("validate", "--config", str(jobs), "--check-connections", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "6 job(s), 4 enabled" in checked.stdout

    lake = (tmp_path / "lake").as_uri()
    ran = dlt_ingest("run", "--config", str(jobs), "--destination", lake, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lake_equals_source(lake, PG_SOURCE, "codes", pg.query("SELECT code, label FROM codes"))
    lake_equals_source(
        lake, PG_SOURCE, "customers", pg.query("SELECT id, name, updated_at FROM customers")
    )
    lake_equals_source(lake, PG_SOURCE, "events", pg.query("SELECT id, payload, at FROM events"))
    lake_equals_source(
        lake, PG_SOURCE, "log_lines", pg.query("SELECT line, created_at FROM log_lines")
    )

    # again, the type now read from the file: nothing new, the file unchanged
    before = jobs.read_bytes()
    again = dlt_ingest("discover", *args, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 new job row(s), 5 already configured" in again.stdout
    assert jobs.read_bytes() == before


def test_postgresql_discover_patterns_and_json(pg_tables, tmp_path):
    pg = pg_tables
    proc = dlt_ingest(
        "discover", "--source", PG_SOURCE, "--source-type", "postgresql", "--schema", pg.name,
        "--tables", "C*", "--tables", "nothing,log_*", "--json", env=pg_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    tables = {t["table_name"]: t for t in payload["tables"]}
    assert set(tables) == {"codes", "customers", "log_lines"}
    assert tables["customers"]["estimated_rows"] == 500
    assert tables["customers"]["watermark_candidates"] == ["updated_at", "id"]
    assert tables["codes"]["load_type"] == "FULL"  # 3 rows < 100,000 by default
    assert tables["customers"]["load_type"] == "FULL"  # 500 rows < 100,000
    assert [r["job_id"] for r in payload["rows"]] == ["001", "002", "003"]
    assert payload["out"] is None


def test_unknown_source_type_and_unreachable_source_say_what_to_do(tmp_path):
    env = clean_env(tmp_path, SOURCES__GHOST__CREDENTIALS="postgresql://u:S3cret-pw@127.0.0.1:1/x")
    proc = dlt_ingest("discover", "--source", "ghost", env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Pass --source-type (postgresql, mysql, mssql, oracle, sqlite)" in proc.stderr
    proc = dlt_ingest("discover", "--source", "ghost", "--source-type", "postgresql", env=env)
    assert proc.returncode == 1
    assert "cannot reach source 'ghost'" in proc.stderr
    assert "S3cret-pw" not in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------
# MariaDB, live

MARIA_SOURCE = "shopdb"


def test_mariadb_discover_validate_run(mariadb, tmp_path):
    mariadb.execute(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50), "
        "updated_at DATETIME(6) NOT NULL, INDEX (updated_at))"
    )
    base = dt.datetime(2024, 3, 1, 8, 0)
    mariadb.executemany(
        "INSERT INTO items (name, updated_at) VALUES (%s, %s)",
        [(f"Crème {i}" if i % 4 else None, base + dt.timedelta(seconds=i)) for i in range(400)],
    )
    mariadb.execute("CREATE TABLE tags (tag VARCHAR(20) PRIMARY KEY, label VARCHAR(20))")
    mariadb.executemany("INSERT INTO tags VALUES (%s, %s)", [("x", "X"), ("y", "")])
    mariadb.execute("CREATE TABLE readings (id INT PRIMARY KEY, at DATETIME, value INT)")
    mariadb.executemany(
        "INSERT INTO readings VALUES (%s, %s, %s)", [(i, base, i * 3) for i in range(1, 301)]
    )
    mariadb.execute("ANALYZE TABLE items, tags, readings")
    env = clean_env(
        tmp_path,
        SOURCES__SHOPDB__CREDENTIALS=(
            f"mysql://{MARIA_USER}@{MARIA_HOST}:{MARIA_PORT}/{mariadb.name}"
        ),
    )
    jobs = tmp_path / "jobs.csv"  # a new file; no --schema: the connection's database

    proc = dlt_ingest(
        "discover", "--source", MARIA_SOURCE, "--source-type", "mysql", "--full-below", "50",
        "--out", str(jobs), env=env,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["table_name"]: r for r in rows_of(jobs)}
    assert {
        t: (r["load_type"], r["watermark_column"], r["primary_key"]) for t, r in rows.items()
    } == {
        "items": ("INCREMENTAL", "updated_at", "id"),
        "readings": ("FULL", "", "id"),  # `at` unindexed, `id` not auto-increment
        "tags": ("FULL", "", "tag"),
    }
    assert all(r["schema_name"] == "" for r in rows.values())
    assert "no watermark candidate" in rows["readings"]["notes"]

    checked = dlt_ingest("validate", "--config", str(jobs), "--check-connections", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lake = (tmp_path / "lake").as_uri()
    ran = dlt_ingest("run", "--config", str(jobs), "--destination", lake, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lake_equals_source(
        lake, MARIA_SOURCE, "items", mariadb.query("SELECT id, name, updated_at FROM items")
    )
    lake_equals_source(lake, MARIA_SOURCE, "tags", mariadb.query("SELECT tag, label FROM tags"))
    lake_equals_source(
        lake, MARIA_SOURCE, "readings", mariadb.query("SELECT id, at, value FROM readings")
    )


# ------------------------------------------------------------------------------------------
# SQLite into an existing workbook


def test_sqlite_rows_appended_to_a_workbooks_jobs_sheet(tmp_path):
    import sqlite3

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, total NUMERIC(10,2))")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"{i}.50") for i in range(1, 9)])
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('hello')")
    book = tmp_path / "config.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "jobs"
    sheet.append(["job_id", "enabled", "source_type", "source_name", "table_name", "load_type"])
    sheet.append(["001", "N", "sqlite", "shop", "notes", "FULL"])
    workbook.create_sheet("read me").append(["kept as it is"])
    workbook.save(book)
    env = clean_env(tmp_path, SOURCES__SHOP__CREDENTIALS=f"sqlite:///{db}")

    proc = dlt_ingest(
        "discover", "--source", "shop", "--out", str(book), "--full-below", "5", env=env
    )  # the type comes from the workbook's row of the same source

    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = load_workbook(book)
    assert saved.sheetnames == ["jobs", "read me"]
    assert list(saved["read me"].values) == [("kept as it is",)]
    values = list(saved["jobs"].values)
    header = list(values[0])
    assert header[:6] == [
        "job_id",
        "enabled",
        "source_type",
        "source_name",
        "table_name",
        "load_type",
    ]
    assert "watermark_column" in header and "primary_key" in header and "notes" in header
    by_table = {
        row[header.index("table_name")]: dict(zip(header, row, strict=True)) for row in values[1:]
    }
    assert by_table["notes"]["job_id"] == "001" and by_table["notes"]["enabled"] == "N"
    orders = by_table["orders"]
    assert orders["job_id"] == "002" and orders["load_type"] == "INCREMENTAL"
    assert orders["watermark_column"] == "order_id"  # INTEGER PRIMARY KEY: the rowid
    config = load_config(book)
    assert [j.job_id for j in config.enabled_jobs] == ["002"]
    lake = (tmp_path / "lake").as_uri()
    ran = dlt_ingest("run", "--config", str(book), "--destination", lake, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with sqlite3.connect(db) as conn:
        source = [(i, t) for i, t in conn.execute("SELECT order_id, total FROM orders")]
    landed = read_lake_table(lake, "shop", "orders").to_pylist()
    assert sorted((r["order_id"], str(r["total"])) for r in landed) == sorted(
        (i, f"{float(t):.2f}") for i, t in source
    )


def test_new_job_ids_never_reuse_one():
    assert next_job_ids([], 2) == ["001", "002"]
    assert next_job_ids(["007", "legacy", "12"], 2) == ["013", "014"]
    assert next_job_ids(["0099"], 1) == ["0100"]
    assert next_job_ids(["a", "b"], 1) == ["001"]


# ------------------------------------------------------------------------------------------
# SQL Server and Oracle, offline


def builder_dialect(source_type: str, **keys: str) -> Any:
    """The dialect of the engine our builder makes for this source type (never connects)."""
    from ingest.secrets.resolver import Secret
    from ingest.sources import get_builder

    url = get_builder(source_type).url({k: Secret(v) for k, v in keys.items()})
    return sa.create_engine(url).dialect


def test_sql_server_and_oracle_row_estimates_compile_without_a_server():
    dialect = builder_dialect("mssql", host="sql.example", database="erp", username="etl")
    assert dialect.driver == "pyodbc"
    text = str(ROW_ESTIMATES["mssql"].compile(dialect=dialect))
    assert "FROM sys.tables AS t" in text
    assert "JOIN sys.partitions AS p ON p.object_id = t.object_id AND p.index_id IN (0, 1)" in text
    assert "WHERE s.name = ?" in text  # pyodbc's parameter style: a bound value, never pasted
    dialect = builder_dialect("oracle", host="ora.example", username="hr", service_name="PDB1")
    assert dialect.driver == "oracledb"
    text = str(ROW_ESTIMATES["oracle"].compile(dialect=dialect))
    assert text.endswith("FROM all_tables WHERE owner = :schema")


class RecordingConnection:
    """What `row_estimates` needs of a connection: a dialect, and execute (recorded)."""

    def __init__(self, dialect: Any, rows: list[tuple]):
        self.dialect = dialect
        self.rows = rows
        self.calls: list[tuple[Any, dict]] = []

    def execute(self, query: Any, params: dict) -> list[tuple]:
        self.calls.append((query, params))
        return self.rows


def test_oracle_estimates_use_the_upper_case_owner_and_skip_missing_statistics():
    connection = RecordingConnection(oracle.dialect(), [("ORDERS", 12345.0), ("NEW_T", None)])
    assert row_estimates(connection, "oracle", "sales") == {"orders": 12345}
    ((query, params),) = connection.calls
    assert query is ROW_ESTIMATES["oracle"] and params == {"schema": "SALES"}
    connection = RecordingConnection(mssql.dialect(), [("Orders", 10), ("Empty", 0)])
    assert row_estimates(connection, "mssql", "dbo") == {"orders": 10, "empty": 0}
    assert connection.calls[0][1] == {"schema": "dbo"}


def test_sql_server_and_oracle_proposals_validate(tmp_path):
    # what SQLAlchemy's mssql dialect reflects: identity columns, DATETIME2, rowversion
    mssql_columns = [
        {"name": "OrderID", "type": mssql.INTEGER(), "autoincrement": True,
         "identity": {"start": 1, "increment": 1}},
        {"name": "ModifiedDate", "type": mssql.DATETIME2()},
        {"name": "CreatedDate", "type": mssql.DATETIME2()},
        {"name": "RowVer", "type": mssql.TIMESTAMP()},  # rowversion: binary, not a time
    ]  # fmt: skip
    mssql_indexes = [{"column_names": ["CreatedDate"]}, {"column_names": ["ModifiedDate"]}]
    assert watermark_candidates(mssql_columns, ["OrderID"], mssql_indexes, "mssql") == (
        "ModifiedDate",
        "CreatedDate",
        "OrderID",
    )
    # Oracle: NUMBER(p, 0) identity, DATE (a date and time), names normalised to lower case
    oracle_columns = [
        {"name": "order_id", "type": oracle.NUMBER(10, 0), "identity": {"always": True}},
        {"name": "last_update_date", "type": oracle.DATE()},
        {"name": "amount", "type": oracle.NUMBER(12, 2)},
    ]
    assert watermark_candidates(
        oracle_columns, ["order_id"], [{"column_names": ["last_update_date"]}], "oracle"
    ) == ("last_update_date", "order_id")
    assert watermark_candidates(oracle_columns, [], [], "oracle") == ("order_id",)

    proposals = [
        ("mssql", "Sales", propose("Sales", "SalesOrderHeader", ("OrderID",), 2_500_000,
                                   ("ModifiedDate", "CreatedDate", "OrderID"), 100_000)),
        ("mssql", "Sales", propose("Sales", "Currency", ("CurrencyCode",), 105, (), 100_000)),
        ("oracle", "hr", propose("hr", "orders", ("order_id",), None,
                                 ("last_update_date", "order_id"), 100_000)),
    ]  # fmt: skip
    assert [p.load_type for _, _, p in proposals] == ["INCREMENTAL", "FULL", "INCREMENTAL"]
    config = tmp_path / "offline.csv"
    with config.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["job_id", "enabled", "source_type", "source_name", "schema_name", "table_name",
             "load_type", "watermark_column", "primary_key"]
        )  # fmt: skip
        for index, (kind, schema, p) in enumerate(proposals, start=1):
            writer.writerow(
                [f"{index:03d}", "Y", kind, f"{kind}_src", schema, p.name, p.load_type,
                 p.watermark or "", ",".join(p.primary_key)]
            )  # fmt: skip
    jobs = {j.table_name: j for j in load_config(config).jobs}  # what `validate` checks
    assert jobs["SalesOrderHeader"].watermark_column == "ModifiedDate"
    assert jobs["orders"].primary_key == ("order_id",)


def test_a_table_with_an_unusable_name_is_listed_not_proposed():
    odd = propose(None, "Order Details", (), 10, (), 100_000)
    assert not odd.proposed and "is not a plain SQL name" in odd.note
    assert propose(None, "t", ("weird key",), 10, (), 100_000).proposed is False
