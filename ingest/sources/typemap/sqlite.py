"""SQLite's type map (README, "Sources: types").

SQLite types values, not columns: a declared type is an affinity, and a column can hold a
value of any storage class. The lake type follows the declared type (so the lake schema
never depends on the data), and each value is checked against it: a value of another class
(text in an INTEGER column, a blob in a TEXT column, an integer in a DATETIME column) is
refused naming the column, never converted.

- NUMERIC(p,s)/DECIMAL(p,s) hold integers and 8-byte floats: a float lands as the shortest
  decimal that reads back as it, when that fits (p,s); NUMERIC without precision lands as
  float64 (integers beyond 2^53 are refused).
- DATE, DATETIME, TIMESTAMP and TIME hold ISO text (as SQLAlchemy and Python's sqlite3 write
  them): parsed exactly; text with a zone offset in a column without zone is refused.
- A column without a declared type (or BLOB-like) lands as text and holds only text values.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from ingest.sources.typemap import lake
from ingest.sources.typemap.convert import (
    Binary,
    Boolean,
    Converter,
    DecimalFromNumber,
    FloatFromNumber,
    Text,
    TimeFromText,
    TimestampFromText,
)
from ingest.sources.typemap.plan import ColumnPlan, type_name

#: renders the reflected types in messages
DIALECT = sqlite.dialect()


def _plan(name: str, source: str, kind: lake.LakeType, converter: Converter) -> ColumnPlan:
    return ColumnPlan(name, source, kind, converter, fast=False)


def plan_column(name: str, sql_type: Any) -> ColumnPlan:
    source = type_name(sql_type, DIALECT)
    if isinstance(sql_type, sa.Boolean):
        return _plan(name, source, lake.BOOL, Boolean(from_numbers=True))
    if isinstance(sql_type, sa.Integer):
        return _plan(name, source, lake.INT64, Converter(lake.INT64.arrow, accept=(int,)))
    if isinstance(sql_type, sa.Float):
        return _plan(name, source, lake.FLOAT64, FloatFromNumber())
    if isinstance(sql_type, sa.Numeric):
        fits = lake.decimal_for(sql_type.precision, sql_type.scale)
        if fits is None:
            return _plan(name, source, lake.FLOAT64, FloatFromNumber())
        kind = lake.decimal(*fits)
        return _plan(name, source, kind, DecimalFromNumber(kind.arrow))
    if isinstance(sql_type, sa.DateTime):
        return _plan(name, source, lake.TIMESTAMP, TimestampFromText(utc=False))
    if isinstance(sql_type, sa.Date):
        return _plan(name, source, lake.DATE, TimestampFromText(utc=False, date_only=True))
    if isinstance(sql_type, sa.Time):
        return _plan(name, source, lake.TIME, TimeFromText())
    if isinstance(sql_type, sa.JSON):
        return ColumnPlan(name, source, lake.TEXT, Text(strict=True), fast=False, as_text=True)
    if isinstance(sql_type, sa.String):
        return _plan(name, source, lake.text(sql_type.length), Text(strict=True))
    if isinstance(sql_type, sa.types._Binary):
        return _plan(name, source, lake.BINARY, Binary(strict=True))
    # no declared type (any value): text values only
    return ColumnPlan(name, source, lake.TEXT, Text(strict=True), fast=False, as_text=True)
