"""PostgreSQL: every type lands exactly, on both read paths, and the DuckDB view returns what
the Parquet holds (issue 24, class 1).

A property test generates rows of a table with a column of each type (edge values included:
integer bounds, -0.0, NaN, infinities, subnormals, decimals at full precision, dates 0001-01-01
and 9999-12-31, microseconds, time zone offsets, astral and combining characters, empty text
and bytes with NUL, JSON with nested and empty objects, duplicate keys, big numbers and
whitespace), inserts them into a real PostgreSQL table, runs the job through the fast path
(ConnectorX) and through dlt's pyarrow backend (INGEST_BACKEND=pyarrow), and compares value
for value, floats bit for bit: the source, each path's Parquet, and the view `query` reads.
Values no lake type holds are refused naming the column, on both paths.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.config import JobConfig
from tests.fixtures.values import decimals, json_texts
from tests.sources.exactness import (
    assert_same_rows,
    data_schema,
    fail,
    float32,
    land,
    parquet,
    same,
    view,
)

SOURCE = "pg_types"
BACKENDS = ("auto", "pyarrow")
TABLES = itertools.count()


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    values: st.SearchStrategy[Any]
    #: the Arrow type that lands
    arrow: str
    #: how the truth is read from the source (psycopg2, TimeZone UTC): the column's value, or
    #: its text when the column lands as PostgreSQL's text
    as_text: bool = False


def unbounded_numerics() -> st.SearchStrategy[Decimal]:
    return st.one_of(
        st.sampled_from(
            [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("1e30")]
        ),
        st.builds(
            lambda digits, exponent: Decimal(f"{digits}E{exponent}"),
            st.integers(-(10**60), 10**60),
            st.integers(-80, 80),
        ),
    )


def offsets() -> st.SearchStrategy[dt.timezone]:
    return st.integers(-15 * 60, 15 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)

COLUMNS = [
    Col("i2", "smallint", st.integers(-(2**15), 2**15 - 1), "int32"),
    Col("i4", "integer", st.integers(-(2**31), 2**31 - 1), "int64"),
    Col("i8", "bigint", st.integers(-(2**63), 2**63 - 1), "int64"),
    Col("f4", "real", st.floats(width=32), "double"),
    Col("f8", "double precision", st.floats(), "double"),
    Col("n12", "numeric(12,2)", decimals(12, 2), "decimal128(12, 2)"),
    Col("n28", "numeric(28,10)", decimals(28, 10), "decimal128(28, 10)"),
    Col("n38", "numeric(38,10)", decimals(38, 10), "decimal128(38, 10)"),
    Col("n50", "numeric(50,10)", decimals(50, 10), "string", as_text=True),
    Col("n", "numeric", unbounded_numerics(), "string", as_text=True),
    Col("money", "money", decimals(15, 2), "string", as_text=True),
    Col("flag", "boolean", st.booleans(), "bool"),
    Col("day", "date", st.dates(), "date32[day]"),
    Col("ts", "timestamp", st.datetimes(), "timestamp[us]"),
    Col(
        "tstz",
        "timestamptz",
        st.datetimes(
            min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=offsets()
        ),
        "timestamp[us, tz=UTC]",
    ),
    Col("clock", "time", st.times(), "time64[us]"),
    Col(
        "clock_tz",
        "timetz",
        st.tuples(st.times(), st.sampled_from(["+00", "+05", "-03:30", "+14"])).map(
            lambda t: t[0].isoformat() + t[1]
        ),
        "string",
        as_text=True,
    ),
    Col(
        "span",
        "interval",
        st.timedeltas(min_value=-dt.timedelta(days=10**5), max_value=dt.timedelta(days=10**5)),
        "string",
        as_text=True,
    ),
    Col("label", "text", TEXT, "string"),
    Col("code", "char(3)", st.text(alphabet="ab é🍮", max_size=3), "string"),
    Col(
        "name",
        "varchar(10)",
        st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10),
        "string",
    ),
    Col("blob", "bytea", st.binary(max_size=16), "binary"),
    Col("uid", "uuid", st.uuids(), "string", as_text=True),
    Col("doc", "json", json_texts(), "string", as_text=True),
    Col("docb", "jsonb", json_texts(), "string", as_text=True),
    Col(
        "ints",
        "integer[]",
        st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4),
        "string",
        as_text=True,
    ),
    Col("addr", "inet", st.ip_addresses().map(str), "string", as_text=True),
]

ROW = st.fixed_dictionaries({c.name: st.none() | c.values for c in COLUMNS})

EDGE_ROWS = [
    {
        "i2": -(2**15),
        "i4": -(2**31),
        "i8": -(2**63),
        "f4": -0.0,
        "f8": 5e-324,
        "n12": Decimal("-9999999999.99"),
        "n28": Decimal("-99999999999999999.9999999999"),
        "n38": Decimal("9999999999999999999999999999.9999999999"),
        "n50": Decimal("9999999999999999999999999999999999999999.9999999999"),
        "n": Decimal("NaN"),
        "money": Decimal("-92233720368547758.08"),
        "flag": False,
        "day": dt.date(1, 1, 1),
        "ts": dt.datetime(1, 1, 1),
        "tstz": dt.datetime(1, 1, 2, tzinfo=dt.UTC),
        "clock": dt.time(0, 0),
        "clock_tz": "00:00:00+05",
        "span": dt.timedelta(0),
        "label": "",
        "code": "",
        "name": "",
        "blob": b"",
        "uid": None,
        "doc": "{}",
        "docb": "{}",
        "ints": [],
        "addr": "::1",
    },
    {
        "i2": 2**15 - 1,
        "i4": 2**31 - 1,
        "i8": 2**63 - 1,
        "f4": float("nan"),
        "f8": 1.7976931348623157e308,
        "n12": Decimal("9999999999.99"),
        "n28": Decimal("99999999999999999.9999999999"),
        "n38": Decimal("-9999999999999999999999999999.9999999999"),
        "n50": Decimal("1.5"),
        "n": Decimal("1e30"),
        "money": Decimal("92233720368547758.07"),
        "flag": True,
        "day": dt.date(9999, 12, 31),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(
            9999, 12, 30, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-5))
        ),
        "clock": dt.time(23, 59, 59, 999999),
        "clock_tz": "23:59:59.999999-03:30",
        "span": dt.timedelta(days=-3, microseconds=1),
        "label": "e\u0301 𝄞 🍮 \u200b",
        "code": "é🍮 ",
        "name": " trailing ",
        "blob": b"\x00\xff\x00",
        "uid": uuid.UUID(int=0),
        "doc": ' {"a": 1, "a": 2,\n "n": 1.000000000000000000001, "e": {}} ',
        "docb": '{"a": 1, "a": 2, "n": 123456789012345678901234567890, "z": [null, {}]}',
        "ints": [None, 1],
        "addr": "10.0.0.1/8",
    },
    {
        "i2": None,
        "i4": 0,
        "i8": -1,
        "f4": float("inf"),
        "f8": float("-inf"),
        "n12": None,
        "n28": None,
        "n38": None,
        "n50": None,
        "n": Decimal("-Infinity"),
        "money": None,
        "flag": None,
        "day": None,
        "ts": dt.datetime(2024, 3, 31, 1, 59, 59, 123456),
        "tstz": None,
        "clock": None,
        "clock_tz": None,
        "span": None,
        "label": None,
        "code": None,
        "name": None,
        "blob": None,
        "uid": None,
        "doc": "null",
        "docb": "null",
        "ints": None,
        "addr": None,
    },
    {  # more floats: subnormal, max/min float32, float64 neighbours of 0.1 + 0.2
        **{c.name: None for c in COLUMNS},
        "f4": 1.401298464324817e-45,
        "f8": 0.30000000000000004,
        "doc": "[]",
        "docb": "[]",
    },
    {**{c.name: None for c in COLUMNS}, "f4": 3.4028234663852886e38, "f8": -0.0, "doc": "1e400"},
]


def create_table(pg, name: str, rows: list[dict[str, Any]]) -> None:
    ddl = ", ".join(f"{c.name} {c.ddl}" for c in COLUMNS)
    pg.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, {ddl})")
    names = ", ".join(c.name for c in COLUMNS)
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    for index, row in enumerate(rows):
        values = [_param(row[c.name]) for c in COLUMNS]
        pg.execute(f"INSERT INTO {name} (id, {names}) VALUES ({marks})", [index, *values])


def _param(value: Any) -> Any:
    """Floats as quoted text (psycopg2 sends -0.0 as an unquoted literal: numeric zero), UUIDs
    as text; the rest as psycopg2 adapts it."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def source_truth(pg, name: str) -> list[dict[str, Any]]:
    """The source's values as the lake must hold them, read without our code: psycopg2's value
    of the column in a UTC session, or PostgreSQL's text of it."""
    pg.execute("SET TIME ZONE 'UTC'")
    select = ", ".join(f"{c.name}::text" if c.as_text else c.name for c in COLUMNS)
    rows = []
    for record in pg.query(f"SELECT id, {select} FROM {name} ORDER BY id"):
        row: dict[str, Any] = {"id": record[0]}
        for column, value in zip(COLUMNS, record[1:], strict=True):
            if column.name == "f4" and value is not None:
                value = float32(value)  # the real its shortest text denotes
            if isinstance(value, memoryview):
                value = bytes(value)
            row[column.name] = value
        rows.append(row)
    return rows


