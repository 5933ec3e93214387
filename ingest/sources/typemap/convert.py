"""Values to Arrow, exactly or not at all.

A `Converter` turns one column of a batch into the column's lake type (`ingest.sources.
typemap.lake`): `from_values` takes the Python values a DB-API driver returned (dlt's pyarrow
backend path), `from_arrow` the Arrow array ConnectorX read (the PostgreSQL fast path). Both
give the same Arrow values for the same source values, or raise `Refused` saying what the
value was (its kind, or a special value such as `infinity` or `0000-00-00`; never arbitrary
data, which may be personal) so the plan can name the column.

Nothing here rounds, wraps or drops: Arrow's own conversions run with `safe` checks, dates and
timestamps are checked against the range every reader of the lake understands
(0001-01-01 .. 9999-12-31), and the sentinels drivers use for values outside it (psycopg2:
`date.max` for `infinity`; ConnectorX: year 262142) never pass as dates.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_VALUE_ERRORS = (*_ARROW_ERRORS, OverflowError, TypeError, ValueError, decimal.InvalidOperation)

#: microseconds since 1970 of 0001-01-01 00:00 and of 9999-12-31 23:59:59.999999
MIN_MICROS = -62_135_596_800_000_000
MAX_MICROS = 253_402_300_799_999_999
#: days since 1970 of 0001-01-01 and 9999-12-31
MIN_DAYS, MAX_DAYS = -719_162, 2_932_896
MICROS_PER_DAY = 86_400_000_000
#: what ConnectorX (chrono) reads for PostgreSQL's infinite timestamps and dates
CONNECTORX_INFINITY = {
    8_210_266_876_799_999_999: "infinity",
    -8_334_601_228_800_000_000: "-infinity",
    95_026_236: "infinity",
    -96_465_292: "-infinity",
}


class Refused(ValueError):
    """A value the column's lake type cannot hold exactly. `reason` completes "the column
    ..." (e.g. "holds 'infinity'"); it quotes only special values, never ordinary data."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unrepresentable:
    """A driver's text for a value that has no Python equivalent (psycopg2 casters: infinite
    and BC dates, years after 9999, time 24:00:00). Never lands: converters refuse it."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Unrepresentable({self.text!r})"


def describe(value: Any) -> str:
    """What a refused value was, without quoting ordinary data."""
    if isinstance(value, Unrepresentable):
        if value.text in ("infinity", "-infinity"):
            return f"holds {value.text!r}"
        return f"holds {value.text!r}, a date before 0001 or after 9999"
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        return f"holds {str(value)!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"holds {value!r}"
    if isinstance(value, str) and value in _SPECIAL_TEXT:
        return f"holds {value!r}"
    kind = {
        str: "a text value",
        bytes: "a binary value",
        int: "an integer",
        float: "a floating-point value",
        decimal.Decimal: "a decimal value that does not fit",
        bool: "a boolean",
    }.get(type(value), f"a {type(value).__name__} value")
    return f"holds {kind}"


_SPECIAL_TEXT = {"NaN", "Infinity", "-Infinity", "infinity", "-infinity", "24:00:00"}


def _first_refused(values: Sequence[Any], arrow_type: pa.DataType) -> Refused:
    """The reason the first value Arrow cannot convert on its own is refused."""
    for value in values:
        if value is None:
            continue
        try:
            pa.array([value], type=arrow_type)
        except _VALUE_ERRORS:
            return Refused(describe(value))
    return Refused("holds a value Arrow could not convert")


class Converter:
    """Values of one column to its lake Arrow type (see module doc)."""

    def __init__(
        self,
        arrow_type: pa.DataType,
        accept: tuple[type, ...] | None = None,
        dates_as_text: bool = False,
    ):
        self.arrow = arrow_type
        #: Python types a value may have (None: any the Arrow conversion takes); drivers of
        #: loosely typed sources (SQLite, zero dates of MySQL) are checked value by value
        self.accept = accept
        #: the driver returns a date it cannot convert as its text (PyMySQL: zero dates)
        self.dates_as_text = dates_as_text

    def check_types(self, values: Sequence[Any]) -> None:
        if self.accept is None:
            return
        accept = self.accept
        for value in values:
            if value is not None and type(value) not in accept:
                if self.dates_as_text and isinstance(value, str):
                    raise Refused(f"holds {value!r} (a zero, partial or invalid date: no day)")
                raise Refused(describe(value))

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        self.check_types(values)
        prepared = self.prepare(values)
        try:
            return pa.array(prepared, type=self.arrow, from_pandas=False)
        except _VALUE_ERRORS:
            raise _first_refused(prepared, self.arrow) from None

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        """Values as Arrow converts them to the lake type (hook)."""
        return values

    def from_arrow(self, array: Any) -> Any:
        try:
            return array.cast(self.arrow, safe=True)
        except _ARROW_ERRORS as exc:
            raise Refused(f"holds a value {self.arrow} cannot hold ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


class FloatFromSingle(Converter):
    """A 4-byte float (PostgreSQL real, MySQL FLOAT read as DOUBLE, SQL Server real, Oracle
    BINARY_FLOAT) widened to float64. Widening is exact; the driver's text of a real (its
    shortest decimal) is rounded back to the real it denotes first, so both read paths give
    the same float64."""

    def __init__(self) -> None:
        super().__init__(pa.float64())

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        self.check_types(values)
        try:
            single = pa.array(values, type=pa.float32(), from_pandas=False)
        except _VALUE_ERRORS:
            raise _first_refused(values, pa.float32()) from None
        return single.cast(pa.float64())

    def from_arrow(self, array: Any) -> Any:
        return array.cast(pa.float32(), safe=False).cast(pa.float64())


def _range_check(array: Any, low: int, high: int, what: str) -> None:
    """Refuse when a date/time value (as its integer) lies outside low..high."""
    if len(array) == 0 or array.null_count == len(array):
        return
    bounds = pc.min_max(array)
    smallest, largest = bounds["min"].as_py(), bounds["max"].as_py()
    for value in (smallest, largest):
        if value is None or low <= value <= high:
            continue
        if value in CONNECTORX_INFINITY:
            raise Refused(f"holds {CONNECTORX_INFINITY[value]!r}")
        raise Refused(f"holds {what}")


class Timestamp(Converter):
    """Timestamps in microseconds, 0001-01-01 .. 9999-12-31 23:59:59.999999 (UTC for an
    instant). Aware values in a column without zone are refused (which zone was meant?)."""

    def __init__(
        self, utc: bool, accept: tuple[type, ...] | None = None, dates_as_text: bool = False
    ):
        super().__init__(pa.timestamp("us", tz="UTC" if utc else None), accept, dates_as_text)
        self.utc = utc

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        if not self.utc:
            for value in values:
                if isinstance(value, dt.datetime) and value.tzinfo is not None:
                    raise Refused("holds a timestamp with a time zone offset")
        return super().from_values(values)

    def from_arrow(self, array: Any) -> Any:
        as_int = array.cast(pa.int64()) if not pa.types.is_integer(array.type) else array
        unit = getattr(array.type, "unit", "us")
        if unit == "ns":
            as_int = pc.divide(as_int, 1000)  # ConnectorX's ns hold microseconds
        _range_check(as_int, MIN_MICROS, MAX_MICROS, "a timestamp before 0001 or after 9999")
        return super().from_arrow(array)


class Date(Converter):
    """Dates 0001-01-01 .. 9999-12-31."""

    def __init__(self, accept: tuple[type, ...] | None = None, dates_as_text: bool = False):
        super().__init__(pa.date32(), accept, dates_as_text)

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        for value in values:
            if type(value) is dt.datetime:  # a date column never holds a time of day
                raise Refused("holds a timestamp")
        return super().from_values(values)

    def from_arrow(self, array: Any) -> Any:
        _range_check(array.cast(pa.int32()), MIN_DAYS, MAX_DAYS, "a date before 0001 or after 9999")
        return super().from_arrow(array)


class TimeFromMicros(Converter):
    """A time of day read as microseconds since midnight (PostgreSQL `time`: both drivers
    turn 24:00:00 into 00:00:00, so the SELECT reads the number): 24:00:00 is refused."""

    def __init__(self) -> None:
        super().__init__(pa.time64("us"))

    def _checked(self, micros: pa.Array) -> pa.Array:
        _range_check(micros, 0, MICROS_PER_DAY - 1, "'24:00:00'")
        return micros.cast(self.arrow)

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        try:
            micros = pa.array(values, type=pa.int64(), from_pandas=False)
        except _VALUE_ERRORS:
            raise _first_refused(values, pa.int64()) from None
        return self._checked(micros)

    def from_arrow(self, array: Any) -> Any:
        return self._checked(array.cast(pa.int64()))


class DecimalFromText(Converter):
    """A decimal read as the source's text (no driver or Arrow reader in between that holds
    fewer digits): parsed by Arrow, which refuses what does not fit precision and scale
    instead of rounding; NaN and infinities are refused."""

    def __init__(self, arrow_type: pa.DataType):
        super().__init__(arrow_type)

    def _parse(self, strings: Any) -> Any:
        try:
            return pc.cast(strings, self.arrow, safe=True)
        except _ARROW_ERRORS:
            pass
        for value in strings.to_pylist():
            if value is None:
                continue
            try:
                pc.cast(pa.array([value]), self.arrow, safe=True)
            except _ARROW_ERRORS:
                if value in _SPECIAL_TEXT:
                    raise Refused(f"holds {value!r}") from None
                raise Refused(f"holds a value with more digits than {self.arrow}") from None
        raise Refused("holds a value Arrow could not convert")

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        try:
            strings = pa.array(values, type=pa.string(), from_pandas=False)
        except _VALUE_ERRORS:
            raise _first_refused(values, pa.string()) from None
        return self._parse(strings)

    def from_arrow(self, array: Any) -> Any:
        return self._parse(array.cast(pa.string()))


class DecimalFromNumber(Converter):
    """SQLite NUMERIC(p,s) columns hold integers and 8-byte floats: a float lands as the
    shortest decimal that reads back as it (`repr`), if that fits the declared precision and
    scale; otherwise it is refused (never rounded to the scale)."""

    def __init__(self, arrow_type: pa.DataType):
        super().__init__(arrow_type, accept=(int, float, decimal.Decimal))

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        prepared = []
        for value in values:
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise Refused(describe(value))
                value = decimal.Decimal(repr(value))
            prepared.append(value)
        return prepared


class FloatFromNumber(Converter):
    """SQLite REAL and NUMERIC columns hold 8-byte floats and integers: an integer lands as
    the float64 equal to it, or is refused when none is (beyond 2^53, odd)."""

    def __init__(self) -> None:
        super().__init__(pa.float64(), accept=(float, int))

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        prepared = []
        for value in values:
            if type(value) is int:
                as_float = float(value) if abs(value) < 2**1023 else math.inf
                if not math.isfinite(as_float) or int(as_float) != value:
                    raise Refused("holds an integer no float64 equals")
                value = as_float
            prepared.append(value)
        return prepared


class Boolean(Converter):
    """Booleans; sources that store them as numbers (SQLite, MySQL BIT(1)) give 0 or 1: any
    other number is refused."""

    def __init__(self, from_numbers: bool = False):
        super().__init__(pa.bool_(), accept=(bool, int) if from_numbers else None)
        self.from_numbers = from_numbers

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        if not self.from_numbers:
            return values
        prepared = []
        for value in values:
            if type(value) is int:
                if value not in (0, 1):
                    raise Refused("holds a number other than 0 and 1")
                value = value == 1
            prepared.append(value)
        return prepared


_ISO = re.compile(
    r"^(?P<date>[+-]?\d{4,}-\d{2}-\d{2})"
    r"(?:[ T](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d{1,9}))?)?"
    r"\s*(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _fraction_micros(fraction: str | None) -> int:
    """Microseconds of a fraction of up to 9 digits; digits beyond the sixth must be 0."""
    if not fraction:
        return 0
    if len(fraction) > 6:
        if fraction[6:].strip("0"):
            raise Refused(
                "holds a time with a fraction of a second finer than a microsecond "
                f"({len(fraction)} digits)"
            )
        fraction = fraction[:6]
    return int(fraction.ljust(6, "0"))


def parse_timestamp(text: str, utc: bool) -> dt.datetime | dt.date:
    """`YYYY-MM-DD[ HH:MM[:SS[.fffffffff]]][offset]` as the sources print it; years outside
    1..9999 and fractions finer than microseconds are refused."""
    match = _ISO.match(text.strip())
    if not match:
        raise Refused("holds a text value that is not a date and time")
    date_text = match["date"]
    if date_text.startswith(("-", "+")) or len(date_text) > 10:
        sign_year = date_text.lstrip("+")
        if sign_year.startswith("-") or int(sign_year.split("-")[0]) > 9999:
            raise Refused("holds a date before 0001 or after 9999")
        date_text = sign_year
    try:
        day = dt.date.fromisoformat(date_text)
        clock = dt.time.fromisoformat(match["time"]) if match["time"] else dt.time()
    except ValueError:
        raise Refused(describe(text)) from None
    value = dt.datetime.combine(day, clock).replace(microsecond=_fraction_micros(match["fraction"]))
    offset = match["offset"]
    if offset:
        if offset == "Z":
            zone = dt.UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
            zone = dt.timezone(sign * dt.timedelta(minutes=minutes))
        if not utc:
            raise Refused("holds a timestamp with a time zone offset")
        try:
            value = value.replace(tzinfo=zone).astimezone(dt.UTC)
        except OverflowError:
            raise Refused("holds a date before 0001 or after 9999") from None
    elif utc:
        value = value.replace(tzinfo=dt.UTC)
    return value


class TimestampFromText(Timestamp):
    """Timestamps the SELECT turns into text because the driver would lose digits or the
    zone (SQL Server datetime2(7)/datetimeoffset, Oracle TIMESTAMP(9)/WITH TIME ZONE,
    SQLite's text dates): parsed exactly, or refused."""

    def __init__(self, utc: bool, date_only: bool = False):
        super().__init__(utc, accept=(str,))
        self.date_only = date_only
        if date_only:
            self.arrow = pa.date32()

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        prepared: list[Any] = []
        for value in values:
            if value is None:
                prepared.append(None)
                continue
            parsed = parse_timestamp(value, self.utc)
            if self.date_only:
                if isinstance(parsed, dt.datetime) and parsed.time() != dt.time():
                    raise Refused("holds a date with a time of day")
                parsed = parsed.date() if isinstance(parsed, dt.datetime) else parsed
            prepared.append(parsed)
        return prepared

    def from_values(self, values: Sequence[Any]) -> pa.Array:
        return Converter.from_values(self, values)


_CLOCK = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


class TimeFromText(Converter):
    """A time of day the SELECT turns into text (SQL Server time(7), SQLite): exact to the
    microsecond, or refused."""

    def __init__(self) -> None:
        super().__init__(pa.time64("us"), accept=(str,))

    def prepare(self, values: Sequence[Any]) -> Sequence[Any]:
        prepared: list[Any] = []
        for value in values:
            if value is None:
                prepared.append(None)
                continue
            match = _CLOCK.match(value.strip())
            if not match:
                raise Refused(describe(value))
            hours, minutes, seconds = (int(match[i]) for i in (1, 2, 3))
            if hours > 23 or minutes > 59 or seconds > 59:
                raise Refused(describe(value) if value in _SPECIAL_TEXT else "holds no time of day")
            prepared.append(
                dt.time(hours, minutes, seconds, _fraction_micros(match[4]))  # exact
            )
        return prepared


class Text(Converter):
    """Text; `strict` (loosely typed sources): a value of another type is refused instead of
    being turned into text (Arrow would take bytes as UTF-8)."""

    def __init__(self, strict: bool = False):
        super().__init__(pa.string(), accept=(str,) if strict else None)


class Binary(Converter):
    """Bytes (psycopg2 gives memoryviews)."""

    def __init__(self, strict: bool = False):
        super().__init__(pa.binary(), accept=(bytes, bytearray, memoryview) if strict else None)
