"""SQL Server's type map (README, "Sources: types"). No SQL Server can run on the build
machines: this map, the SQL it compiles to and the parsing of the text it reads are tested
offline (tests/sources/test_typemap_offline.py), never against a server.

- datetime2, datetimeoffset and time hold 100-nanosecond steps (precision 7 by default);
  pyodbc returns microseconds, cutting the last digit. The SELECT reads them as text
  (`CONVERT(VARCHAR, col, 121)`, `CAST(col AS VARCHAR)`): a value whose 100-ns digit is not 0
  is refused naming the column, the others land exactly (datetimeoffset as UTC).
- datetime (steps of 1/300 s) lands as SQL Server prints it, to the millisecond (style 121).
- money/smallmoney are decimal(19,4)/decimal(10,4); real widens exactly to float64.
- uniqueidentifier and xml land as SQL Server's text; sql_variant and the types SQLAlchemy
  does not recognise (hierarchyid, geography, geometry) are refused: read them through a
  view that converts them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from ingest.sources.typemap import lake
from ingest.sources.typemap.convert import (
    Binary,
    Boolean,
    Converter,
    Date,
    FloatFromSingle,
    Text,
    TimeFromText,
    TimestampFromText,
)
from ingest.sources.typemap.plan import ColumnPlan, Refusal, type_name

MONEY, SMALLMONEY = lake.decimal(19, 4), lake.decimal(10, 4)

#: renders the reflected types in messages
DIALECT = mssql.dialect()


def iso_text(column: Any) -> Any:
    """datetime, datetime2, smalldatetime, datetimeoffset as `yyyy-mm-dd hh:mi:ss.fffffff`
    (+ ` +hh:mi`): style 121 prints every digit the type holds."""
    return sa.func.convert(sa.literal_column("VARCHAR(40)"), column, sa.literal_column("121"))


def time_text(column: Any) -> Any:
    return sa.cast(column, mssql.VARCHAR(16))


def uuid_text(column: Any) -> Any:
    return sa.cast(column, mssql.VARCHAR(36))


def unicode_text(column: Any) -> Any:
    # NVARCHAR(max): SQLAlchemy renders the length as given (its stub says int)
    return sa.cast(column, mssql.NVARCHAR("max"))  # type: ignore[arg-type]


def _plan(
    name: str, source: str, kind: lake.LakeType, converter: Converter, reader: Any = None
) -> ColumnPlan:
    return ColumnPlan(name, source, kind, converter, reader, fast=False)


def plan_column(name: str, sql_type: Any) -> ColumnPlan | Refusal:
    source = type_name(sql_type, DIALECT)
    if isinstance(sql_type, mssql.SQL_VARIANT):
        return Refusal(
            name,
            source,
            "sql_variant holds values of different types",
            "read the table through a view that casts the column to one type",
        )
    if isinstance(sql_type, mssql.MONEY):
        return _plan(name, source, MONEY, Converter(MONEY.arrow))
    if isinstance(sql_type, mssql.SMALLMONEY):
        return _plan(name, source, SMALLMONEY, Converter(SMALLMONEY.arrow))
    if isinstance(sql_type, sa.Boolean):  # bit
        return _plan(name, source, lake.BOOL, Boolean())
    if isinstance(sql_type, sa.Float):
        if isinstance(sql_type, sa.REAL) or (sql_type.precision or 53) <= 24:
            return _plan(name, source, lake.FLOAT64, FloatFromSingle())
        return _plan(name, source, lake.FLOAT64, Converter(lake.FLOAT64.arrow))
    if isinstance(sql_type, sa.Numeric):
        fits = lake.decimal_for(sql_type.precision, sql_type.scale)
        if fits is None:
            return _plan(name, source, lake.TEXT, Text(), unicode_text)
        kind = lake.decimal(*fits)
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, sa.Integer):  # tinyint (0..255), smallint, int, bigint
        kind = lake.INT32 if isinstance(sql_type, sa.SmallInteger) else lake.INT64
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, mssql.DATETIMEOFFSET):
        return _plan(name, source, lake.TIMESTAMP_UTC, TimestampFromText(utc=True), iso_text)
    if isinstance(sql_type, sa.DateTime):  # datetime, datetime2, smalldatetime
        return _plan(name, source, lake.TIMESTAMP, TimestampFromText(utc=False), iso_text)
    if isinstance(sql_type, sa.Date):
        return _plan(name, source, lake.DATE, Date())
    if isinstance(sql_type, sa.Time):
        return _plan(name, source, lake.TIME, TimeFromText(), time_text)
    if isinstance(sql_type, sa.Uuid):  # uniqueidentifier
        return ColumnPlan(name, source, lake.TEXT, Text(), uuid_text, fast=False, as_text=True)
    if isinstance(sql_type, mssql.XML):
        return ColumnPlan(name, source, lake.TEXT, Text(), unicode_text, fast=False, as_text=True)
    if isinstance(sql_type, sa.String):  # char, varchar, nchar, nvarchar (max), text, ntext
        return _plan(name, source, lake.text(sql_type.length), Text())
    if isinstance(sql_type, sa.types._Binary):  # binary, varbinary (max), image, rowversion
        return _plan(name, source, lake.BINARY, Binary())
    return Refusal(
        name,
        source,
        "a type SQLAlchemy does not recognise (hierarchyid, geography, geometry, ...)",
        "read the table through a view that converts it, e.g. col.ToString() for "
        "hierarchyid or col.STAsText() for geography, or leave the column out",
    )
