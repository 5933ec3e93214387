"""Oracle's type map (README, "Sources: types"). No Oracle server can run on the build
machines: this map, the SQL it compiles to and the parsing of the text it reads are tested
offline (tests/sources/test_typemap_offline.py), never against a server.

- NUMBER(p,s) lands as decimal (a negative scale as whole numbers: NUMBER(5,-2) as
  decimal(7,0)); NUMBER and FLOAT without a fixed scale hold 38 significant digits at any
  exponent: they land as Oracle's text (`TO_CHAR(col, 'TM9')`, `.` as the decimal point).
- DATE has a time part (seconds): it lands as a timestamp without zone. DATE and TIMESTAMP are
  read as text with every digit (`TO_CHAR(..., 'SYYYY-MM-DD HH24:MI:SS.FF9')`): fractions
  finer than a microsecond (TIMESTAMP(7..9)) and years before 1 are refused, naming the column.
- TIMESTAMP WITH (LOCAL) TIME ZONE lands as UTC (`SYS_EXTRACT_UTC`); the driver would drop
  the zone.
- BINARY_FLOAT widens exactly to float64; INTERVAL and ROWID land as Oracle's text.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import oracle

from ingest.sources.typemap import lake
from ingest.sources.typemap.convert import (
    Binary,
    Converter,
    FloatFromSingle,
    Text,
    TimestampFromText,
)
from ingest.sources.typemap.plan import ColumnPlan, Refusal, type_name

DATE_FORMAT = "SYYYY-MM-DD HH24:MI:SS"
TIMESTAMP_FORMAT = "SYYYY-MM-DD HH24:MI:SS.FF9"

#: renders the reflected types in messages
DIALECT = oracle.dialect()


def number_text(column: Any) -> Any:
    return sa.func.to_char(column, "TM9", "NLS_NUMERIC_CHARACTERS='.,'")


def date_text(column: Any) -> Any:
    return sa.func.to_char(column, DATE_FORMAT)


def timestamp_text(column: Any) -> Any:
    return sa.func.to_char(column, TIMESTAMP_FORMAT)


def utc_timestamp_text(column: Any) -> Any:
    return sa.func.to_char(sa.func.sys_extract_utc(column), TIMESTAMP_FORMAT)


def plain_text(column: Any) -> Any:
    return sa.func.to_char(column)


def rowid_text(column: Any) -> Any:
    return sa.func.rowidtochar(column)


def _plan(
    name: str, source: str, kind: lake.LakeType, converter: Converter, reader: Any = None
) -> ColumnPlan:
    return ColumnPlan(name, source, kind, converter, reader, fast=False)


def _text(name: str, source: str, reader: Any) -> ColumnPlan:
    return ColumnPlan(name, source, lake.TEXT, Text(), reader, fast=False, as_text=True)


def plan_column(name: str, sql_type: Any) -> ColumnPlan | Refusal:
    source = type_name(sql_type, DIALECT)
    if isinstance(sql_type, oracle.BINARY_FLOAT):
        return _plan(name, source, lake.FLOAT64, FloatFromSingle())
    if isinstance(sql_type, oracle.BINARY_DOUBLE):
        return _plan(name, source, lake.FLOAT64, Converter(lake.FLOAT64.arrow))
    if isinstance(sql_type, sa.Float):  # FLOAT(b): a decimal NUMBER with binary precision
        return _text(name, source, number_text)
    if isinstance(sql_type, sa.Numeric):  # NUMBER(p,s), NUMBER(p), NUMBER
        fits = lake.decimal_for(sql_type.precision, sql_type.scale)
        if fits is None:
            return _text(name, source, number_text)
        kind = lake.decimal(*fits)
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, sa.Integer):  # INTEGER: NUMBER(*,0), up to 38 digits
        kind = lake.decimal(38, 0)
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, oracle.TIMESTAMP) and (
        sql_type.timezone or getattr(sql_type, "local_timezone", False)
    ):
        return _plan(
            name, source, lake.TIMESTAMP_UTC, TimestampFromText(utc=True), utc_timestamp_text
        )
    if isinstance(sql_type, oracle.DATE):
        return _plan(name, source, lake.TIMESTAMP, TimestampFromText(utc=False), date_text)
    if isinstance(sql_type, sa.DateTime):
        return _plan(name, source, lake.TIMESTAMP, TimestampFromText(utc=False), timestamp_text)
    if isinstance(sql_type, oracle.INTERVAL | sa.Interval):
        return _text(name, source, plain_text)
    if isinstance(sql_type, oracle.ROWID):
        return _text(name, source, rowid_text)
    if isinstance(sql_type, sa.String):  # VARCHAR2, NVARCHAR2, CHAR, NCHAR, CLOB, NCLOB, LONG
        return _plan(name, source, lake.text(sql_type.length), Text())
    if isinstance(sql_type, sa.types._Binary):  # BLOB, RAW, LONG RAW
        return _plan(name, source, lake.BINARY, Binary())
    return Refusal(
        name,
        source,
        "a type SQLAlchemy does not recognise (UROWID, XMLTYPE, SDO_GEOMETRY, objects, ...)",
        "read the table through a view that converts it to text or a number, or leave the "
        "column out",
    )
