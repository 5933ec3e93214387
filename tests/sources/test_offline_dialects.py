"""SQL Server and Oracle without a server (none can run here): connection building, the
incremental SQL dlt will send, identifier quoting and type mapping. Checked offline only."""

from __future__ import annotations

import datetime as dt

import dlt
import pytest
import sqlalchemy as sa
from dlt.sources.sql_database.helpers import TableLoader, default_engine_adapter_callback
from dlt.sources.sql_database.schema_types import sqla_col_to_column_schema
from sqlalchemy.dialects import mssql, oracle

from ingest.config import JobConfig
from ingest.errors import JobError
from ingest.secrets.resolver import Secret
from ingest.sources import get_builder, known_source_types
from ingest.sources.sql import coerce_watermark

PASSWORD = "p@ss;word/with:odd=chars"


def secrets(**values: str) -> dict[str, Secret]:
    return {key: Secret(value) for key, value in values.items()}


def compiled_incremental_query(engine: sa.Engine, table: sa.Table, start) -> str:
    incremental = dlt.sources.incremental(
        "updated_at", initial_value=start, on_cursor_value_missing="exclude", range_end="open"
    )
    incremental._cached_state = {"last_value": start}  # what dlt restores from the lake
    loader = TableLoader(engine, "pyarrow", table, {}, incremental=incremental)
    return loader.compile_query(loader.make_query())


def test_mssql_url_engine_and_incremental_sql():
    builder = get_builder("mssql")
    url = builder.url(
        secrets(
            host="sql.example.com",
            database="erp",
            username="etl",
            password=PASSWORD,
            driver="FreeTDS",
        )
    )
    assert url.render_as_string(hide_password=True) == (
        "mssql+pyodbc://etl:***@sql.example.com:1433/erp?Encrypt=yes&driver=FreeTDS"
    )
    assert url.password == PASSWORD  # passed as a value, never pasted into a string
    assert PASSWORD not in str(url)
    engine = sa.create_engine(url)  # builds the dialect, does not connect
    table = sa.Table(
        "order",  # a reserved word: must be quoted
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("updated_at", mssql.DATETIME2),
        schema="sales",
    )
    sql = compiled_incremental_query(engine, table, dt.datetime(2024, 1, 31, 12, 0))
    assert "FROM sales.[order]" in sql
    assert "WHERE sales.[order].updated_at >= '2024-01-31 12:00:00'" in sql
    assert "updated_at IS NOT NULL" in sql


def test_mssql_default_driver_is_msodbc18():
    url = get_builder("mssql").url(secrets(host="h", database="d", username="u"))
    assert url.query["driver"] == "ODBC Driver 18 for SQL Server"


def test_oracle_service_name_sid_and_incremental_sql():
    builder = get_builder("oracle")
    by_service = builder.url(
        secrets(host="ora.example.com", username="hr", password=PASSWORD, service_name="ORCLPDB1")
    )
    assert by_service.render_as_string(hide_password=True) == (
        "oracle+oracledb://hr:***@ora.example.com:1521?service_name=ORCLPDB1"
    )
    by_sid = builder.url(secrets(host="ora", username="hr", sid="ORCL", port="1599"))
    assert by_sid.render_as_string(hide_password=True) == "oracle+oracledb://hr@ora:1599/ORCL"
    with pytest.raises(JobError, match="service_name' or 'sid'"):
        builder.url(secrets(host="ora", username="hr"))

    engine = sa.create_engine(by_service)
    table = sa.Table(
        "EMPLOYEES",
        sa.MetaData(),
        sa.Column("ID", oracle.NUMBER(10, 0)),
        sa.Column("updated_at", oracle.DATE),
        schema="HR",
    )
    sql = compiled_incremental_query(engine, table, dt.datetime(2024, 1, 31))
    assert 'FROM "HR"."EMPLOYEES"' in sql
    assert "updated_at >= TO_DATE('2024-01-31 00:00:00', 'YYYY-MM-DD HH24:MI:SS')" in sql


def test_oracle_number_keeps_decimal_precision_through_dlts_listener():
    engine = sa.create_engine("oracle+oracledb://u@h:1521/?service_name=s")
    metadata = sa.MetaData()
    default_engine_adapter_callback(engine, metadata)  # what sql_table applies on reflection
    info = {"name": "AMOUNT", "type": oracle.NUMBER(12, 2)}
    metadata.dispatch.column_reflect(None, None, info)
    column = sa.Column("AMOUNT", info["type"])
    schema = sqla_col_to_column_schema(column, "full_with_precision")
    assert schema["data_type"] == "decimal"
    assert (schema["precision"], schema["scale"]) == (12, 2)


def test_type_mapping_of_common_server_types():
    cases = {
        mssql.DATETIMEOFFSET(): ("timestamp", True),
        mssql.DATETIME2(): ("timestamp", False),
        mssql.NVARCHAR(50): ("text", None),
        sa.Numeric(18, 4): ("decimal", None),
        oracle.VARCHAR2(30): ("text", None),
        oracle.DATE(): ("timestamp", False),
        sa.BigInteger(): ("bigint", None),
    }
    for sql_type, (expected, timezone) in cases.items():
        schema = sqla_col_to_column_schema(sa.Column("c", sql_type), "full_with_precision")
        assert schema["data_type"] == expected, sql_type
        assert schema.get("timezone") == timezone, sql_type
    # SQL Server MONEY is not reflected by dlt: its lake type comes from the data (decimal)
    money = sqla_col_to_column_schema(sa.Column("c", mssql.MONEY()), "full_with_precision")
    assert "data_type" not in money


def test_watermark_coercion_follows_the_column_type():
    job = JobConfig("j", True, "mssql", "s", "t", "INCREMENTAL", watermark_column="w")
    aware = coerce_watermark("2024-01-31", sa.DateTime(timezone=True), job)
    assert aware == dt.datetime(2024, 1, 31, tzinfo=dt.UTC)
    naive = coerce_watermark("2024-01-31T05:00:00+02:00", sa.DateTime(), job)
    assert naive == dt.datetime(2024, 1, 31, 3, 0)
    assert coerce_watermark("42", sa.BigInteger(), job) == 42
    assert coerce_watermark("2024-01-31", sa.Date(), job) == dt.date(2024, 1, 31)
    with pytest.raises(JobError, match="does not fit column w"):
        coerce_watermark("yesterday", sa.DateTime(), job)


def test_registry_names_known_types_for_an_unknown_one():
    with pytest.raises(JobError) as caught:
        get_builder("db2")
    for known in ("postgresql", "mysql", "mssql", "oracle", "sqlite", "rest_api"):
        assert known in str(caught.value)
    assert set(known_source_types()) >= {"postgresql", "mssql", "oracle"}
