"""SQLite: every declared type lands exactly and the DuckDB view returns what the Parquet holds
(issue 24, class 1). SQLite types values, not columns: a value of another storage class than
its column's declared type is refused naming the column, never converted."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.config import JobConfig
from tests.conftest import set_source_env
from tests.fixtures.values import json_texts
from tests.sources.exactness import assert_same_rows, data_schema, fail, land, parquet, view

SOURCE = "lite_types"
TABLES = itertools.count()


def _number(text: str) -> bool:
    return isinstance(json.loads(text), int | float)


#: name, declared type, values to insert, the Arrow type that lands
COLUMNS: list[tuple[str, str, st.SearchStrategy[Any], str]] = [
    ("i", "INTEGER", st.integers(-(2**63), 2**63 - 1), "int64"),
    ("r", "REAL", st.floats(allow_nan=False).map(lambda x: x + 0.0), "double"),
    ("t", "TEXT", st.text(), "string"),
    ("vc", "VARCHAR(10)", st.text(max_size=10), "string"),
    ("b", "BLOB", st.binary(max_size=16), "binary"),
    (
        "price",
        "NUMERIC(10, 2)",
        st.decimals(min_value=-99999999, max_value=99999999, places=2),
        "decimal128(10, 2)",
    ),
    (
        "amount",
        "NUMERIC",
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
        "double",
    ),
    ("flag", "BOOLEAN", st.booleans(), "bool"),
    ("day", "DATE", st.dates(), "date32[day]"),
    ("at", "DATETIME", st.datetimes(), "timestamp[us]"),
    ("stamp", "TIMESTAMP", st.datetimes(), "timestamp[us]"),
    ("clock", "TIME", st.times(), "time64[us]"),
    # a JSON column has NUMERIC affinity: a bare number is stored as a number (refused)
    ("doc", "JSON", json_texts().filter(lambda t: not _number(t)), "string"),
    ("loose", "", st.text(max_size=5), "string"),
]

ROW = st.fixed_dictionaries({name: st.none() | values for name, _, values, _ in COLUMNS})

EDGE_ROWS = [
    {
        "i": -(2**63),
        "r": 5e-324,
        "t": "a\x00b e\u0301 𝄞",
        "vc": "",
        "b": b"\x00",
        "price": Decimal("-99999999.99"),
        "amount": 2.0**60,
        "flag": False,
        "day": dt.date(1, 1, 1),
        "at": dt.datetime(1, 1, 1),
        "stamp": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "clock": dt.time(23, 59, 59, 999999),
        "doc": '{"a": 1, "a": 2}',
        "loose": "",
    },
    {
        "i": 2**63 - 1,
        "r": float("inf"),
        "t": "",
        "vc": "🍮" * 10,
        "b": b"",
        "price": Decimal("0.10"),
        "amount": 0.1,
        "flag": True,
        "day": dt.date(9999, 12, 31),
        "at": dt.datetime(2024, 2, 29, 12, 0, 0, 1),
        "stamp": None,
        "clock": dt.time(0, 0),
        "doc": "null",
        "loose": None,
    },
]


def to_sqlite(name: str, value: Any) -> Any:
    """How an application writes the value (the sqlite3 module, SQLAlchemy's SQLite types)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def lake_value(name: str, raw: Any) -> Any:
    """What the lake must hold for the raw SQLite value (read without our code)."""
    if raw is None:
        return None
    if name == "price":
        return Decimal(repr(raw) if isinstance(raw, float) else raw).quantize(Decimal("0.01"))
    if name == "amount":
        return float(raw)
    if name == "flag":
        return bool(raw)
    if name == "day":
        return dt.date.fromisoformat(raw)
    if name in ("at", "stamp"):
        return dt.datetime.fromisoformat(raw)
    if name == "clock":
        return dt.time.fromisoformat(raw)
    return raw


def make_table(path: str, name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Creates the table, inserts the rows; returns what the lake must hold."""
    db = sqlite3.connect(path)
    try:
        columns = ", ".join(f'"{n}" {ddl}'.rstrip() for n, ddl, _, _ in COLUMNS)
        db.execute(f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY, {columns})')
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        db.executemany(
            f'INSERT INTO "{name}" VALUES ({marks})',
            [[i, *(to_sqlite(n, row[n]) for n, _, _, _ in COLUMNS)] for i, row in enumerate(rows)],
        )
        db.commit()
        names = ", ".join(f'"{n}"' for n, _, _, _ in COLUMNS)
        return [
            {
                "id": record[0],
                **{n: lake_value(n, v) for (n, *_), v in zip(COLUMNS, record[1:], strict=True)},
            }
            for record in db.execute(f'SELECT id, {names} FROM "{name}" ORDER BY id')
        ]
    finally:
        db.close()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ROW, min_size=1, max_size=5))
@example(rows=EDGE_ROWS)
def test_every_sqlite_type_lands_exactly(tmp_path, monkeypatch, rows):
    name = f"types_{next(TABLES)}"
    path = str(tmp_path / f"{name}.db")
    expected = make_table(path, name, rows)
    for row, landed in zip(rows, expected, strict=True):  # the insert kept the values
        assert landed["i"] == row["i"] and landed["t"] == row["t"] and landed["b"] == row["b"]
        assert landed["price"] == row["price"] and landed["at"] == row["at"]
        if row["doc"] is not None:
            assert landed["doc"] == row["doc"]
    set_source_env(monkeypatch, SOURCE, path=path)
    job = JobConfig(name, True, "sqlite", SOURCE, name, "FULL")
    folder = tmp_path / name
    folder.mkdir()
    lake = folder.as_uri()
    land(job, lake)
    landed = parquet(lake, job)
    assert data_schema(landed) == [("id", "int64")] + [(n, arrow) for n, _, _, arrow in COLUMNS]
    landed_rows = landed.to_pylist()
    assert_same_rows(expected, landed_rows, "source vs Parquet")
    assert_same_rows(landed_rows, view(lake, job, ["id", *[n for n, *_ in COLUMNS]]), "view")


#: a value of another kind than its column's declared type, and how the refusal says it
REFUSED = [
    ("INTEGER", "'abc'", "holds a text value"),
    ("TEXT", "x'00ff'", "holds a binary value"),
    ("DATETIME", "1700000000", "holds an integer"),
    ("DATETIME", "'2024-01-01T10:00:00+02:00'", "holds a timestamp with a time zone offset"),
    ("DATE", "'yesterday'", "holds a text value that is not a date"),
    ("NUMERIC(10, 2)", "0.125", "holds a decimal value that does not fit"),
    ("NUMERIC(10, 2)", "'n/a'", "holds a text value"),
    ("BOOLEAN", "2", "holds a number other than 0 and 1"),
    ("NUMERIC", "9007199254740993", "holds an integer no float64 equals"),
    ("", "1", "holds an integer"),
]


@pytest.mark.parametrize(("ddl", "literal", "reason"), REFUSED)
def test_a_value_of_another_kind_is_refused_naming_the_column(
    tmp_path, file_lake, monkeypatch, ddl, literal, reason
):
    path = str(tmp_path / "odd.db")
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE odd (id INTEGER PRIMARY KEY, odd_value {ddl})")
    db.execute(f"INSERT INTO odd VALUES (1, {literal}), (2, NULL)")
    db.commit()
    db.close()
    set_source_env(monkeypatch, SOURCE, path=path)
    error = fail(JobConfig("o", True, "sqlite", SOURCE, "odd", "FULL"), file_lake)
    assert "column odd_value (sqlite " in error and "of table odd" in error, error
    assert reason in error, error
