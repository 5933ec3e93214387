"""SQL Server and Oracle type maps without a server (none can run here): what each type lands
as, the SQL each column compiles to in the dialect, and the conversion of the values the
drivers return (pyodbc, oracledb) or the text the SELECT makes of them. Checked offline only;
PostgreSQL, MariaDB and SQLite are checked against real servers (tests/sources/test_types_*).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql

from ingest.errors import JobError
from ingest.secrets.resolver import Secret
from ingest.sources import get_builder
from ingest.sources.typemap import Refusal, plan_column, plan_table
from ingest.sources.typemap.convert import Refused, TimeFromText, TimestampFromText

#: type -> (lake type as the README names it, lands as the source's text)
MSSQL = {
    "bit": (mssql.BIT(), "bool", False),
    "tinyint": (mssql.TINYINT(), "int64", False),
    "smallint": (mssql.SMALLINT(), "int32", False),
    "int": (mssql.INTEGER(), "int64", False),
    "bigint": (mssql.BIGINT(), "int64", False),
    "decimal(38,10)": (mssql.DECIMAL(38, 10), "decimal(38,10)", False),
    "numeric(18,4)": (mssql.NUMERIC(18, 4), "decimal(18,4)", False),
    "money": (mssql.MONEY(), "decimal(19,4)", False),
    "smallmoney": (mssql.SMALLMONEY(), "decimal(10,4)", False),
    "float": (mssql.FLOAT(), "float64", False),
    "real": (mssql.REAL(), "float64", False),
    "date": (mssql.DATE(), "date", False),
    "time(7)": (mssql.TIME(7), "time (microseconds)", False),
    "datetime": (mssql.DATETIME(), "timestamp (no zone)", False),
    "datetime2(7)": (mssql.DATETIME2(7), "timestamp (no zone)", False),
    "smalldatetime": (mssql.SMALLDATETIME(), "timestamp (no zone)", False),
    "datetimeoffset": (mssql.DATETIMEOFFSET(7), "timestamp (UTC)", False),
    "char(10)": (mssql.CHAR(10), "text", False),
    "varchar(max)": (mssql.VARCHAR(None), "text", False),
    "nvarchar(max)": (mssql.NVARCHAR(None), "text", False),
    "text": (mssql.TEXT(), "text", False),
    "ntext": (mssql.NTEXT(), "text", False),
    "binary(16)": (mssql.BINARY(16), "binary", False),
    "varbinary(max)": (mssql.VARBINARY(None), "binary", False),
    "image": (mssql.IMAGE(), "binary", False),
    "rowversion": (mssql.TIMESTAMP(), "binary", False),
    "uniqueidentifier": (mssql.UNIQUEIDENTIFIER(), "text", True),
    "xml": (mssql.XML(), "text", True),
}

ORACLE = {
    "NUMBER(12,2)": (oracle.NUMBER(12, 2), "decimal(12,2)", False),
    "NUMBER(10)": (oracle.NUMBER(10, 0), "decimal(10,0)", False),
    "NUMBER(5,-2)": (oracle.NUMBER(5, -2), "decimal(7,0)", False),
    "NUMBER(2,5)": (oracle.NUMBER(2, 5), "decimal(5,5)", False),
    "NUMBER": (oracle.NUMBER(), "text", True),
    "INTEGER": (sa.INTEGER(), "decimal(38,0)", False),
    "FLOAT": (oracle.FLOAT(126), "text", True),
    "BINARY_FLOAT": (oracle.BINARY_FLOAT(), "float64", False),
    "BINARY_DOUBLE": (oracle.BINARY_DOUBLE(), "float64", False),
    "DATE": (oracle.DATE(), "timestamp (no zone)", False),
    "TIMESTAMP(9)": (oracle.TIMESTAMP(), "timestamp (no zone)", False),
    "TIMESTAMP WITH TIME ZONE": (oracle.TIMESTAMP(timezone=True), "timestamp (UTC)", False),
    "TIMESTAMP WITH LOCAL TIME ZONE": (
        oracle.TIMESTAMP(local_timezone=True),
        "timestamp (UTC)",
        False,
    ),
    "INTERVAL DAY TO SECOND": (oracle.INTERVAL(), "text", True),
    "VARCHAR2(30)": (oracle.VARCHAR2(30), "text", False),
    "NVARCHAR2(30)": (oracle.NVARCHAR2(30), "text", False),
    "CHAR(3)": (sa.CHAR(3), "text", False),
    "CLOB": (oracle.CLOB(), "text", False),
    "NCLOB": (oracle.NCLOB(), "text", False),
    "LONG": (oracle.LONG(), "text", False),
    "BLOB": (oracle.BLOB(), "binary", False),
    "RAW(16)": (oracle.RAW(16), "binary", False),
    "ROWID": (oracle.ROWID(), "text", True),
}


@pytest.mark.parametrize("name", MSSQL)
def test_mssql_type_map(name):
    sql_type, lands, as_text = MSSQL[name]
    plan = plan_column("mssql", "c", sql_type)
    assert not isinstance(plan, Refusal), plan
    assert (plan.lake.describe(), plan.as_text) == (lands, as_text)


@pytest.mark.parametrize("name", ORACLE)
def test_oracle_type_map(name):
    sql_type, lands, as_text = ORACLE[name]
    plan = plan_column("oracle", "c", sql_type)
    assert not isinstance(plan, Refusal), plan
    assert (plan.lake.describe(), plan.as_text) == (lands, as_text)


@pytest.mark.parametrize(
    ("source_type", "sql_type", "hint"),
    [
        ("mssql", mssql.SQL_VARIANT(), "casts the column to one type"),
        ("mssql", sa.types.NullType(), "col.ToString() for hierarchyid"),  # hierarchyid, geography
        ("oracle", sa.types.NullType(), "UROWID, XMLTYPE"),
    ],
)
def test_types_no_lake_type_holds_are_refused_with_what_to_do(source_type, sql_type, hint):
    columns = [{"name": "id", "type": sa.Integer()}, {"name": "odd", "type": sql_type}]
    with pytest.raises(JobError) as raised:
        plan_table(source_type, "j7", "things", columns)
    message = str(raised.value)
    assert "job j7: table things has column(s) no lake type holds exactly" in message
    assert f"odd ({source_type} " in message and hint in message


def compiled(source_type: str, secrets: dict[str, str], columns: dict[str, sa.types.TypeEngine]):
    """The plan's SELECT as the dialect sends it (what dlt and our loader execute)."""
    engine = sa.create_engine(
        get_builder(source_type).url({k: Secret(v) for k, v in secrets.items()})
    )
    table = sa.Table(
        "order",  # a reserved word: quoted, never pasted
        sa.MetaData(),
        *(sa.Column(n, t) for n, t in columns.items()),
        schema="sales",
    )
    plan = plan_table(
        source_type, "j", "order", [{"name": n, "type": t} for n, t in columns.items()]
    )
    query = plan.select(table.select(), table)
    return str(query.compile(engine, compile_kwargs={"literal_binds": True})), plan


