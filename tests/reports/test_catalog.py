"""Generated catalog and data dictionary: from a config and a lake built
here (real PostgreSQL loads), every configured job is listed with its last run, and the
column types in the dictionary match the Parquet files in the lake."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook, load_workbook

from ingest.cli import main
from ingest.reports.catalog import CATALOG_COLUMNS, CATALOG_FILE, DICTIONARY_FILE
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders
from tests.fixtures.sheet import TABLE_JOB, sheet_header

HEADER = [
    "job_id",
    "enabled",
    "source_type",
    "source_name",
    "schema_name",
    "table_name",
    "load_type",
    "watermark_column",
    "primary_key",
    "schedule",
    "owner",
    "notes",
]

#: dlt data type -> what its Parquet (Arrow) type must look like
DLT_TO_ARROW = {
    "bigint": lambda t: pa.types.is_integer(t),
    "text": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "decimal": lambda t: pa.types.is_decimal(t),
    "timestamp": lambda t: pa.types.is_timestamp(t),
    "bool": lambda t: pa.types.is_boolean(t),
    "double": lambda t: pa.types.is_floating(t),
    "date": lambda t: pa.types.is_date(t),
}


def build(pg, tmp_path: Path) -> str:
    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 250)
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, vip boolean, born date)")
    pg.execute(
        "INSERT INTO customers SELECT g, 'c' || g, g % 2 = 0, date '2000-01-01' + g "
        "FROM generate_series(1, 30) g"
    )
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "jobs"
    sheet.append(HEADER)
    rows = [
        ["001", "Y", "postgresql", SOURCE, pg.name, "orders", "INCREMENTAL", "updated_at",
         "order_id", "DAILY", "sales-data@example.com", "orders of the shop"],
        ["002", "Y", "postgresql", SOURCE, pg.name, "customers", "FULL", None, "id",
         "WEEKLY:MON", "crm-team", None],
        ["003", "N", "postgresql", SOURCE, pg.name, "returns", "FULL", None, None,
         "DAILY", "nobody", None],
    ]  # fmt: skip
    for row in rows:
        sheet.append(row)
    path = tmp_path / "ingestion_config.xlsx"
    workbook.save(path)
    return str(path)


def dictionary_sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.splitlines()[0].strip(): part for part in parts}


def column_rows(section: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("column", "---"):
            out[cells[0]] = (cells[1], cells[2])
    return out


def test_catalog_lists_every_job_with_its_last_run_and_true_lake_types(
    pg, tmp_path, file_lake, monkeypatch
):
    pg.use_as(monkeypatch, SOURCE)
    config = build(pg, tmp_path)
    base = ["--config", config, "--destination", file_lake]
    assert main(["run", *base]) == 0
    insert_orders(pg, 251, 260, updated_at="2024-06-01T00:00:00+00")
    assert main(["run", *base, "--job", "001"]) == 0

    out = tmp_path / "catalog"
    assert main(["catalog", *base, "--out", str(out)]) == 0

    # --- the workbook: every configured job, its last run
    sheet = load_workbook(out / CATALOG_FILE).active
    values = list(sheet.values)
    assert list(values[0]) == list(CATALOG_COLUMNS)
    by_id = {row[0]: dict(zip(CATALOG_COLUMNS, row, strict=True)) for row in values[1:]}
    assert set(by_id) == {"001", "002", "003"}
    assert by_id["001"]["Last Run Status"] == "SUCCESS"
    assert by_id["001"]["Last Run Rows"] == 10  # the second run of 001
    assert by_id["002"]["Last Run Status"] == "SUCCESS" and by_id["002"]["Last Run Rows"] == 30
    assert by_id["003"]["Last Run Status"] == "never run" and by_id["003"]["Status"] == "DISABLED"
    assert by_id["002"]["Schedule"] == "WEEKLY:MON" and by_id["001"]["Owner"].startswith("sales")
    assert by_id["001"]["Table Name"] == f"{pg.name}.orders"
    assert (
        by_id["001"]["Load Type"] == "INCREMENTAL" and by_id["001"]["Source Type"] == "postgresql"
    )

    # --- the dictionary: per table, types match the Parquet files
    text = (out / DICTIONARY_FILE).read_text(encoding="utf-8")
    sections = dictionary_sections(text)
    assert set(sections) == {f"{SOURCE}.orders", f"{SOURCE}.customers", f"{SOURCE}.returns"}
    orders = sections[f"{SOURCE}.orders"]
    assert f"`{SOURCE}/orders/{{YYYY}}/{{MM}}/{{DD}}/{{load_id}}.{{file_id}}.parquet`" in orders
    assert "INCREMENTAL on `updated_at`" in orders and "sales-data@example.com" in orders
    assert "Typical rows per day: 260" in orders  # both runs are today: 250 + 10
    assert "No schema in the lake yet" in sections[f"{SOURCE}.returns"]
    lake_root = Path(file_lake.removeprefix("file://")) / SOURCE
    for table in ("orders", "customers"):
        columns = column_rows(sections[f"{SOURCE}.{table}"])
        for parquet_file in (lake_root / table).rglob("*.parquet"):
            schema = pq.read_schema(parquet_file)
            data_fields = [f for f in schema if not f.name.startswith("_dlt")]
            assert {f.name for f in data_fields} <= set(columns), table
            for field in data_fields:
                dlt_type, arrow_type = columns[field.name]
                assert arrow_type == str(field.type), (table, field.name)
                assert DLT_TO_ARROW[dlt_type.split("(")[0].split(" ")[0]](field.type), (
                    table,
                    field.name,
                    dlt_type,
                    field.type,
                )
    customers = column_rows(sections[f"{SOURCE}.customers"])
    assert customers["vip"][0] == "bool" and customers["born"][0] == "date"
    assert column_rows(orders)["amount"][0] == "decimal(12,2)"


def test_dictionary_key_in_use_rows_per_day_and_the_command_as_run(pg, tmp_path):
    """A job without a configured key shows the table's own key (as dlt stored it); a FULL
    table loaded twice in a day shows its size, not the sum of both snapshots; the header
    names the command as the user ran it."""
    import subprocess
    import sys

    from tests.cli import clean_env, dlt_ingest

    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 505) g")
    pg.execute("CREATE TABLE visits (seen_at timestamptz NOT NULL, who text)")
    pg.execute(
        "INSERT INTO visits SELECT timestamptz '2024-01-01 00:00+00' + (g || ' s')::interval, "
        "'v' || g FROM generate_series(1, 35) g"
    )
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + "\n"
        f"c1,Y,postgresql,{SOURCE},{pg.name},customers,FULL,,\n"
        f"v1,Y,postgresql,{SOURCE},{pg.name},visits,INCREMENTAL,seen_at,\n",
        encoding="utf-8",
    )
    env = clean_env(
        tmp_path,
        **{f"SOURCES__{SOURCE.upper()}__CREDENTIALS": "postgresql://postgres@127.0.0.1/test"},
    )
    lake = (tmp_path / "lake").as_uri()
    base = ["--config", str(config), "--destination", lake]
    for run_id in ("night-1", "night-2"):  # two snapshots of customers on one day
        proc = dlt_ingest("run", *base, "--run-id", run_id, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    pg.execute(
        "INSERT INTO visits SELECT timestamptz '2024-02-01 00:00+00' + (g || ' s')::interval, "
        "'w' || g FROM generate_series(1, 5) g"
    )
    proc = dlt_ingest("run", *base, "--run-id", "night-3", "--job", "v1", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    out = tmp_path / "catalog"
    proc = dlt_ingest("catalog", *base, "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    sections = dictionary_sections((out / DICTIONARY_FILE).read_text(encoding="utf-8"))
    customers = sections[f"{SOURCE}.customers"]
    assert "- Primary key: id (the table's primary key)" in customers
    # two snapshot loads today: the table's 505 rows, not 1,010
    assert "- Typical rows per day: 505 (median over days of the rows of that day's latest" in (
        customers
    )
    visits = sections[f"{SOURCE}.visits"]
    assert "- Primary key: - (none configured, the table has none" in visits
    # loads of the day: 35 (night-1) + 0 (night-2) + 5 (night-3)
    assert "- Typical rows per day: 40 (median over days of the rows that day's loads" in visits
    header = (out / DICTIONARY_FILE).read_text(encoding="utf-8").splitlines()[2]
    assert "by `dlt-ingest catalog`" in header

    as_module = subprocess.run(
        [sys.executable, "-m", "ingest", "catalog", *base, "--out", str(tmp_path / "m")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert as_module.returncode == 0, as_module.stderr
    text = (tmp_path / "m" / DICTIONARY_FILE).read_text(encoding="utf-8")
    assert "by `python -m ingest catalog`" in text.splitlines()[2]


def test_rows_per_day_takes_the_days_latest_snapshot_and_each_load_once():
    from ingest.reports.catalog import typical_rows_per_day

    def row(job, day, load_type, load_id, rows, finished, status="SUCCESS"):
        return {
            "job_id": job, "_day": day, "load_type": load_type, "load_id": load_id,
            "rows_loaded": str(rows), "finished_at": finished, "status": status,
        }  # fmt: skip

    audit = [
        row("f", "20260101", "FULL", "1.1", 500, "2026-01-01T01:00"),
        row("f", "20260101", "FULL", "1.2", 505, "2026-01-01T02:00"),  # the day's latest
        row("f", "20260102", "FULL", "2.1", 510, "2026-01-02T01:00"),
        row("f", "20260103", "FULL", "3.1", 9999, "2026-01-03T01:00", status="FAILED"),
        row("i", "20260101", "INCREMENTAL", "1.1", 30, "2026-01-01T01:00"),
        row("i", "20260101", "INCREMENTAL", "1.1", 30, "2026-01-01T01:05"),  # reported again
        row("i", "20260101", "INCREMENTAL", "1.2", 10, "2026-01-01T02:00"),
    ]
    assert typical_rows_per_day(audit) == {"f": 507, "i": 40}  # median(505, 510) = 507.5
