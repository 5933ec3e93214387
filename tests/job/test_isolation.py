"""One bad table fails alone (issue 15, class 1): a native library's panic in one job, a
`BaseException` (`pyo3_runtime.PanicException`), ends as that job's FAILED result; the other
jobs of the run load, the audit has a row for every job, the CLI exits 1 - on the command line
(serial and with a worker pool) and in the function app's `ingest_table` activity.

The panic is the real one, on the real PostgreSQL: ConnectorX (the fast path) panics on a
`timestamp` of year 294276 (PostgreSQL's largest; "value too large to decode"); the fast path
names the column it could not read (issue 24). The issue's own example, a numeric(38,10) value
with 29 significant digits, panics ConnectorX too (shown here), so the SELECT reads such
columns as text and the value lands exactly.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.config import JobConfig
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER, read_lake_table
from tests.fixtures.app import activity, reference
from tests.fixtures.jobs import run_task
from tests.fixtures.sheet import sheet_header

SOURCE = "pg_iso"
PANIC_DDL = "CREATE TABLE far (id int PRIMARY KEY, at timestamp)"
PANIC_ROWS = "INSERT INTO far VALUES (1, '2024-01-01'), (2, '294276-01-01 00:00:00')"
HEADER = (
    sheet_header(
        "job_id", "enabled", "source_type", "source_name", "schema_name", "table_name", "load_type"
    )
    + "\n"
)


def make_source(pg) -> None:
    for table, count in (("first", 40), ("last", 25)):
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
        pg.execute(f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, {count}) g")
    pg.execute(PANIC_DDL)
    pg.execute(PANIC_ROWS)


def write_config(path: Path, pg) -> str:
    rows = [f"{i},Y,postgresql,{SOURCE},{pg.name},{t},FULL" for i, t in enumerate(TABLES, 1)]
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


#: the panicking table sits between two good ones: the job after it must run too
TABLES = ("first", "far", "last")


def audit_rows(lake: str) -> list[dict[str, str]]:
    day = dt.datetime.now(dt.UTC)
    path = Path(lake.removeprefix("file://"), "metadata", f"audit_{day:%Y%m%d}.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_good_tables_landed(pg, lake: str) -> None:
    for table in ("first", "last"):
        landed = read_lake_table(lake, SOURCE, table).sort_by("id")
        ids, names = landed.column("id").to_pylist(), landed.column("name").to_pylist()
        assert list(zip(ids, names, strict=True)) == pg.query(
            f"SELECT id, name FROM {table} ORDER BY id"
        )
    assert read_lake_table(lake, SOURCE, "far") is None  # nothing of the failed table


def assert_panic_reported(rows: list[dict[str, str]]) -> None:
    assert [(r["job_id"], r["table_name"], r["status"]) for r in rows] == [
        ("1", "first", "SUCCESS"),
        ("2", "far", "FAILED"),
        ("3", "last", "SUCCESS"),
    ]
    error = rows[1]["error"]
    assert "column at (postgresql timestamp without time zone) of table far" in error
    assert "before 0001 or after 9999" in error and "value too large to decode" in error


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [1, 2])
def test_a_native_panic_fails_only_its_job_on_the_command_line(
    pg, tmp_path, file_lake, monkeypatch, capsys, workers
):
    make_source(pg)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path / "jobs.csv", pg)
    code = main(["run", "--config", config, "--destination", file_lake, "--workers", str(workers)])
    out = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out.err and "Traceback" not in out.out
    assert "2 succeeded, 1 failed" in out.out
    assert_panic_reported(audit_rows(file_lake))
    assert_good_tables_landed(pg, file_lake)


@pytest.mark.postgres
def test_a_native_panic_fails_only_its_table_in_the_ingest_table_activity(
    pg, tmp_path, file_lake, monkeypatch
):
    make_source(pg)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_CONFIG_PATH", write_config(tmp_path / "jobs.csv", pg))
    monkeypatch.setenv("INGEST_DESTINATION", file_lake)
    planned = activity("plan_run")({"run_id": "run-panic"})
    results = [activity("ingest_table")(reference(planned, 0, i)) for i in range(3)]
    assert [r["status"] for r in results] == ["SUCCESS", "FAILED", "SUCCESS"]
    run = {"run_id": "run-panic", "destination": file_lake, "started_at": planned["started_at"]}
    summary = activity("write_audit")(run)
    assert (summary["jobs_total"], summary["jobs_succeeded"], summary["jobs_failed"]) == (3, 2, 1)
    assert summary["failed_jobs"] == ["2"]
    assert_panic_reported(audit_rows(file_lake))
    assert_good_tables_landed(pg, file_lake)


@pytest.mark.postgres
def test_numeric_38_10_with_29_significant_digits_loads_exactly(pg, file_lake, monkeypatch, caplog):
    """ConnectorX's decimals hold 28 significant digits: it panics on the issue's value, so
    the SELECT reads numeric(29..38, s) columns as text (on the fast path too), parsed into
    decimal(p,s) without losing a digit."""
    import connectorx as cx

    pg.execute("CREATE TABLE wide (id int PRIMARY KEY, v numeric(38, 10))")
    values = ["9999999999999999999.9999999999", "1234567890123456789.0123456789", "1.5", None]
    for index, value in enumerate(values):
        pg.execute("INSERT INTO wide VALUES (%s, %s)", (index, value))
    url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
    with pytest.raises(BaseException) as raised:  # the panic this rule avoids, for real
        list(cx.read_sql(url, f"SELECT v FROM {pg.name}.wide", return_type="arrow_stream"))
    assert type(raised.value).__name__ == "PanicException"
    assert not isinstance(raised.value, Exception)

    pg.use_as(monkeypatch, SOURCE)
    caplog.set_level("INFO")
    job = JobConfig("w", True, "postgresql", SOURCE, "wide", "FULL", schema_name=pg.name)
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]
    assert "uses dlt's pyarrow backend" not in caplog.text
    landed = read_lake_table(file_lake, SOURCE, "wide").sort_by("id")
    assert str(landed.schema.field("v").type) == "decimal128(38, 10)"
    expected = [None if v is None else decimal.Decimal(v) for v in values]
    assert landed.column("v").to_pylist() == expected
    assert pg.query("SELECT v FROM wide ORDER BY id") == [(v,) for v in expected]
