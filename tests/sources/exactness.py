"""Helpers of the type-exactness tests (tests/sources/test_types_*.py): run a job, read what
landed (the Parquet and the DuckDB view `dlt-ingest query` reads), compare value for value,
typed, floats bit for bit."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ingest.config import JobConfig
from ingest.views.duck import run_query
from ingest.views.refresh import refresh_views
from tests.conftest import read_lake_table
from tests.fixtures.jobs import run_task


def land(job: JobConfig, lake: str, run_id: str = "r") -> dict[str, Any]:
    result = run_task({"run_id": run_id, "job": job.to_dict(), "destination": lake})
    assert result["status"] == "SUCCESS", result["error"]
    return result


def fail(job: JobConfig, lake: str) -> str:
    """Run a job that must fail; its error. Nothing of its table may have landed."""
    result = run_task({"run_id": "r", "job": job.to_dict(), "destination": lake})
    assert result["status"] == "FAILED", result
    assert read_lake_table(lake, job.source_name, job.lake_table) is None
    return result["error"]


def parquet(lake: str, job: JobConfig) -> pa.Table:
    """The job's landed rows (completed loads), sorted by id, without dlt's columns."""
    table = read_lake_table(lake, job.source_name, job.lake_table)
    assert table is not None
    names = [n for n in table.column_names if not n.startswith("_dlt")]
    return table.select(names).sort_by("id")


def data_schema(table: pa.Table) -> list[tuple[str, str]]:
    return [(f.name, str(f.type)) for f in table.schema]


def view(lake: str, job: JobConfig, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows the job's DuckDB view returns through `query` (views written first)."""
    report = refresh_views([job], lake)
    assert not report.errors, report.errors
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    result = run_query(
        lake,
        f'SELECT {quoted} FROM "{job.source_name}"."{job.lake_table}" ORDER BY "id"',
        max_rows=100_000,
    )
    assert not result.truncated
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _float_bits(value: float) -> bytes:
    return struct.pack("<d", value)


def same(left: Any, right: Any) -> bool:
    """Equal value and type: floats bit for bit (NaN is NaN, -0.0 is not 0.0), decimals with
    their scale, timestamps as instants with the same awareness."""
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, float) or isinstance(right, float):
        if not (isinstance(left, float) and isinstance(right, float)):
            return False
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return _float_bits(left) == _float_bits(right)
    if isinstance(left, decimal.Decimal) or isinstance(right, decimal.Decimal):
        return (
            isinstance(left, decimal.Decimal)
            and isinstance(right, decimal.Decimal)
            and left == right
            and left.as_tuple().exponent == right.as_tuple().exponent
        )
    if isinstance(left, dt.datetime) or isinstance(right, dt.datetime):
        if not (isinstance(left, dt.datetime) and isinstance(right, dt.datetime)):
            return False
        return (left.tzinfo is None) == (right.tzinfo is None) and left == right
    if isinstance(left, bytes | bytearray | memoryview) or isinstance(
        right, bytes | bytearray | memoryview
    ):
        return bytes(left) == bytes(right)
    return type(left) is type(right) and left == right


def assert_same_rows(
    expected: Sequence[Mapping[str, Any]], got: Sequence[Mapping[str, Any]], what: str
) -> None:
    assert len(expected) == len(got), (what, len(expected), len(got))
    for index, (want, have) in enumerate(zip(expected, got, strict=True)):
        for name, value in want.items():
            assert same(value, have[name]), (what, index, name, value, have[name])


def float32(value: float) -> float:
    """The float64 of the float32 nearest `value` (what a 4-byte float column holds)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]
