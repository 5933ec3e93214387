"""PostgreSQL's type map (README, "Sources: types").

Native Arrow types where both read paths (psycopg2 through dlt's pyarrow backend, ConnectorX
on the fast path) give the exact value: booleans, integers, floats, numeric(p,s) up to 38
digits, dates, timestamps (with time zone: UTC), time, bytea, text. Every other type lands as
the text PostgreSQL prints for it (`CAST(col AS TEXT)` in the SELECT): json (its input text,
byte for byte), jsonb (canonical text), timetz, interval, arrays, unbounded numeric, money,
uuid, inet/cidr/macaddr, xml, ranges, bit strings, enums, composite and unknown types. JSON
`null` stays the text `null`, apart from SQL NULL.

Values no lake type holds are refused naming the column: infinite, BC and after-9999 dates
and timestamps, time 24:00:00, NaN in numeric(p,s). psycopg2 would return `date.max` for
`infinity` and 00:00:00 for 24:00:00, so the pyarrow path installs casters that hand those
through as `Unrepresentable` (`session`); ConnectorX's sentinels are caught by range checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ingest.sources.typemap import lake
from ingest.sources.typemap.convert import (
    Binary,
    Boolean,
    Converter,
    Date,
    DecimalFromText,
    FloatFromSingle,
    Text,
    TimeFromMicros,
    Timestamp,
    Unrepresentable,
)
from ingest.sources.typemap.plan import ColumnPlan, Refusal, type_name

#: numeric(p,s) ConnectorX reads exactly: rust_decimal holds 28 significant digits and
#: ConnectorX reads numeric as decimal(38,10) (more digits or decimals: read as text)
CONNECTORX_DECIMAL = (28, 10)
#: string types both drivers read as they are (other String subclasses: enums, citext, name,
#: "char": read as text by the SELECT)
PLAIN_STRINGS = (sa.TEXT, sa.VARCHAR, sa.CHAR)

#: renders the reflected types in messages
DIALECT = postgresql.dialect()


def as_text(column: Any) -> Any:
    return sa.cast(column, sa.Text)


def time_micros(column: Any) -> Any:
    """A time of day as microseconds since midnight (24:00:00 stays 86400000000)."""
    return sa.cast(sa.extract("epoch", column) * sa.literal_column("1000000"), sa.BigInteger)


def _text(name: str, source: str) -> ColumnPlan:
    return ColumnPlan(name, source, lake.TEXT, Text(), as_text, as_text=True)


def plan_column(name: str, sql_type: Any) -> ColumnPlan | Refusal:
    source = type_name(sql_type, DIALECT)
    domain = isinstance(sql_type, postgresql.DOMAIN)
    if domain and isinstance(sql_type.data_type, sa.types.TypeEngine):
        inner = plan_column(name, sql_type.data_type)
        return inner
    if isinstance(sql_type, sa.Boolean):
        return ColumnPlan(name, source, lake.BOOL, Boolean())
    if isinstance(sql_type, sa.SmallInteger):
        return ColumnPlan(name, source, lake.INT32, Converter(lake.INT32.arrow))
    if isinstance(sql_type, sa.Integer):
        return ColumnPlan(name, source, lake.INT64, Converter(lake.INT64.arrow))
    if isinstance(sql_type, sa.Float):
        if isinstance(sql_type, sa.REAL) or (sql_type.precision or 53) <= 24:
            return ColumnPlan(name, source, lake.FLOAT64, FloatFromSingle())
        return ColumnPlan(name, source, lake.FLOAT64, Converter(lake.FLOAT64.arrow))
    if isinstance(sql_type, sa.Numeric):
        return _numeric(name, source, sql_type)
    if isinstance(sql_type, sa.DateTime):
        kind = lake.TIMESTAMP_UTC if sql_type.timezone else lake.TIMESTAMP
        return ColumnPlan(name, source, kind, Timestamp(utc=bool(sql_type.timezone)))
    if isinstance(sql_type, sa.Date):
        return ColumnPlan(name, source, lake.DATE, Date())
    if isinstance(sql_type, sa.Time) and not sql_type.timezone:
        return ColumnPlan(name, source, lake.TIME, TimeFromMicros(), time_micros)
    if isinstance(sql_type, sa.Enum):
        return _text(name, source)
    if type(sql_type) in PLAIN_STRINGS:
        return ColumnPlan(name, source, lake.text(sql_type.length), Text())
    if isinstance(sql_type, sa.LargeBinary):
        return ColumnPlan(name, source, lake.BINARY, Binary())
    # json, jsonb, timetz, interval, arrays, money, uuid, network, xml, ranges, bit strings,
    # enums, citext, composite and unknown types: as PostgreSQL prints them
    return _text(name, source)


def _numeric(name: str, source: str, sql_type: Any) -> ColumnPlan:
    fits = lake.decimal_for(sql_type.precision, sql_type.scale)
    if fits is None:  # numeric without precision or with more than 38 digits
        return _text(name, source)
    kind = lake.decimal(*fits)
    cx_precision, cx_scale = CONNECTORX_DECIMAL
    native = (
        sql_type.scale is not None
        and 0 <= sql_type.scale <= cx_scale
        and sql_type.precision <= cx_precision
    )
    if native:
        return ColumnPlan(name, source, kind, Converter(kind.arrow))
    return ColumnPlan(name, source, kind, DecimalFromText(kind.arrow), as_text)


# ------------------------------------------------------------------------------------------
# the pyarrow path's session: UTC, and casters that do not hide infinite or BC dates

#: type oids of date, timestamp and timestamptz
DATE_OID, TIMESTAMP_OID, TIMESTAMPTZ_OID = 1082, 1114, 1184


def _unrepresentable(text: str) -> bool:
    """Whether psycopg2 cannot give this date/timestamp text as its value (it would return
    date.max for `infinity` or fail on the year)."""
    return (
        text in ("infinity", "-infinity")
        or text.endswith(" BC")
        or (len(text) > 4 and text[4] != "-")  # a year of 5 or more digits
    )


def _extensions() -> ModuleType:
    """psycopg2's type casting: the one lazy import of the driver here."""
    # psycopg2: imported only when a PostgreSQL table is read through dlt's pyarrow backend
    import psycopg2.extensions

    return psycopg2.extensions


