"""MySQL/MariaDB: every type lands exactly and the DuckDB view returns what the Parquet holds
(issue 24, class 1 and class 8). A property test generates rows of a table with a column of
each type (integer bounds signed and unsigned, BIGINT UNSIGNED max, FLOAT and DOUBLE edges,
decimals at full precision, TIME over its whole -838:59:59.999999 .. 838:59:59.999999 range,
dates and datetimes with microseconds, 4-byte UTF-8, bytes with NUL, JSON text), inserts them
into the real MariaDB, runs the job, and compares source, Parquet and view value for value.
Zero dates and types no lake type holds are refused naming the column.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.config import JobConfig
from ingest.errors import JobError
from ingest.secrets.resolver import Secret
from ingest.sources import get_builder
from tests.conftest import MARIA_HOST, MARIA_PORT
from tests.fixtures.values import decimals, json_texts
from tests.sources.exactness import assert_same_rows, data_schema, fail, land, parquet, same, view

SOURCE = "maria_types"
TABLES = itertools.count()
UNSIGNED_MAX = 2**64 - 1


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    values: st.SearchStrategy[Any]
    arrow: str
    #: the truth's SELECT expression ({c}: the column); None: the column itself
    truth: str | None = None


def times() -> st.SearchStrategy[str]:
    """MySQL TIME literals over the whole range, sign and microseconds included."""
    micros = st.integers(
        -(838 * 3600 + 59 * 60 + 59) * 10**6 - 999999, (838 * 3600 + 59 * 60 + 59) * 10**6 + 999999
    )

    def literal(value: int) -> str:
        sign = "-" if value < 0 else ""
        value = abs(value)
        seconds, fraction = divmod(value, 10**6)
        minutes, second = divmod(seconds, 60)
        hours, minute = divmod(minutes, 60)
        return f"{sign}{hours:02}:{minute:02}:{second:02}.{fraction:06}"

    return st.one_of(
        st.sampled_from(
            ["-838:59:59.999999", "838:59:59.999999", "-00:00:00.000001", "-01:00:00.000000"]
        ),
        micros.map(literal),
    )


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
NO_NEGATIVE_ZERO = st.floats(allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0)

COLUMNS = [
    Col("ti", "tinyint", st.integers(-128, 127), "int64"),
    Col("tiu", "tinyint unsigned", st.integers(0, 255), "int64"),
    Col("si", "smallint", st.integers(-(2**15), 2**15 - 1), "int32"),
    Col("siu", "smallint unsigned", st.integers(0, 2**16 - 1), "int32"),
    Col("mi", "mediumint", st.integers(-(2**23), 2**23 - 1), "int64"),
    Col("i", "int", st.integers(-(2**31), 2**31 - 1), "int64"),
    Col("iu", "int unsigned", st.integers(0, 2**32 - 1), "int64"),
    Col("bi", "bigint", st.integers(-(2**63), 2**63 - 1), "int64"),
    Col("biu", "bigint unsigned", st.integers(0, UNSIGNED_MAX), "decimal128(20, 0)"),
    Col(
        "f",
        "float",
        st.floats(width=32, allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0),
        "double",
        "CAST({c} AS DOUBLE)",  # the server prints a FLOAT with 6 digits
    ),
    Col("d", "double", NO_NEGATIVE_ZERO, "double"),
    Col("d12", "decimal(12,2)", decimals(12, 2), "decimal128(12, 2)"),
    Col("d38", "decimal(38,10)", decimals(38, 10), "decimal128(38, 10)"),
    Col("d65", "decimal(65,30)", decimals(65, 30), "string", "CAST({c} AS CHAR)"),
    Col("day", "date", st.dates(min_value=dt.date(1000, 1, 1)), "date32[day]"),
    Col("at", "datetime(6)", st.datetimes(min_value=dt.datetime(1000, 1, 1)), "timestamp[us]"),
    Col(
        "stamp",
        "timestamp(6) NULL",
        st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2037, 12, 31)),
        "timestamp[us]",
    ),
    Col("span", "time(6)", times(), "string", "CAST({c} AS CHAR)"),
    Col("yr", "year", st.sampled_from([0, 1901, 2024, 2155]), "int64"),
    Col("code", "char(5)", st.text(alphabet="ab é🍮", max_size=5), "string"),
    Col("label", "varchar(20)", TEXT, "string"),
    Col("body", "text", TEXT, "string"),
    Col("bin", "binary(4)", st.binary(max_size=4), "binary"),
    Col("vbin", "varbinary(16)", st.binary(max_size=16), "binary"),
    Col("blob", "blob", st.binary(max_size=16), "binary"),
    Col("doc", "json", json_texts(), "string"),
    Col("kind", "enum('a','b','é')", st.sampled_from(["a", "b", "é"]), "string"),
    Col("tags", "set('x','y','z')", st.sampled_from(["", "x", "x,y", "x,y,z"]), "string"),
    Col("bit1", "bit(1)", st.integers(0, 1), "bool"),
    Col("bit64", "bit(64)", st.integers(0, UNSIGNED_MAX), "decimal128(20, 0)"),
]

ROW = st.fixed_dictionaries({c.name: st.none() | c.values for c in COLUMNS})

EDGE_ROWS = [
    {
        "ti": -128,
        "tiu": 255,
        "si": -(2**15),
        "siu": 2**16 - 1,
        "mi": -(2**23),
        "i": -(2**31),
        "iu": 2**32 - 1,
        "bi": -(2**63),
        "biu": UNSIGNED_MAX,
        "f": 1.401298464324817e-45,
        "d": 5e-324,
        "d12": Decimal("-9999999999.99"),
        "d38": Decimal("9999999999999999999999999999.9999999999"),
        "d65": Decimal("-" + "9" * 35 + "." + "9" * 30),
        "day": dt.date(1000, 1, 1),
        "at": dt.datetime(1000, 1, 1),
        "stamp": dt.datetime(1971, 1, 1, 0, 0, 0, 1),
        "span": "-838:59:59.999999",
        "yr": 0,
        "code": "",
        "label": "",
        "body": "e\u0301 𝄞 🍮",
        "bin": b"\x00",
        "vbin": b"",
        "blob": b"\x00\xff",
        "doc": '{"a": 1, "a": 2, "n": 1.000000000000000000001}',
        "kind": "é",
        "tags": "",
        "bit1": 1,
        "bit64": UNSIGNED_MAX,
    },
    {
        "ti": 127,
        "tiu": 0,
        "si": 2**15 - 1,
        "siu": 0,
        "mi": 2**23 - 1,
        "i": 2**31 - 1,
        "iu": 0,
        "bi": 2**63 - 1,
        "biu": 0,
        "f": 3.4028234663852886e38,
        "d": 1.7976931348623157e308,
        "d12": Decimal("0.00"),
        "d38": None,
        "d65": Decimal("1.5"),
        "day": dt.date(9999, 12, 31),
        "at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "stamp": dt.datetime(2037, 12, 31, 23, 59, 59, 999999),
        "span": "838:59:59.999999",
        "yr": 2155,
        "code": "é🍮",
        "label": " x ",
        "body": "",
        "bin": b"\x01\x02\x03\x04",
        "vbin": b"\x00" * 16,
        "blob": b"",
        "doc": "null",
        "kind": "a",
        "tags": "x,y,z",
        "bit1": 0,
        "bit64": 0,
    },
    {  # the DOUBLE values, and the TIME values that used to wrap at 24 h
        **{c.name: None for c in COLUMNS},
        "d": 1e-300,
        "f": 1.2345677614212036,
        "span": "-01:00:00.000000",
        "doc": "{}",
    },
    {**{c.name: None for c in COLUMNS}, "d": 2.5e-11, "span": "838:59:59.000000", "f": 0.1 + 0.0},
    {**{c.name: None for c in COLUMNS}, "d": 1e308, "f": -0.0 + 0.0},
]
EDGE_ROWS[3]["f"] = 0.10000000149011612  # float32(0.1)


def create_table(mariadb, name: str, rows: list[dict[str, Any]]) -> None:
    ddl = ", ".join(f"`{c.name}` {c.ddl}" for c in COLUMNS)
    mariadb.execute(f"CREATE TABLE `{name}` (id int PRIMARY KEY, {ddl})")
    names = ", ".join(f"`{c.name}`" for c in COLUMNS)
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    for index, row in enumerate(rows):
        values = [repr(v) if isinstance(v, float) else v for v in (row[c.name] for c in COLUMNS)]
        mariadb.execute(f"INSERT INTO `{name}` (id, {names}) VALUES ({marks})", [index, *values])


def source_truth(mariadb, name: str) -> list[dict[str, Any]]:
    """The source's values as the lake must hold them, read by PyMySQL without our code."""
    select = ", ".join((c.truth or "{c}").format(c=f"`{c.name}`") for c in COLUMNS)
    rows = []
    for record in mariadb.query(f"SELECT id, {select} FROM `{name}` ORDER BY id"):
        row: dict[str, Any] = {"id": record[0]}
        for column, value in zip(COLUMNS, record[1:], strict=True):
            if value is not None and column.name in ("biu",):
                value = Decimal(value)
            if value is not None and column.name == "bit64":
                value = Decimal(int.from_bytes(value, "big"))
            if value is not None and column.name == "bit1":
                value = value == b"\x01"
            row[column.name] = value
        rows.append(row)
    return rows


