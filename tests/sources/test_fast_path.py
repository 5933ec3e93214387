"""The exact fast path (ConnectorX + cast) against dlt's pyarrow backend, on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import struct

import dlt
import pytest
import sqlalchemy as sa
from dlt.sources.sql_database.helpers import TableLoader

from ingest.config import JobConfig
from ingest.sources.typemap import plan_table
from tests.conftest import PG_DB, PG_HOST, PG_PORT, PG_USER, read_lake_table
from tests.fixtures.jobs import run_task

SOURCE = "pg_fast"

TYPES_DDL = """
CREATE TABLE typed (
    id bigint PRIMARY KEY,
    small smallint,
    regular integer,
    price numeric(12, 2),
    ratio numeric(18, 6),
    real_v real,
    dbl double precision,
    flag boolean,
    label varchar(40),
    body text,
    code char(3),
    at_tz timestamptz,
    at_naive timestamp,
    day date
)"""

TYPES_ROWS = """
INSERT INTO typed
SELECT g, (g % 300)::smallint, g * 7, (g * 1.01)::numeric(12, 2), (g / 7.0)::numeric(18, 6),
       (g / 3.0)::real, g / 9.0, g % 2 = 0, 'label ✓ ' || g, repeat('ü', g % 50), 'abc',
       timestamptz '2024-03-31 01:59:59.123456+00' + (g || ' minutes')::interval,
       timestamp '2024-03-31 01:59:59.654321' + (g || ' minutes')::interval,
       date '2024-01-01' + g
FROM generate_series(1, 3000) g;
INSERT INTO typed (id) VALUES (0);
"""


def landed(destination: str, table: str = "typed"):
    return read_lake_table(destination, SOURCE, table).sort_by("id")


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_every_backend_round_trips_exact_types(pg, file_lake, monkeypatch, backend):
    pg.execute(TYPES_DDL)
    pg.execute(TYPES_ROWS)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    job = JobConfig("t", True, "postgresql", SOURCE, "typed", "FULL", schema_name=pg.name)
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]

    table = landed(file_lake)
    columns = [
        r[0]
        for r in pg.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'typed' ORDER BY ordinal_position",
            (pg.name,),
        )
    ]
    assert [c for c in table.column_names if not c.startswith("_dlt")] == columns
    lake_rows = [tuple(r[c] for c in columns) for r in table.select(columns).to_pylist()]
    source_rows = pg.query(f"SELECT {', '.join(columns)} FROM typed ORDER BY id")
    assert len(lake_rows) == 3001
    for lake_row, source_row in zip(lake_rows, source_rows, strict=True):
        for name, got, want in zip(columns, lake_row, source_row, strict=True):
            if name == "real_v" and want is not None:
                # float4 widened exactly to float8: the real psycopg2's shortest text denotes
                want = struct.unpack("<f", struct.pack("<f", want))[0]
            assert got == want, (name, got, want)
    schema = table.schema
    assert str(schema.field("price").type) == "decimal128(12, 2)"
    assert str(schema.field("ratio").type) == "decimal128(18, 6)"
    assert str(schema.field("at_tz").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("at_naive").type) == "timestamp[us]"
    assert str(schema.field("day").type) == "date32[day]"


def test_both_backends_write_the_same_schema(pg, tmp_path, monkeypatch):
    pg.execute(TYPES_DDL)
    pg.execute(TYPES_ROWS)
    pg.use_as(monkeypatch, SOURCE)
    job = JobConfig("t", True, "postgresql", SOURCE, "typed", "FULL", schema_name=pg.name)
    schemas = {}
    for backend in ("auto", "pyarrow"):
        monkeypatch.setenv("INGEST_BACKEND", backend)
        lake = (tmp_path / backend).as_uri()
        (tmp_path / backend).mkdir()
        assert run_task({"run_id": "r", "job": job.to_dict(), "destination": lake})["status"] == (
            "SUCCESS"
        )
        schemas[backend] = landed(lake).schema
    for field in schemas["pyarrow"]:
        assert schemas["auto"].field(field.name).type == field.type, field.name
    assert schemas["auto"].names == schemas["pyarrow"].names


def test_types_connectorx_cannot_read_are_cast_to_text_on_the_fast_path(
    pg, file_lake, monkeypatch, caplog
):
    """Unbounded numeric, arrays and json are read as PostgreSQL's text by the SELECT, so
    ConnectorX reads the table (no fallback) and every digit and key lands as it was."""
    pg.execute("CREATE TABLE odd (id int PRIMARY KEY, big numeric, tags text[], doc jsonb)")
    pg.execute(
        "INSERT INTO odd VALUES (1, 12345678901234567890.123456789, "
        "'{a,b}', '{\"k\": 1, \"n\": 1.000000000000000000001}'), (2, NULL, NULL, NULL)"
    )
    pg.use_as(monkeypatch, SOURCE)
    caplog.set_level("INFO")
    job = JobConfig("o", True, "postgresql", SOURCE, "odd", "FULL", schema_name=pg.name)
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]
    assert "uses dlt's pyarrow backend" not in caplog.text
    table = read_lake_table(file_lake, SOURCE, "odd").sort_by("id")
    assert table.column("big").to_pylist() == ["12345678901234567890.123456789", None]
    assert table.column("tags").to_pylist() == ["{a,b}", None]  # PostgreSQL's array text
    assert table.column("doc").to_pylist() == ['{"k": 1, "n": 1.000000000000000000001}', None]


def test_unbounded_numeric_keeps_every_digit(pg, file_lake, monkeypatch):
    """Unbounded numeric used to land as decimal(38, 9) and fail on more decimals (or on
    1e30); it lands as PostgreSQL's text of the value, NaN included."""
    pg.execute("CREATE TABLE tiny (id int PRIMARY KEY, v numeric)")
    pg.execute(
        "INSERT INTO tiny VALUES (1, 0.1234567890123), (2, 1e30), (3, 'NaN'), "
        "(4, -0.000000000000000000000000000000000000000001)"
    )
    pg.use_as(monkeypatch, SOURCE)
    job = JobConfig("t", True, "postgresql", SOURCE, "tiny", "FULL", schema_name=pg.name)
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]
    landed = read_lake_table(file_lake, SOURCE, "tiny").sort_by("id")
    assert landed.column("v").to_pylist() == [
        r[0] for r in pg.query("SELECT v::text FROM tiny ORDER BY id")
    ]
    assert landed.column("v").to_pylist()[1] == "1" + "0" * 30