def _caster(oid: int, name: str, base: Any) -> Any:
    def cast(value: str | None, cursor: Any) -> Any:
        if value is None:
            return None
        if _unrepresentable(value):
            return Unrepresentable(value)
        return base(value, cursor)

    return _extensions().new_type((oid,), name, cast)


def _casters() -> dict[int, Any]:
    ext = _extensions()
    return {
        DATE_OID: _caster(DATE_OID, "INGEST_DATE", ext.PYDATE),
        TIMESTAMP_OID: _caster(TIMESTAMP_OID, "INGEST_TIMESTAMP", ext.PYDATETIME),
        TIMESTAMPTZ_OID: _caster(TIMESTAMPTZ_OID, "INGEST_TIMESTAMPTZ", ext.PYDATETIMETZ),
    }


@contextmanager
def session(connection: Any) -> Iterator[None]:
    """For the read's transaction: timestamps with time zone printed in UTC (psycopg2 parses
    what the session's TimeZone prints; `0001-01-01 00:00+00` in New York is a BC date), and
    the casters installed on this connection only, removed afterwards."""
    connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
    raw = connection.connection.dbapi_connection
    registry = getattr(raw, "string_types", None)
    saved: dict[int, Any] = {}
    if registry is not None:
        for oid, caster in _casters().items():
            saved[oid] = registry.get(oid)
            registry[oid] = caster
    try:
        yield
    finally:
        if registry is not None:
            for oid, previous in saved.items():
                if previous is None:
                    registry.pop(oid, None)
                else:
                    registry[oid] = previous