def check_generated(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """What landed is what was inserted, where the inserted value says it directly."""
    for row, landed in zip(rows, truth, strict=True):
        for name in ("i2", "i4", "i8", "flag", "day", "ts", "clock", "label", "blob"):
            assert same(row[name], landed[name]), (name, row[name], landed[name])
        for name in ("f4", "f8"):
            assert same(row[name], landed[name]), (name, row[name], landed[name])
        if row["tstz"] is not None:
            assert landed["tstz"] == row["tstz"]
        for name in ("n12", "n28", "n38"):
            if row[name] is not None:
                assert landed[name] == row[name]
        if row["doc"] is not None:
            assert landed["doc"] == row["doc"]  # json keeps its input text, byte for byte
        if row["docb"] is not None:
            exact = {"parse_float": Decimal, "parse_int": Decimal}
            assert json.loads(landed["docb"], **exact) == json.loads(row["docb"], **exact)
        if row["n"] is not None and row["n"].is_finite():
            assert Decimal(landed["n"]) == row["n"]


@pytest.mark.postgres
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ROW, min_size=1, max_size=4))
@example(rows=EDGE_ROWS)
def test_every_postgres_type_lands_exactly_on_both_paths(pg, tmp_path, monkeypatch, rows):
    name = f"types_{next(TABLES)}"
    create_table(pg, name, rows)
    truth = source_truth(pg, name)
    check_generated(rows, truth)
    pg.use_as(monkeypatch, SOURCE)
    job = JobConfig(name, True, "postgresql", SOURCE, name, "FULL", schema_name=pg.name)
    schemas = {}
    for backend in BACKENDS:
        monkeypatch.setenv("INGEST_BACKEND", backend)
        folder = tmp_path / f"{name}_{backend}"
        folder.mkdir()
        lake = folder.as_uri()
        land(job, lake)
        landed = parquet(lake, job)
        schemas[backend] = data_schema(landed)
        assert schemas[backend] == [("id", "int64")] + [(c.name, c.arrow) for c in COLUMNS]
        landed_rows = landed.to_pylist()
        assert_same_rows(truth, landed_rows, f"{backend}: source vs Parquet")
        viewed = view(lake, job, ["id", *[c.name for c in COLUMNS]])
        assert_same_rows(landed_rows, viewed, f"{backend}: Parquet vs view")
    assert schemas["auto"] == schemas["pyarrow"]