def test_mssql_select_reads_every_digit_and_quotes_identifiers():
    sql, plan = compiled(
        "mssql",
        {"host": "h", "database": "d", "username": "u"},
        {
            "id": mssql.BIGINT(),
            "at": mssql.DATETIME2(7),
            "seen": mssql.DATETIMEOFFSET(7),
            "opens": mssql.TIME(7),
            "key": mssql.UNIQUEIDENTIFIER(),
            "doc": mssql.XML(),
            "amount": mssql.MONEY(),
        },
    )
    assert "sales.[order].id AS id" in sql
    assert "convert(VARCHAR(40), sales.[order].at, 121) AS at" in sql
    assert "convert(VARCHAR(40), sales.[order].seen, 121) AS seen" in sql
    assert "CAST(sales.[order].opens AS VARCHAR(16)) AS opens" in sql
    assert "CAST(sales.[order].[key] AS VARCHAR(36)) AS [key]" in sql
    assert "CAST(sales.[order].doc AS NVARCHAR(max)) AS doc" in sql
    assert "sales.[order].amount AS amount" in sql
    assert plan.fast_path_blocker() is not None  # ConnectorX is PostgreSQL only here


def test_oracle_select_reads_every_digit_and_the_instant():
    sql, _ = compiled(
        "oracle",
        {"host": "h", "username": "u", "service_name": "s"},
        {
            "ID": oracle.NUMBER(10, 0),
            "AMOUNT": oracle.NUMBER(),
            "BORN": oracle.DATE(),
            "AT": oracle.TIMESTAMP(),
            "SEEN": oracle.TIMESTAMP(timezone=True),
            "RID": oracle.ROWID(),
        },
    )
    assert 'sales."order"."ID" AS "ID"' in sql
    assert "to_char(sales.\"order\".\"AMOUNT\", 'TM9', 'NLS_NUMERIC_CHARACTERS=''.,''')" in sql
    assert 'to_char(sales."order"."BORN", \'SYYYY-MM-DD HH24:MI:SS\') AS "BORN"' in sql
    assert 'to_char(sales."order"."AT", \'SYYYY-MM-DD HH24:MI:SS.FF9\') AS "AT"' in sql
    assert 'to_char(sys_extract_utc(sales."order"."SEEN"), \'SYYYY-MM-DD HH24:MI:SS.FF9\')' in sql
    assert 'rowidtochar(sales."order"."RID") AS "RID"' in sql


