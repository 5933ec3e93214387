"""The fast path for PostgreSQL: ConnectorX streaming Arrow, through the job's type plan.

dlt's pyarrow backend builds a Python object per value (~8 s per million rows here); ConnectorX
reads PostgreSQL's binary protocol in Rust straight into Arrow (~1.3 s with 2 partitions). It
runs the same SELECT as the pyarrow path (the plan's: columns it cannot read exactly, such as
json, uuid, intervals or numeric beyond (28,10), are cast to text in SQL), and every batch goes
through the plan's converters (`TablePlan.from_arrow`): its types are not exact (numeric(12,2)
arrives as decimal128(38,10), int4 as int64 when streaming) and it reads infinite timestamps as
year 262142, so values are cast `safe` to the lake types and range-checked. A value that does
not fit fails the job naming the column instead of being altered; both paths land the same
Arrow schema and values.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from dlt.sources.sql_database.helpers import ConnectorXTableLoader

from ingest.errors import is_process_exit
from ingest.limits import shorten
from ingest.sources.snapshot import PlannedRead
from ingest.sources.typemap import TablePlan

log = logging.getLogger(__name__)

#: INGEST_READ_PARTITIONS=auto: a whole-table read of a table PostgreSQL estimates at this many
#: rows or more is split in AUTO_PARTITIONS reads (bench/warm.py: ~0.1 s less per million rows
#: on 2 cores; a smaller table would pay the range query and a second connection for nothing)
AUTO_PARTITION_ROWS = 500_000
AUTO_PARTITIONS = 2
#: how ConnectorX names a column it failed to read: by its position in the SELECT
COLUMN_ERROR = re.compile(r"deserializing column (\d+)|FromSql\((\d+)\)")


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


def connectorx_url(url: Any) -> str:
    """A SQLAlchemy URL as ConnectorX takes it: no driver part, the query percent-encoded
    (SQLAlchemy writes a space as `+`, which ConnectorX keeps; the session `options` carrying
    the job's timeouts hold spaces)."""
    text = url._replace(drivername=url.get_backend_name()).render_as_string(hide_password=False)
    base, _, query = text.partition("?")
    if not query:
        return base
    return f"{base}?{urlencode(parse_qsl(query, keep_blank_values=True), quote_via=quote)}"


#: backend argument: the exported snapshot (PostgreSQL) the read imports
SNAPSHOT = "snapshot"
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?")


def snapshot_statements(snapshot_id: str) -> list[str]:
    """ConnectorX's statements before its read, on the read's own connection: a REPEATABLE
    READ transaction that imports the exported snapshot (the id is checked: it becomes SQL)."""
    if not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise ValueError(f"not a PostgreSQL snapshot id: {snapshot_id[:40]!r}")
    return ["BEGIN ISOLATION LEVEL REPEATABLE READ", f"SET TRANSACTION SNAPSHOT '{snapshot_id}'"]


def _connectorx() -> Any:
    # connectorx: the optional `fast` extra (ingest.runtime.optional decides to use it)
    import connectorx

    return connectorx


def unreadable(plan: TablePlan, exc: BaseException) -> Exception | None:
    """ConnectorX names a column it cannot read by its position in the SELECT ("error
    deserializing column 3: ...", or a panic's "FromSql(3)"): the plan names it. NaN in
    numeric(p,s) ends here. None: the error names no column."""
    text = str(exc)
    match = COLUMN_ERROR.search(text)
    column = plan.column_at(int(match.group(1) or match.group(2))) if match else None
    if column is None:
        return None
    if "NaN" in text:
        return plan.refused_value(column, "holds 'NaN'")
    detail = shorten(text.strip().splitlines()[0] if text.strip() else "", 120)
    if column.lake.data_type in ("date", "timestamp") and "too large" in text:
        return plan.refused_value(
            column, f"holds a date before 0001 or after 9999 (ConnectorX: {detail})"
        )
    return plan.refused_value(column, f"holds a value ConnectorX cannot read ({detail})")


@contextmanager
def _columns_named(plan: TablePlan) -> Iterator[None]:
    """ConnectorX's errors inside: the column it cannot read named by the plan (a Rust panic
    is a BaseException, `ingest.errors`); others pass as they are."""
    try:
        yield
    except BaseException as exc:
        if is_process_exit(exc):
            raise
        named = unreadable(plan, exc)
        if named is None:
            raise
        raise named from exc


def read_arrow(url: str, plan: TablePlan, sql: str) -> Any:
    """One statement (no parameters) read by ConnectorX into one Arrow table, untyped (the
    caller's `plan.from_arrow` types it); a column it cannot read is named."""
    with _columns_named(plan):
        return _connectorx().read_sql(url, sql, return_type="arrow", protocol="binary")


def stream_arrow(url: str, plan: TablePlan, sql: str, **options: Any) -> Iterator[Any]:
    """One statement read by ConnectorX as a stream of Arrow batches, each through the plan's
    converters (`plan.from_arrow`); `options`: ConnectorX's (batch_size, pre_execution_query,
    partition_on ...). A column it cannot read is named."""
    with _columns_named(plan):
        reader = _connectorx().read_sql(
            url, sql, return_type="arrow_stream", protocol="binary", **options
        )
        for batch in reader:
            if batch.num_rows:
                yield plan.from_arrow(batch)


class ExactConnectorXReader(ConnectorXTableLoader):
    """ConnectorX `arrow_stream`, optionally partitioned, each batch through the plan."""

    plan: TablePlan

    def get_connection_url(self) -> str:
        return connectorx_url(self.engine.url)

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[Any]:
        options = dict(backend_kwargs or {})
        partitions = options.pop("partitions", None)
        estimated_rows = options.pop("estimated_rows", None)
        snapshot = options.pop(SNAPSHOT, None)
        if partitions is None:
            partitions = self._auto_partitions(estimated_rows)
        query = self.compile_query(self.make_query())
        kwargs: dict[str, Any] = {"batch_size": self.chunk_size}
        if snapshot:  # the read's transaction imports it (a split load's chunk): one read
            kwargs["pre_execution_query"] = snapshot_statements(snapshot)
            partitions = 1
        key = self._partition_key() if partitions > 1 else None
        if key is not None:
            kwargs.update(partition_on=key, partition_num=partitions)
        yield from stream_arrow(self.get_connection_url(), self.plan, query, **kwargs)

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


class ExactConnectorXLoader(PlannedRead, ExactConnectorXReader):
    """The fast path's table loader: the plan's SELECT read by ConnectorX, each batch through
    the plan's converters, empty snapshots for FULL jobs."""