# ------------------------------------------------------------------------------------------
# refusals: a value no lake type holds fails the job, naming the column, on both paths

REFUSED = [
    ("timestamp", "'infinity'", "holds 'infinity'"),
    ("timestamp", "'-infinity'", "holds '-infinity'"),
    ("timestamptz", "'infinity'", "holds 'infinity'"),
    ("date", "'-infinity'", "holds '-infinity'"),
    ("date", "'0044-03-15 BC'", "before 0001 or after 9999"),
    ("date", "'5874897-12-31'", "before 0001 or after 9999"),
    ("timestamp", "'294276-12-31 23:59:59'", "before 0001 or after 9999"),
    ("timestamptz", "'9999-12-31 23:30:00-05'", "after 9999"),
    ("time", "'24:00:00'", "holds '24:00:00'"),
    ("numeric(12,2)", "'NaN'", "holds 'NaN'"),
    ("numeric(30,5)", "'NaN'", "holds 'NaN'"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", BACKENDS)
def test_values_no_lake_type_holds_are_refused_naming_the_column(
    pg, tmp_path, monkeypatch, backend
):
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_BACKEND", backend)
    for index, (ddl, literal, reason) in enumerate(REFUSED):
        table = f"refused_{index}"
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, odd_value {ddl})")
        pg.execute(f"INSERT INTO {table} VALUES (2, {literal}), (3, NULL)")
        job = JobConfig(f"j{index}", True, "postgresql", SOURCE, table, "FULL", schema_name=pg.name)
        lake = tmp_path / f"{table}_{backend}"
        lake.mkdir()
        error = fail(job, lake.as_uri())
        assert "column odd_value (postgresql " in error, error
        assert f"of table {table}" in error and reason in error, (ddl, literal, error)
        assert "nothing was loaded" in error


@pytest.mark.postgres
def test_a_text_landing_watermark_is_refused_before_reading(pg, file_lake, monkeypatch):
    """Text does not sort like the source's type: an unbounded numeric (text in the lake)
    cannot be a watermark; the job says so before reading a row."""
    pg.execute("CREATE TABLE wm (id int PRIMARY KEY, seq numeric)")
    pg.execute("INSERT INTO wm VALUES (1, 9), (2, 10)")
    pg.use_as(monkeypatch, SOURCE)
    job = JobConfig(
        "wm",
        True,
        "postgresql",
        SOURCE,
        "wm",
        "INCREMENTAL",
        watermark_column="seq",
        schema_name=pg.name,
    )
    error = fail(job, file_lake)
    assert "watermark column seq (postgresql numeric) lands as text" in error