# ------------------------------------------------------------------------------------------
# the text those SELECTs return, as the drivers hand it over


@pytest.mark.parametrize(
    ("text", "utc", "expected"),
    [
        # SQL Server style 121: datetime2(7), datetime (ms), datetimeoffset(7)
        ("2024-01-31 10:00:00.1234560", False, dt.datetime(2024, 1, 31, 10, 0, 0, 123456)),
        ("2024-01-31 10:00:00.003", False, dt.datetime(2024, 1, 31, 10, 0, 0, 3000)),
        ("0001-01-01 00:00:00.0000000", False, dt.datetime(1, 1, 1)),
        ("9999-12-31 23:59:59.9999990", False, dt.datetime(9999, 12, 31, 23, 59, 59, 999999)),
        (
            "2024-01-31 10:00:00.1234560 +02:00",
            True,
            dt.datetime(2024, 1, 31, 8, 0, 0, 123456, tzinfo=dt.UTC),
        ),
        ("2024-01-31 00:30:00.0000000 -05:30", True, dt.datetime(2024, 1, 31, 6, 0, tzinfo=dt.UTC)),
        # Oracle SYYYY (a space before a positive year), FF9, UTC from SYS_EXTRACT_UTC
        (" 2024-01-31 10:00:00", False, dt.datetime(2024, 1, 31, 10, 0)),
        (
            " 2024-01-31 10:00:00.123456000",
            True,
            dt.datetime(2024, 1, 31, 10, 0, 0, 123456, tzinfo=dt.UTC),
        ),
    ],
)
def test_timestamps_read_as_text_land_exactly(text, utc, expected):
    landed = TimestampFromText(utc=utc).from_values([text, None])
    assert landed.to_pylist() == [expected, None]
    assert landed.type == pa.timestamp("us", tz="UTC" if utc else None)


@pytest.mark.parametrize(
    ("text", "utc", "reason"),
    [
        ("2024-01-31 10:00:00.1234567", False, "finer than a microsecond"),  # datetime2(7)
        (" 2024-01-31 10:00:00.123456789", False, "finer than a microsecond"),  # TIMESTAMP(9)
        ("-0044-03-15 12:00:00", False, "before 0001 or after 9999"),  # Oracle BC
        ("9999-12-31 23:00:00.0000000 -05:00", True, "before 0001 or after 9999"),
        ("2024-01-31 10:00:00 +02:00", False, "time zone offset"),
    ],
)
def test_timestamps_read_as_text_that_do_not_fit_are_refused(text, utc, reason):
    with pytest.raises(Refused) as raised:
        TimestampFromText(utc=utc).from_values([text])
    assert reason in raised.value.reason


def test_times_of_day_read_as_text_are_exact_to_the_microsecond():
    converter = TimeFromText()
    landed = converter.from_values(["23:59:59.9999990", "00:00:00", None])
    assert landed.to_pylist() == [dt.time(23, 59, 59, 999999), dt.time(0, 0), None]
    with pytest.raises(Refused, match="finer than a microsecond"):
        converter.from_values(["10:00:00.0000001"])  # time(7)


def test_driver_values_land_exactly():
    """pyodbc/oracledb values: money as Decimal, a real as the float of its 4 bytes, NUMBER
    as Decimal or int."""
    plan = plan_table(
        "mssql",
        "j",
        "t",
        [
            {"name": "m", "type": mssql.MONEY()},
            {"name": "r", "type": mssql.REAL()},
            {"name": "b", "type": mssql.BIT()},
        ],
    )
    table = plan.from_rows([(Decimal("-922337203685477.5808"), 0.1, True), (None, None, None)])
    assert table.column("m").to_pylist() == [Decimal("-922337203685477.5808"), None]
    assert table.column("r").to_pylist() == [0.10000000149011612, None]  # the real's value
    number = plan_table("oracle", "j", "t", [{"name": "n", "type": oracle.NUMBER(38, 0)}])
    landed = number.from_rows([(10**37,), (-(10**38) + 1,)]).column("n").to_pylist()
    assert landed == [Decimal(10**37), Decimal(-(10**38) + 1)]


# ------------------------------------------------------------------------------------------
# the README's type tables say what the map does