def check_generated(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> None:
    """What landed is what was inserted (floats bit for bit, TIME to the microsecond)."""
    for row, landed in zip(rows, truth, strict=True):
        for name in ("f", "d", "ti", "biu", "day", "at", "stamp", "label", "vbin", "doc"):
            want = row[name]
            if name == "biu" and want is not None:
                want = Decimal(want)
            assert same(want, landed[name]), (name, want, landed[name])
        if row["span"] is not None:
            assert landed["span"] == row["span"]


@pytest.mark.mariadb
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(ROW, min_size=1, max_size=4))
@example(rows=EDGE_ROWS)
def test_every_mariadb_type_lands_exactly(mariadb, tmp_path, monkeypatch, rows):
    name = f"types_{next(TABLES)}"
    create_table(mariadb, name, rows)
    truth = source_truth(mariadb, name)
    check_generated(rows, truth)
    mariadb.use_as(monkeypatch, SOURCE)
    job = JobConfig(name, True, "mysql", SOURCE, name, "FULL")
    folder = tmp_path / name
    folder.mkdir()
    lake = folder.as_uri()
    land(job, lake)
    landed = parquet(lake, job)
    assert data_schema(landed) == [("id", "int64")] + [(c.name, c.arrow) for c in COLUMNS]
    landed_rows = landed.to_pylist()
    assert_same_rows(truth, landed_rows, "source vs Parquet")
    assert_same_rows(landed_rows, view(lake, job, ["id", *[c.name for c in COLUMNS]]), "view")


