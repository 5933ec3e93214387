"""The fast path for PostgreSQL: ConnectorX streaming Arrow, cast to the exact reflected types.

dlt's pyarrow backend builds a Python object per value (~8 s per million rows here); ConnectorX
reads PostgreSQL's binary protocol in Rust straight into Arrow (~1.3 s with 2 partitions). Its
types are not exact (numeric(12,2) arrives as decimal128(38,10), int4 as int64 when streaming),
so every batch is cast to the Arrow schema that dlt derives from the reflected table - the same
schema the pyarrow backend produces. Casts are `safe`: a value that does not fit fails the job
instead of being altered.

The fast path is used only when every column has a type ConnectorX reads exactly (see
`fast_path_blocker`); otherwise the job falls back to dlt's pyarrow backend, and the log says
which column caused it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pyarrow as pa
import sqlalchemy as sa
from dlt.sources.sql_database.helpers import ConnectorXTableLoader

from ingest.sources.snapshot import EmptySnapshot, hinted_schema

log = logging.getLogger(__name__)

#: ConnectorX reads numeric as decimal128(38, 10) through rust_decimal, which holds at most 28
#: significant digits: a value with 29 or more (possible in numeric(29..38, s)) makes it panic
#: (`pyo3_runtime.PanicException`, "decimal scale is not equal to expected scale"), so only
#: numeric(p <= 28, s <= 10) is exact on this path
MAX_DECIMAL_PRECISION, MAX_DECIMAL_SCALE = 28, 10

#: INGEST_READ_PARTITIONS=auto: a whole-table read of a table PostgreSQL estimates at this many
#: rows or more is split in AUTO_PARTITIONS reads (bench/warm.py: ~0.1 s less per million rows
#: on 2 cores; a smaller table would pay the range query and a second connection for nothing)
AUTO_PARTITION_ROWS = 500_000
AUTO_PARTITIONS = 2


def auto_partitions(whole_table: bool, estimated_rows: int | None, cores: int) -> int:
    """How many reads `INGEST_READ_PARTITIONS=auto` splits a table into: 2 for a whole-table
    read (no watermark bound: FULL jobs, first loads) of a large table on 2 or more cores;
    else 1. An incremental read of new rows is small and ordered by its watermark."""
    if not whole_table or cores < 2 or estimated_rows is None:
        return 1
    return AUTO_PARTITIONS if estimated_rows >= AUTO_PARTITION_ROWS else 1


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        return len(sched_getaffinity(0))
    return os.cpu_count() or 1


def fast_path_blocker(columns: list[dict[str, Any]]) -> str | None:
    """Why the fast path cannot be exact for these reflected columns, or None when it can.

    Exact: integers, floats, booleans, plain strings, timestamps (with or without time zone),
    dates and numeric(p,s) with p <= 28 and s <= 10. Anything else (unbounded numeric, enums,
    arrays, json, intervals, time, uuid, bytea, ...) goes through dlt's pyarrow backend.
    """

    for column in columns:
        sql_type, name = column["type"], column["name"]
        if isinstance(sql_type, sa.Float | sa.Integer | sa.Boolean | sa.DateTime | sa.Date):
            continue
        if isinstance(sql_type, sa.Numeric):
            precision, scale = sql_type.precision, sql_type.scale
            if precision is None or scale is None:
                return f"column {name} is numeric without precision/scale"
            if precision > MAX_DECIMAL_PRECISION or scale > MAX_DECIMAL_SCALE:
                return (
                    f"column {name} is numeric({precision},{scale}); ConnectorX reads "
                    f"numeric(p<={MAX_DECIMAL_PRECISION},s<={MAX_DECIMAL_SCALE}) exactly"
                )
            continue
        if isinstance(sql_type, sa.String) and not isinstance(sql_type, sa.Enum):
            continue
        return f"column {name} has type {sql_type}"
    return None


def exact_schema(read: Any, hinted: Any) -> Any:
    """The schema to cast ConnectorX batches to: dlt's type for every column it reflects with a
    type (as the pyarrow backend does), and for the others (e.g. real, double precision) the
    type the pyarrow backend would infer from Python values: floats and ints widened to 64 bit.
    So a job's lake schema does not change when it moves between the two paths."""

    fields = []
    for field in read:
        if field.name in hinted.names:
            fields.append(hinted.field(field.name))
        elif pa.types.is_floating(field.type):
            fields.append(field.with_type(pa.float64()))
        elif pa.types.is_integer(field.type):
            fields.append(field.with_type(pa.int64()))
        else:
            fields.append(field)
    return pa.schema(fields)


def connectorx_url(url: Any) -> str:
    """A SQLAlchemy URL as ConnectorX takes it: no driver part, the query percent-encoded
    (SQLAlchemy writes a space as `+`, which ConnectorX keeps; the session `options` carrying
    the job's timeouts hold spaces)."""
    text = url._replace(drivername=url.get_backend_name()).render_as_string(hide_password=False)
    base, _, query = text.partition("?")
    if not query:
        return base
    return f"{base}?{urlencode(parse_qsl(query, keep_blank_values=True), quote_via=quote)}"


class ExactConnectorXReader(ConnectorXTableLoader):
    """ConnectorX `arrow_stream`, optionally partitioned, each batch cast to the exact schema."""

    def get_connection_url(self) -> str:
        return connectorx_url(self.engine.url)

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        # connectorx: the optional `fast` extra (ingest.runtime.optional decides to use it)
        import connectorx as cx

        options = dict(backend_kwargs or {})
        partitions = options.pop("partitions", None)
        estimated_rows = options.pop("estimated_rows", None)
        if partitions is None:
            partitions = self._auto_partitions(estimated_rows)
        hinted = hinted_schema(self.columns)
        query = self.compile_query(self.make_query())
        kwargs: dict[str, Any] = {
            "return_type": "arrow_stream",
            "batch_size": self.chunk_size,
            "protocol": "binary",
        }
        key = self._partition_key() if partitions > 1 else None
        if key is not None:
            kwargs.update(partition_on=key, partition_num=partitions)
        reader = cx.read_sql(self.get_connection_url(), query, **kwargs)
        target = None
        for batch in reader:
            if batch.num_rows == 0:
                continue
            if target is None:
                target = exact_schema(batch.schema, hinted)
            yield pa.Table.from_batches([batch]).cast(target, safe=True)

    def _auto_partitions(self, estimated_rows: int | None) -> int:
        if self._partition_key() is None:
            return 1
        whole_table = self.incremental is None or (
            self.last_value is None and self.end_value is None
        )
        partitions = auto_partitions(whole_table, estimated_rows, usable_cores())
        log.debug("table %s: %d read(s) (INGEST_READ_PARTITIONS=auto)", self.table, partitions)
        return partitions

    def _partition_key(self) -> str | None:
        """A single integer primary key column to split the read on, if the table has one."""
        keys = [c for c in self.table.primary_key.columns]
        if len(keys) != 1:
            return None
        python_type = None
        try:
            python_type = keys[0].type.python_type
        except NotImplementedError:
            return None
        return keys[0].name if python_type is int else None


class ExactConnectorXLoader(EmptySnapshot, ExactConnectorXReader):
    """The fast path's table loader: exact ConnectorX reads, empty snapshots for FULL jobs."""