README = Path(__file__).resolve().parents[2] / "README.md"
TYPES_SECTION = "### Types: what each column lands as"
TABLE_TITLES = {
    "postgresql": "**PostgreSQL** (both read paths):",
    "mysql": "**MySQL and MariaDB**:",
    "sqlite": "**SQLite** types values",
    "mssql": "**SQL Server** (checked offline",
    "oracle": "**Oracle** (checked offline):",
}
#: (source, the README row's first cell, a type of that row, what the row's second cell and
#: the map's lake type start with)
README_ROWS = [
    ("postgresql", "smallint", sa.SMALLINT(), "int32"),
    ("postgresql", "integer, bigint", sa.BIGINT(), "int64"),
    ("postgresql", "real", sa.REAL(), "float64"),
    ("postgresql", "double precision", postgresql.DOUBLE_PRECISION(), "float64"),
    ("postgresql", "numeric(p,s) with p <= 38", sa.NUMERIC(12, 2), "decimal"),
    ("postgresql", "numeric without precision, numeric(p,s) with p > 38", sa.NUMERIC(), "text"),
    ("postgresql", "boolean", sa.BOOLEAN(), "bool"),
    ("postgresql", "date", sa.DATE(), "date"),
    ("postgresql", "time", postgresql.TIME(), "time"),
    ("postgresql", "timestamp", postgresql.TIMESTAMP(), "timestamp (no zone)"),
    ("postgresql", "timestamptz", postgresql.TIMESTAMP(timezone=True), "timestamp (UTC)"),
    ("postgresql", "text, varchar(n), char(n)", sa.VARCHAR(10), "text"),
    ("postgresql", "bytea", postgresql.BYTEA(), "binary"),
    ("postgresql", "json", postgresql.JSON(), "text"),
    ("postgresql", "jsonb", postgresql.JSONB(), "text"),
    (
        "mysql",
        "tinyint, mediumint, int (signed or unsigned), bigint, year",
        mysql.MEDIUMINT(),
        "int64",
    ),
    ("mysql", "smallint (signed or unsigned)", mysql.SMALLINT(unsigned=True), "int32"),
    ("mysql", "bigint unsigned", mysql.BIGINT(unsigned=True), "decimal(20,0)"),
    ("mysql", "float", mysql.FLOAT(), "float64"),
    ("mysql", "double", mysql.DOUBLE(), "float64"),
    ("mysql", "date", mysql.DATE(), "date"),
    ("mysql", "datetime(fsp), timestamp(fsp)", mysql.DATETIME(fsp=6), "timestamp (no zone)"),
    ("mysql", "time", mysql.TIME(fsp=6), "text"),
    ("mysql", "json", mysql.JSON(), "text"),
    ("mysql", "binary, varbinary, blob types", mysql.VARBINARY(10), "binary"),
    (
        "mysql",
        "spatial types, anything SQLAlchemy does not recognise",
        sa.types.NullType(),
        "refused",
    ),
    ("sqlite", "INTEGER (any name with INT)", sa.INTEGER(), "int64"),
    ("sqlite", "NUMERIC(p,s), DECIMAL(p,s)", sa.NUMERIC(10, 2), "decimal"),
    ("sqlite", "BOOLEAN", sa.BOOLEAN(), "bool"),
    ("sqlite", "BLOB", sa.BLOB(), "binary"),
    ("mssql", "bit", mssql.BIT(), "bool"),
    ("mssql", "money, smallmoney", mssql.MONEY(), "decimal(19,4)"),
    ("mssql", "datetimeoffset(n)", mssql.DATETIMEOFFSET(7), "timestamp (UTC)"),
    ("mssql", "uniqueidentifier, xml", mssql.UNIQUEIDENTIFIER(), "text"),
    ("mssql", "sql_variant, hierarchyid, geography, geometry", mssql.SQL_VARIANT(), "refused"),
    ("oracle", "NUMBER, FLOAT(b)", oracle.NUMBER(), "text"),
    ("oracle", "DATE", oracle.DATE(), "timestamp (no zone)"),
    (
        "oracle",
        "TIMESTAMP WITH TIME ZONE, WITH LOCAL TIME ZONE",
        oracle.TIMESTAMP(timezone=True),
        "timestamp (UTC)",
    ),
    ("oracle", "BLOB, RAW, LONG RAW", oracle.RAW(8), "binary"),
]


def readme_type_rows(source_type: str) -> dict[str, str]:
    """First cell -> second cell of the README's type table of `source_type`."""
    text = README.read_text(encoding="utf-8")
    text = text[text.index(TYPES_SECTION) :]
    section = text[text.index(TABLE_TITLES[source_type]) :]
    rows: dict[str, str] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("| ") and not line.startswith("| source type") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1]
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize(("source_type", "row", "sql_type", "lands"), README_ROWS)
def test_the_readme_type_tables_say_what_the_map_does(source_type, row, sql_type, lands):
    readme = readme_type_rows(source_type)
    assert row in readme, (source_type, row, sorted(readme))
    assert readme[row].startswith(lands), (row, readme[row])
    decision = plan_column(source_type, "c", sql_type)
    if lands == "refused":
        assert isinstance(decision, Refusal)
    else:
        assert not isinstance(decision, Refusal)
        assert decision.lake.describe().startswith(lands), (row, decision.lake.describe())
