"""Deletes: keys the lake's current state holds and the source no longer does
(`delete_detection = keys`).

A watermark never sees a delete. With `delete_detection = keys` a job reads its source's key
columns only (`SELECT k1, k2 FROM t`: ConnectorX's Arrow stream on PostgreSQL, a
streamed SQLAlchemy read elsewhere) into a local Parquet file, compares them with the keys of
the table's current state in the lake (`ingest.views.state`: the same SELECT the view runs) in
DuckDB, in bounded memory (`INGEST_STATE_MEMORY_MB`, spilling to the job's working folder), and
lands a delete marker for each key that is gone: the key, the lake's last watermark, and
`_deleted = true`, in the same load as the job's new rows (one commit). The current view then
drops the key (the marker's load is later than any row of it loaded before); the history keeps
the marker. The keys are read before the rows: a key inserted again comes back with its new
row (a greater watermark). A row changed and deleted while the job ran is settled by the next
run's detection.

`delete_detection_every = N` runs it every N days (the time of the last detection is in the
job's state); by default every run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from ingest.config import JobConfig
from ingest.identifiers import lake_name
from ingest.lake.destination import Destination
from ingest.lake.ledger import record_deletes_checked
from ingest.runtime.optional import fast_path_available
from ingest.sources.base import SourceBuilder
from ingest.sources.fast_arrow import connectorx_url
from ingest.sources.sql import SqlSourceBuilder
from ingest.views.definition import DELETED
from ingest.views.dialects import literal_sql, quote_double
from ingest.views.state import TableState, current_state, state_connection

log = logging.getLogger(__name__)

#: rows per batch of the source's keys and of the markers
BATCH_ROWS = 100_000
#: the dlt resource that writes the markers into the job's table
MARKERS_RESOURCE = "_ingest_deletes"


@dataclass
class Deletes:
    """What the detection found, for the audit."""

    markers: int = 0
    source_keys: int = 0
    ran: bool = False


def due(job: JobConfig, last_checked: str | None, now: dt.datetime) -> bool:
    """Whether the job detects deletes in this run (see module doc)."""
    if job.delete_detection is None:
        return False
    if not job.delete_detection_every or not last_checked:
        return True
    try:
        last = dt.datetime.fromisoformat(last_checked)
    except ValueError:
        return True
    return now - last >= dt.timedelta(days=job.delete_detection_every) - dt.timedelta(minutes=30)


def _source_keys_query(job: JobConfig, keys: tuple[str, ...]) -> sa.Select:
    """`SELECT k1 AS <lake name>, ... FROM <schema>.<table>`, every name quoted."""
    table = sa.table(job.table_name, *(sa.column(k) for k in keys), schema=job.schema_name)
    return sa.select(*(table.c[k].label(lake_name(k)) for k in keys))


def write_source_keys(
    builder: SourceBuilder, engine: sa.Engine, job: JobConfig, keys: tuple[str, ...], path: Path
) -> int:
    """Stream the source's key columns (source names `keys`) into the Parquet file `path`,
    named as in the lake; returns how many rows."""
    query = _source_keys_query(job, keys)
    writer = None
    rows = 0
    try:
        for batch in _key_batches(builder, engine, query):
            if batch.num_rows == 0:
                continue
            if writer is None:
                writer = pq.ParquetWriter(str(path), batch.schema)
            writer.write_table(batch.cast(writer.schema))
            rows += batch.num_rows
        if writer is None:  # no key at all: an empty file with the key columns
            empty = pa.table({lake_name(k): pa.array([], pa.string()) for k in keys})
            pq.write_table(empty, str(path))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _key_batches(builder: SourceBuilder, engine: sa.Engine, query: sa.Select) -> Iterator[Any]:
    if builder.capabilities.fast_path_extra and fast_path_available():
        # connectorx: the optional `fast` extra (checked just above)
        import connectorx as cx

        sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        reader = cx.read_sql(
            connectorx_url(engine.url),
            sql,
            return_type="arrow_stream",
            batch_size=BATCH_ROWS,
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
        return
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
            query
        )
        names = list(result.keys())
        for rows in result.partitions():
            yield pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})


class DeleteDetection:
    """One run's delete detection (see module doc)."""

    def __init__(
        self,
        job: JobConfig,
        builder: SourceBuilder,
        engine: sa.Engine,
        dest: Destination,
        keys: tuple[str, ...],
        workdir: Path,
        memory_mb: int,
        marker_watermark: Any,
        *,
        checked_at: str,
        not_null: frozenset[str] = frozenset(),
    ):
        self.job = job
        self.builder = builder
        self.engine = engine
        self.dest = dest
        #: the key's source names, and as the lake names them
        self.keys = keys
        self.lake_keys = tuple(lake_name(k) for k in keys)
        self.workdir = workdir
        self.memory_mb = memory_mb
        self.marker_watermark = marker_watermark
        self.checked_at = checked_at
        #: key columns (lake names) whose rows land NOT NULL: the markers' must match, or dlt
        #: cannot write a run's rows and markers into one file
        self.not_null = not_null
        self.found = Deletes()
        self.markers_file: Path | None = None

    def resource(self, table: str) -> Any:
        """The dlt resource of the markers, into the job's table (`_deleted` a boolean)."""

        @dlt.resource(
            name=MARKERS_RESOURCE,
            table_name=table,
            write_disposition="append",
            columns={DELETED: {"data_type": "bool", "nullable": True}},
        )
        def markers() -> Iterator[Any]:
            if self.markers_file is not None:
                for batch in pq.ParquetFile(str(self.markers_file)).iter_batches(BATCH_ROWS):
                    yield pa.Table.from_batches([batch])
            record_deletes_checked(self.checked_at)

        return markers()

    def detect(self) -> None:
        """Find the keys that are gone, before the run reads its rows: their markers carry the
        watermark the lake holds (`marker_watermark`), so a row of the key loaded before loses
        to its marker (a later load), and a row read by this run (a key inserted again, a
        greater watermark) wins over it. Writes them to a local Parquet file."""
        if not isinstance(self.builder, SqlSourceBuilder):
            return
        state = current_state(self.dest, self.job)
        if state is None:  # nothing in the lake yet: nothing can have been deleted from it
            self.found.ran = True
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        keys_file = self.workdir / "source_keys.parquet"
        self.found.source_keys = write_source_keys(
            self.builder, self.engine, self.job, self.keys, keys_file
        )
        self.markers_file = self.workdir / "markers.parquet"
        writer = None
        try:
            for batch in self._gone(state, keys_file):
                if writer is None:
                    writer = pq.ParquetWriter(str(self.markers_file), batch.schema)
                writer.write_table(batch)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            self.markers_file = None
        self.found.ran = True

    def _as_rows(self, markers: pa.Table) -> pa.Table:
        """The markers with the key's nullability of the run's rows (DuckDB's are nullable)."""
        fields = [
            field.with_nullable(False) if field.name in self.not_null else field
            for field in markers.schema
        ]
        return markers.cast(pa.schema(fields, metadata=markers.schema.metadata))

    def _gone(self, state: TableState, keys_file: Path) -> Iterator[Any]:
        q = quote_double
        connection = state_connection(self.dest, self.memory_mb, self.workdir / "spill")
        try:
            watermark = self.job.watermark_column and lake_name(self.job.watermark_column)
            select = [f"s.{q(k)}" for k in self.lake_keys]
            if watermark:
                select.append(f"CAST(? AS {state.duckdb_type(watermark)}) AS {q(watermark)}")
            select.append(f"true AS {q(DELETED)}")
            match = " AND ".join(
                f"s.{q(k)} = CAST(x.{q(k)} AS {state.duckdb_type(k)})" for k in self.lake_keys
            )
            sql = (
                f"SELECT {', '.join(select)} FROM ({state.keys_sql}) AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM read_parquet({literal_sql(str(keys_file))}) "
                f"AS x WHERE {match})"
            )
            params = [self.marker_watermark] if watermark else []
            reader = connection.execute(sql, params).fetch_record_batch(BATCH_ROWS)
            for batch in reader:
                if batch.num_rows:
                    self.found.markers += batch.num_rows
                    yield self._as_rows(pa.Table.from_batches([batch]))
        finally:
            connection.close()
        log.info(
            "job %s: %d key(s) at the source, %d deleted since the last detection",
            self.job.job_id,
            self.found.source_keys,
            self.found.markers,
        )
