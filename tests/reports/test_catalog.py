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
from tests.test_job import ORDERS_DDL, SOURCE, insert_orders

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