ZERO_DATES = [
    ("date", "'0000-00-00'", "'0000-00-00'"),
    ("date", "'2020-00-15'", "'2020-00-15'"),
    ("datetime(6)", "'2020-02-00 10:00:00'", "'2020-02-00 10:00:00.000000'"),
    ("datetime", "'0000-00-00 00:00:00'", "'0000-00-00 00:00:00'"),
    ("timestamp NULL", "'0000-00-00 00:00:00'", "'0000-00-00 00:00:00'"),
]


@pytest.mark.mariadb
@pytest.mark.parametrize(("ddl", "literal", "quoted"), ZERO_DATES)
def test_zero_dates_are_refused_naming_the_column(
    mariadb, file_lake, monkeypatch, ddl, literal, quoted
):
    mariadb.execute("SET SESSION sql_mode = ''")  # this session only: zero dates allowed
    mariadb.execute(f"CREATE TABLE zero (id int PRIMARY KEY, due {ddl})")
    mariadb.execute(f"INSERT INTO zero VALUES (1, {literal}), (2, NULL)")
    mariadb.use_as(monkeypatch, SOURCE)
    error = fail(JobConfig("z", True, "mysql", SOURCE, "zero", "FULL"), file_lake)
    assert "column due (mysql " in error and "of table zero" in error, error
    assert f"holds {quoted} (a zero, partial or invalid date: no day)" in error


@pytest.mark.mariadb
def test_a_type_no_lake_type_holds_is_refused_naming_the_column(mariadb, file_lake, monkeypatch):
    mariadb.execute("CREATE TABLE shapes (id int PRIMARY KEY, spot POINT, label text)")
    mariadb.execute("INSERT INTO shapes VALUES (1, POINT(1, 2), 'x')")
    mariadb.use_as(monkeypatch, SOURCE)
    job = JobConfig("s", True, "mysql", SOURCE, "shapes", "FULL")
    error = fail(job, file_lake)
    assert "table shapes has column(s) no lake type holds exactly" in error
    assert "spot (mysql (not recognised))" in error and "ST_AsText(col)" in error
    # `validate --check-connections` says so without loading
    secrets = {
        key: Secret(str(value))
        for key, value in {
            "host": MARIA_HOST, "port": MARIA_PORT, "database": mariadb.name, "username": "root"
        }.items()
    }  # fmt: skip
    with pytest.raises(JobError, match=r"spot \(mysql \(not recognised\)\)"):
        get_builder("mysql").check_connection(job, secrets)