def test_every_postgres_type_is_read_by_the_fast_path():
    """The plan casts what ConnectorX cannot read exactly: no PostgreSQL table falls back."""
    from sqlalchemy.dialects import postgresql as pg_types

    columns = [
        {"name": "a", "type": sa.BigInteger()},
        {"name": "b", "type": sa.Numeric(40, 2)},
        {"name": "n", "type": sa.Numeric(29, 2)},
        {"name": "e", "type": pg_types.ENUM("x", "y", name="mood")},
        {"name": "j", "type": pg_types.JSONB()},
        {"name": "u", "type": pg_types.UUID()},
        {"name": "i", "type": pg_types.INTERVAL()},
        {"name": "t", "type": pg_types.TIME()},
    ]
    plan = plan_table("postgresql", "j1", "t", columns)
    assert plan.fast_path_blocker() is None
    kinds = {c.name: (c.lake.data_type, c.as_text) for c in plan.columns}
    assert kinds["b"] == ("text", True)  # more than 38 digits: the source's text
    assert kinds["n"] == ("decimal", False)  # read as text, parsed exactly into decimal(29,2)
    assert kinds["t"] == ("time", False)


def test_watermark_predicate_reaches_postgres_and_uses_the_index(pg):
    """The incremental query dlt sends filters on the watermark in SQL; PostgreSQL answers it
    from the watermark's index instead of scanning the table."""
    pg.execute("CREATE TABLE ev (id bigint PRIMARY KEY, payload text, updated_at timestamptz)")
    pg.execute(
        "INSERT INTO ev SELECT g, md5(g::text), "
        "timestamptz '2024-01-01' + (g || ' seconds')::interval FROM generate_series(1, 200000) g"
    )
    pg.execute("CREATE INDEX ev_updated_at ON ev (updated_at)")
    pg.execute("ANALYZE ev")
    engine = sa.create_engine(
        sa.URL.create("postgresql+psycopg2", PG_USER, None, PG_HOST, PG_PORT, PG_DB)
    )
    table = sa.Table("ev", sa.MetaData(), autoload_with=engine, schema=pg.name)
    last = dt.datetime(2024, 1, 3, 7, 0, tzinfo=dt.UTC)  # ~1% of the rows are newer
    incremental = dlt.sources.incremental(
        "updated_at", initial_value=last, on_cursor_value_missing="exclude"
    )
    incremental._cached_state = {"last_value": last}
    loader = TableLoader(engine, "pyarrow", table, {}, incremental=incremental)
    sql = loader.compile_query(loader.make_query())
    assert "updated_at >= '2024-01-03 07:00:00+00:00'" in sql
    plan = "\n".join(row[0] for row in pg.query("EXPLAIN " + sql))
    assert "ev_updated_at" in plan, plan
    assert "Seq Scan" not in plan, plan
    engine.dispose()
