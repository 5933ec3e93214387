"""MySQL's and MariaDB's type map (README, "Sources: types"), read through PyMySQL's text
protocol.

- DOUBLE lands as float64: the server prints a double's shortest round-trip text. FLOAT
  (4 bytes) is printed with 6 digits only (`1.2345678` reads back as `1.23457`), so the
  SELECT widens it to a double first (`col * 1E0`, exact) and the value lands as the float64
  of the stored float.
- BIGINT UNSIGNED (up to 18446744073709551615) lands as decimal(20,0); BIT(1) as a boolean,
  BIT(2..63) as int64, BIT(64) as decimal(20,0).
- TIME is a duration (-838:59:59.999999 .. 838:59:59.999999), not a time of day: it lands as
  the server's text. JSON lands as text; DECIMAL(p>38) as its text.
- A zero or partial date (`0000-00-00`, `2020-00-15`; sql_mode without NO_ZERO_DATE) has no
  calendar day: the job is refused naming the column (PyMySQL returns it as a string).
- TIMESTAMP lands as the server shows it to the session (its `time_zone`), without zone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ingest.sources.typemap import lake
from ingest.sources.typemap.convert import (
    Binary,
    Boolean,
    Converter,
    Date,
    FloatFromSingle,
    Text,
    Timestamp,
)
from ingest.sources.typemap.plan import ColumnPlan, Refusal, type_name

UNSIGNED_BIGINT = lake.decimal(20, 0)

#: renders the reflected types in messages
DIALECT = mysql.dialect()


def as_text(column: Any) -> Any:
    return sa.cast(column, sa.Text)  # CAST(col AS CHAR), in the connection's utf8mb4


def as_double(column: Any) -> Any:
    """A 4-byte FLOAT as the double it is exactly (multiplying by 1 keeps -0)."""
    return column * sa.literal_column("1E0")


def as_unsigned(column: Any) -> Any:
    return sa.cast(column, mysql.INTEGER(unsigned=True))


def _text(name: str, source: str) -> ColumnPlan:
    return ColumnPlan(name, source, lake.TEXT, Text(), as_text, fast=False, as_text=True)


def _plan(name: str, source: str, kind: lake.LakeType, converter: Converter, reader: Any = None):
    return ColumnPlan(name, source, kind, converter, reader, fast=False)


def plan_column(name: str, sql_type: Any) -> ColumnPlan | Refusal:
    source = type_name(sql_type, DIALECT)
    if isinstance(sql_type, mysql.BIT):
        bits = sql_type.length or 1
        if bits == 1:
            return _plan(name, source, lake.BOOL, Boolean(from_numbers=True), as_unsigned)
        kind = lake.INT64 if bits < 64 else UNSIGNED_BIGINT
        return _plan(name, source, kind, Converter(kind.arrow, accept=(int,)), as_unsigned)
    if isinstance(sql_type, sa.Boolean):
        return _plan(name, source, lake.BOOL, Boolean(from_numbers=True))
    if isinstance(sql_type, sa.Float):
        if isinstance(sql_type, mysql.FLOAT) and (sql_type.precision or 0) <= 24:
            return _plan(name, source, lake.FLOAT64, FloatFromSingle(), as_double)
        return _plan(name, source, lake.FLOAT64, Converter(lake.FLOAT64.arrow))
    if isinstance(sql_type, sa.Numeric):
        fits = lake.decimal_for(sql_type.precision, sql_type.scale)
        if fits is None:
            return _text(name, source)
        kind = lake.decimal(*fits)
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, sa.Integer):
        if isinstance(sql_type, mysql.BIGINT) and getattr(sql_type, "unsigned", False):
            return _plan(name, source, UNSIGNED_BIGINT, Converter(UNSIGNED_BIGINT.arrow))
        kind = lake.INT32 if isinstance(sql_type, sa.SmallInteger) else lake.INT64
        return _plan(name, source, kind, Converter(kind.arrow))
    if isinstance(sql_type, mysql.YEAR):
        return _plan(name, source, lake.INT64, Converter(lake.INT64.arrow))
    if isinstance(sql_type, sa.DateTime):
        return _plan(
            name,
            source,
            lake.TIMESTAMP,
            Timestamp(utc=False, accept=(dt.datetime,), dates_as_text=True),
        )
    if isinstance(sql_type, sa.Date):
        return _plan(name, source, lake.DATE, Date(accept=(dt.date,), dates_as_text=True))
    if isinstance(sql_type, sa.Time):
        return _text(name, source)  # a duration: -838:59:59 .. 838:59:59
    if isinstance(sql_type, sa.JSON):
        return _text(name, source)
    if isinstance(sql_type, sa.String):  # CHAR, VARCHAR, TEXT types, ENUM, SET
        length = None if isinstance(sql_type, sa.Enum | mysql.SET) else sql_type.length
        return _plan(name, source, lake.text(length), Text())
    if isinstance(sql_type, sa.types._Binary):  # BINARY, VARBINARY, BLOB types
        return _plan(name, source, lake.BINARY, Binary())
    return Refusal(
        name,
        source,
        "a type SQLAlchemy does not recognise (spatial types, for example)",
        "read the table through a source view that converts it, e.g. ST_AsText(col) or "
        "ST_AsWKB(col), or leave the column out",
    )
