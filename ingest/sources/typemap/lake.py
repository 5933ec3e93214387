"""The types a column can land as: each one Arrow type in the Parquet and one dlt column type
in the lake's schema (which the views read), always the same pair.

The set is small on purpose: every view dialect (DuckDB, Synapse, Databricks, Spark) reads
each of them exactly. Decimals are limited to 38 digits (the most any of those engines holds);
a source value that needs more lands as text (see the dialect maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

#: the most digits a decimal may have in the lake (DuckDB, Synapse, Spark, Databricks)
MAX_DECIMAL_PRECISION = 38


@dataclass(frozen=True)
class LakeType:
    """What lands for one column: its Arrow type and its dlt column type."""

    #: dlt data type: bool, bigint, double, decimal, text, binary, date, timestamp, time
    data_type: str
    arrow: pa.DataType
    #: dlt precision: integer bits (32; None = 64), decimal digits, text length in characters
    precision: int | None = None
    scale: int | None = None
    #: timestamps: an instant (UTC) or a wall-clock time without zone
    timezone: bool | None = None

    def hint(self, name: str, nullable: bool) -> dict[str, Any]:
        """The dlt column schema of a column of this type. Precision, scale and time zone
        are always given (None where the type has none), so a column whose lake type changed
        (e.g. an unbounded numeric, decimal(38,9) before, text now) keeps no stale ones in
        the lake's schema."""
        return {
            "name": name,
            "data_type": self.data_type,
            "nullable": nullable,
            "precision": self.precision,
            "scale": self.scale,
            "timezone": self.timezone,
        }

    def describe(self) -> str:
        """The lake type in a message or the README: `decimal(12,2)`, `timestamp (UTC)`."""
        if self.data_type == "decimal":
            return f"decimal({self.precision},{self.scale})"
        if self.data_type == "bigint":
            return f"int{self.precision or 64}"
        if self.data_type == "timestamp":
            return "timestamp (UTC)" if self.timezone else "timestamp (no zone)"
        return {"double": "float64", "time": "time (microseconds)"}.get(
            self.data_type, self.data_type
        )


BOOL = LakeType("bool", pa.bool_())
INT32 = LakeType("bigint", pa.int32(), precision=32)
INT64 = LakeType("bigint", pa.int64())
FLOAT64 = LakeType("double", pa.float64())
DATE = LakeType("date", pa.date32())
TIME = LakeType("time", pa.time64("us"))
TIMESTAMP = LakeType("timestamp", pa.timestamp("us"), timezone=False)
TIMESTAMP_UTC = LakeType("timestamp", pa.timestamp("us", tz="UTC"), timezone=True)
BINARY = LakeType("binary", pa.binary())
TEXT = LakeType("text", pa.string())


def text(length: int | None = None) -> LakeType:
    """Text; `length`: the source's declared maximum in characters (sizes Synapse's VARCHAR)."""
    return LakeType("text", pa.string(), precision=length or None)


def decimal(precision: int, scale: int) -> LakeType:
    """An exact decimal with at most MAX_DECIMAL_PRECISION digits (`fits_decimal` first)."""
    if not fits_decimal(precision, scale):
        raise ValueError(f"decimal({precision},{scale}) does not fit the lake")
    return LakeType("decimal", pa.decimal128(precision, scale), precision=precision, scale=scale)


def fits_decimal(precision: int, scale: int) -> bool:
    return 0 <= scale <= precision <= MAX_DECIMAL_PRECISION and precision > 0


def decimal_for(precision: int | None, scale: int | None) -> tuple[int, int] | None:
    """The lake decimal that holds every value of a source decimal(precision, scale), or None
    when none does (no precision declared, or more than 38 digits).

    A negative scale (PostgreSQL 15+, Oracle: `numeric(3,-2)` holds 12300) keeps whole numbers
    of precision - scale digits; a scale above the precision (`numeric(2,5)` holds 0.00012)
    needs `scale` digits after the point."""
    if precision is None:
        return None
    scale = scale or 0
    if scale < 0:
        precision, scale = precision - scale, 0
    elif scale > precision:
        precision = scale
    return (precision, scale) if fits_decimal(precision, scale) else None
