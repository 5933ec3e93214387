"""One run of a CDC job (`load_type = CDC`, PostgreSQL): what `ingest.job.run` extracts, and the
slot's confirmation after the load committed.

The LSN bookkeeping (exactly once):
- the lake's pipeline state, committed atomically with each load (`ingest.lake.ledger`), holds
  `lsn`: the highest commit LSN whose changes the lake holds (the first copy: the slot's
  consistent point);
- the slot's confirmed position moves only after the load committed (`confirm`); a crash
  between the two leaves the slot behind the lake: the next run reads those transactions
  again and drops every one whose commit LSN is at or below `lsn` (`ingest.sources.cdc.changes`);
- a run that lands nothing new (nothing changed, or only re-read transactions) still confirms
  what it read, so the source can release its WAL.

First run (no `lsn` in the state, or a full refresh): the publication is made, the slot is made
anew exporting its snapshot (a slot left by a run that never committed is dropped: its snapshot
is gone with it), and the table is copied in that snapshot, each row with the consistent point
as its `_lsn`: through ConnectorX where the FULL load of the table reads through it (its
transaction imports the snapshot; the slot's connection stays open and idle until the read has
ended, so the snapshot stays importable), else through psycopg2; counted in the same snapshot.
Later runs stream from the slot (`ingest.sources.cdc.changes`). A TRUNCATE lands a delete
marker for every key the table held: the lake's current keys and the keys of this run.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq
import sqlalchemy as sa

from ingest.checks import cdc_count
from ingest.checks.reconcile import Outcome
from ingest.config import JobConfig
from ingest.errors import JobError
from ingest.identifiers import lake_name
from ingest.lake import ledger
from ingest.lake.destination import Destination
from ingest.runtime.optional import fast_path_available
from ingest.runtime.warmup import CollectionPause
from ingest.secrets import Secret
from ingest.sources.cdc import pgoutput
from ingest.sources.cdc.changes import (
    DELETE,
    MARKER_PREFIX,
    Bound,
    ChangeReader,
    ReadState,
    Row,
    TruncateMark,
    order_text,
)
from ingest.sources.cdc.identity import check_source, table_schema
from ingest.sources.cdc.names import CdcNames, names_of
from ingest.sources.cdc.replication import Replication, SlotInfo
from ingest.sources.cdc.rows import (
    ArrowRead,
    RowConverter,
    UnchangedValues,
    lake_fields,
    lake_hints,
)
from ingest.sources.cdc.snapshot import SnapshotCount
from ingest.sources.fast_arrow import (
    connectorx_url,
    read_arrow,
    snapshot_statements,
    stream_arrow,
)
from ingest.sources.typemap import TablePlan
from ingest.views.dialects import literal_sql
from ingest.views.state import current_state, state_connection
from ingest.vocabulary import DELETED, Reconciled

log = logging.getLogger(__name__)

#: our entry in the `ingest` part of the pipeline state
CDC_KEY = "cdc"
#: the server version whose pgoutput sends logical messages (the `messages` option)
MESSAGES_FROM = 140000
_SNAPSHOT = re.compile(r"^[0-9A-Fa-f-]{1,64}$")
#: changes typed at a time (at most INGEST_CHUNK_SIZE), and how many such batches may wait
#: for the landing while the next is read: memory stays within a few batches
TYPE_BATCH, TYPE_AHEAD = 25_000, 2


def stored_lsn(state: Mapping[str, Any]) -> int | None:
    """The highest commit LSN the lake holds (the committed pipeline state), or None."""
    for source in (state.get("sources") or {}).values():
        entry = (source.get(ledger.STATE_KEY) or {}).get(CDC_KEY)
        if entry and entry.get("lsn") is not None:
            return int(entry["lsn"])
    return None


def _record(lsn: int, slot: str) -> None:
    """Inside the extraction: the LSN the load holds (committed with it)."""
    state = dlt.current.source_state().setdefault(ledger.STATE_KEY, {})
    state[CDC_KEY] = {"lsn": lsn, "lsn_text": pgoutput.lsn_text(lsn), "slot": slot}


def connect_args(builder: Any, secrets: dict[str, Secret]) -> dict[str, Any]:
    """psycopg2.connect() arguments of the source (from the builder's URL: one place)."""
    url = builder.url(secrets)
    args: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    args.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    args.update(builder.engine_kwargs().get("connect_args") or {})
    return args


@dataclass
class CdcRead:
    """One CDC run's read: the resource dlt extracts, then `confirm()` after the commit."""

    job: JobConfig
    builder: Any
    secrets: dict[str, Secret]
    dest: Destination
    workdir: Path
    chunk_size: int
    max_changes: int
    max_bytes: int
    memory_mb: int
    #: the lake's LSN (None: the first copy is due)
    stored: int | None
    names: CdcNames = field(init=False)
    replication: Replication = field(init=False)
    engine: sa.Engine = field(init=False)
    plan: TablePlan | None = None
    keys: tuple[str, ...] = ()
    read: ReadState = field(default_factory=ReadState)
    #: the first copy: rows it read, counted in its snapshot
    snapshot_rows: int | None = None
    snapshot_source_count: int | None = None
    deadline_s: float = 0.0
    #: delete markers landed (deletes, old keys of key changes, a TRUNCATE's keys)
    markers: int = 0
    #: later runs: the source's count, in a snapshot taken right before the end marker
    counter: SnapshotCount | None = None
    #: False: the FULL load reads with dlt's pyarrow backend (INGEST_BACKEND=pyarrow), so the
    #: changes are typed through psycopg2 too
    fast_path: bool = True
    #: cyclic garbage collection paused while the changes are decoded
    collection: CollectionPause = field(default_factory=CollectionPause)

    def __post_init__(self) -> None:
        self.names = names_of(self.job)
        self.engine = self.builder.engine(self.secrets)
        self.replication = Replication(connect_args(self.builder, self.secrets), self.names, "")
        self._use_schema(self.job.schema_name or "public")

    def _use_schema(self, schema: str) -> None:
        self.schema = schema
        table = sa.table(self.job.table_name, schema=schema)
        self.table_sql = self.engine.dialect.identifier_preparer.format_table(table)
        self.replication.table_sql = self.table_sql

    # --- checks -------------------------------------------------------------------------

    def check_source(self, connection: Any) -> tuple[str, ...]:
        return check_source(connection, self.job)

    # --- the extraction ---------------------------------------------------------------------

    def resource(self) -> Any:
        job = self.job

        @dlt.resource(name=job.lake_table, write_disposition="append")
        def changes() -> Iterator[pa.Table]:
            if self.stored is None:
                yield from self._first_copy()
            else:
                yield from self._stream()

        data = changes()
        return data

    def prepare(self) -> tuple[str, ...]:
        """Before the extraction: checks, publication, the table's type plan. The key."""
        connection = self.replication.connection()
        try:
            self._use_schema(table_schema(connection, self.job))
            self.keys = self.check_source(connection)
            self.replication.prepare(connection, self.schema, self.job.table_name)
            if self.stored is not None and self.replication.slot(connection) is None:
                raise JobError(
                    f"replication slot {self.names.slot} of job {self.job.job_id} is gone (it "
                    "was dropped, or the source was restored): the changes since the last run "
                    "cannot be read. Run the job with --full-refresh to copy the table again"
                )
            if self.stored is not None:
                # the count's snapshot first, then the end marker: every transaction the
                # snapshot sees is read (`ingest.sources.cdc.snapshot`)
                self.counter = SnapshotCount(self.replication.connection(), self.table_sql)
                self.counter.open()
            self.end_lsn, self.marker = end_position(connection)
            if self.counter is not None:
                self.counter.start()  # counts while the run reads its changes
        finally:
            connection.close()
        # the table as it is now (after the run's end position: every column a change up
        # to it names is here, unless dropped since)
        _, columns = self.builder._reflect(self.engine, self.job)
        self.plan = self.builder.plan(self.job, columns)
        self.source_columns = tuple(c["name"] for c in columns)
        return self.keys

    def hints(self) -> dict[str, dict[str, Any]]:
        assert self.plan is not None
        return {**self.plan.hints(), **lake_hints()}

    def _first_copy(self) -> Iterator[pa.Table]:
        assert self.plan is not None
        connection = self.replication.connection()
        try:
            slot = self.replication.wait_inactive(connection)
            if slot is not None:
                if slot.active:
                    raise JobError(
                        f"replication slot {self.names.slot} is in use by another reader; stop "
                        "it (dlt-ingest cdc status) before the job's first copy"
                    )
                log.info(
                    "job %s: slot %s has no copy in the lake: made anew with a snapshot",
                    self.job.job_id,
                    self.names.slot,
                )
                self.replication.drop(connection, publication=False)
        finally:
            connection.close()
        stream, consistent_point, snapshot = self.replication.create_slot()
        if not _SNAPSHOT.match(snapshot):
            stream.close()
            raise JobError(f"unexpected snapshot name {snapshot!r} from the source")
        table = sa.table(
            self.job.table_name,
            *(sa.column(c) for c in self.source_columns),
            schema=self.schema,
        )
        query = self.plan.select(sa.select(table), table)
        # the copy's rows come after the delete markers of a copy made again (full refresh)
        order = order_text(consistent_point, 1)
        rows = 0
        fast = self._fast_url()
        sql = _plain_sql(query, self.engine.dialect) if fast is not None else None
        with self.engine.connect() as connection:
            try:
                connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                with self.plan.open_session(connection):
                    count = sa.select(sa.func.count()).select_from(table)
                    self.snapshot_source_count = int(connection.execute(count).scalar_one())
                if fast is not None and sql is not None:
                    # ConnectorX, as the FULL load reads the table, in a transaction of its own
                    # that imports the same snapshot: the slot's connection stays open (idle)
                    # until the read has ended, the snapshot is importable until then
                    for batch in stream_arrow(
                        fast,
                        self.plan,
                        sql,
                        batch_size=self.chunk_size,
                        pre_execution_query=snapshot_statements(snapshot),
                    ):
                        rows += len(batch)
                        yield _with_order(batch, order, deleted=False)
                else:
                    stream.close()  # the snapshot is imported: the slot's connection goes
                    with self.plan.open_session(connection):
                        result = connection.execution_options(yield_per=self.chunk_size).execute(
                            query
                        )
                        for partition in result.partitions(size=self.chunk_size):
                            batch = self.plan.from_rows([r._data for r in partition])
                            rows += len(batch)
                            yield _with_order(batch, order, deleted=False)
            finally:
                stream.close()  # whatever happened: the slot's connection goes
            connection.rollback()
        self.snapshot_rows = rows
        self.read.inserts = rows
        if rows == 0:
            yield _with_order(self.plan.schema.empty_table(), order, deleted=False)
        # a copy made again over a lake that holds the table (a full refresh, a slot that was
        # gone): every key it holds gets a delete marker ordered before the copy's rows, so
        # keys the copy holds show its row and keys it does not are gone
        marker_order = order_text(consistent_point, 0)
        for keys in self._lake_keys():
            if len(keys):
                yield self._counted(self._markers(keys, marker_order))
        _record(consistent_point, self.names.slot)

    def _stream(self) -> Iterator[pa.Table]:
        assert self.plan is not None and self.stored is not None
        spill = self.workdir / "cdc"
        spill.mkdir(parents=True, exist_ok=True)
        unchanged = UnchangedValues(
            spill / "unchanged.sqlite",
            self.source_columns,
            self._varlena_columns(),
            len(self.keys),
        )
        converter = RowConverter(
            self.engine,
            self.plan,
            self.table_sql,
            self.source_columns,
            self.keys,
            unchanged,
            self._previous,
            self._arrow_read(),
        )
        reader = ChangeReader(
            self.schema,
            self.job.table_name,
            self.keys,
            self.source_columns,
            self.stored,
            Bound(
                self.end_lsn,
                self.max_changes,
                self.marker,
                self.max_bytes,
                self.counter.visible if self.counter is not None else None,
            ),
        )
        self.read = reader.state
        # typed in batches of TYPE_BATCH changes, in a thread of their own (the source and
        # ConnectorX type one batch while this thread decodes the next); at most
        # TYPE_AHEAD batches wait, landed in their order
        size = max(1, min(self.chunk_size, TYPE_BATCH))
        typing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdc-type")
        waiting: deque[Future[pa.Table]] = deque()

        def typed(*, every: bool = False) -> Iterator[pa.Table]:
            while waiting and (every or len(waiting) > TYPE_AHEAD or waiting[0].done()):
                yield self._counted(waiting.popleft().result())

        pending: list[Row] = []
        # the decoding's objects are acyclic: no collection walks them (ingest.runtime);
        # resumed at the end, or by close() when the extraction stopped before it
        self.collection.pause()
        try:
            stream = self.replication.stream(self.deadline_s, messages=self.marker is not None)
            for change in reader.rows(stream):
                if isinstance(change, TruncateMark):
                    yield from typed(every=True)
                    if pending:
                        yield self._counted(converter.convert(pending))
                        pending = []
                    for markers in self._truncate(change, converter, unchanged):
                        yield self._counted(markers)
                    continue
                pending.append(change)
                if len(pending) >= size:
                    prepared = converter.prepare(pending, keep_in_memory=self.chunk_size)
                    waiting.append(typing.submit(converter.finish, prepared))
                    pending = []
                    yield from typed()
            if pending:
                prepared = converter.prepare(pending, keep_in_memory=self.chunk_size)
                waiting.append(typing.submit(converter.finish, prepared))
            yield from typed(every=True)
        finally:
            self.collection.resume()
            typing.shutdown(wait=True, cancel_futures=True)
            unchanged.close()
            self.replication.close_stream()
        if reader.state.last_commit_lsn > self.stored:
            _record(reader.state.last_commit_lsn, self.names.slot)

    def _fast_url(self) -> str | None:
        """ConnectorX's URL of the source where the FULL load of this table reads through it
        (the fast path, `ingest.sources.sql`); None: psycopg2."""
        assert self.plan is not None
        if not self.fast_path or not getattr(self.builder, "fast_path", False):
            return None
        if self.plan.fast_path_blocker() or not fast_path_available():
            return None
        return connectorx_url(self.engine.url)

    def _arrow_read(self) -> ArrowRead | None:
        """The fast path for typing the changes, where the FULL load takes it; None:
        psycopg2."""
        assert self.plan is not None
        url = self._fast_url()
        return None if url is None else functools.partial(read_arrow, url, self.plan)

    def _counted(self, table: pa.Table) -> pa.Table:
        self.markers += int(pa.compute.sum(table.column(DELETED)).as_py() or 0)
        return table

    def _truncate(
        self, mark: TruncateMark, converter: RowConverter, alive: UnchangedValues
    ) -> Iterator[pa.Table]:
        """Delete markers for every key the table held: the keys this run left alive (kept on
        disk), then the lake's current keys but those (DuckDB's anti-join, on disk too)."""
        assert self.plan is not None
        lake_keys = [converter._lake(k) for k in self.keys]
        columns = converter.names
        spill = self.workdir / "cdc" / f"truncate-{mark.order}.parquet"
        writer = None
        try:
            for keys in alive.alive_keys(self.chunk_size):
                rows = [
                    Row.of(DELETE, mark.order, dict(zip(self.keys, k, strict=True)), columns)
                    for k in keys
                ]
                table = converter.convert(rows)
                marked = table.select(lake_keys)
                marked = marked.rename_columns([self._lake_name(n) for n in lake_keys])
                if writer is None:
                    writer = pq.ParquetWriter(str(spill), marked.schema)
                writer.write_table(marked)
                yield table
        finally:
            if writer is not None:
                writer.close()
        alive.clear()
        for keys in self._lake_keys(spill if writer is not None else None):
            if len(keys):
                yield self._markers(keys, mark.order)

    def _markers(self, keys: pa.Table, order: str) -> pa.Table:
        """Delete markers of typed keys: the key columns, NULL elsewhere."""
        assert self.plan is not None
        arrays = []
        for f in self.plan.schema:
            if f.name in keys.column_names:
                arrays.append(keys.column(f.name).cast(f.type))
            else:
                arrays.append(pa.nulls(len(keys), f.type))
        arrays += [pa.repeat(pa.scalar(order), len(keys)), pa.repeat(True, len(keys))]
        schema = pa.schema(
            [pa.field(f.name, f.type, nullable=True) for f in self.plan.schema] + lake_fields()
        )
        return pa.Table.from_arrays(arrays, schema=schema)

    def _lake_keys(self, but: Path | None = None) -> Iterator[pa.Table]:
        """The keys of the lake's current state (but those in the Parquet file `but`)."""
        state = current_state(self.dest, self.job)
        if state is None:
            return
        names = [self._lake_name(k) for k in self.keys]
        connection = state_connection(self.dest, self.memory_mb, self.workdir / "spill")
        try:
            columns = ", ".join(f's."{n}"' for n in names)
            query = f"SELECT {columns} FROM ({state.keys_sql}) AS s"
            if but is not None:
                match = " AND ".join(f'b."{n}" = s."{n}"' for n in names)
                query += (
                    f" WHERE NOT EXISTS (SELECT 1 FROM read_parquet({literal_sql(str(but))}) "
                    f"AS b WHERE {match})"
                )
            result = connection.execute(query)
            reader = result.fetch_record_batch(self.chunk_size)
            for batch in reader:
                table = pa.Table.from_batches([batch])
                yield table.rename_columns([self._plan_name(n) for n in table.column_names])
        finally:
            connection.close()

    def _previous(self, keys: pa.Table, columns: list[str]) -> dict[tuple, dict[str, Any]]:
        """The lake's current values of `columns` for the typed `keys` (UNCHANGED values)."""
        state = current_state(self.dest, self.job)
        if state is None:
            return {}
        key_names = [self._lake_name(k) for k in keys.column_names]
        connection = state_connection(self.dest, self.memory_mb, self.workdir / "spill")
        try:
            wanted = keys.rename_columns(key_names)
            connection.register("wanted", wanted)
            selected = ", ".join(f's."{n}"' for n in [*key_names, *map(self._lake_name, columns)])
            match = " AND ".join(f's."{n}" = w."{n}"' for n in key_names)
            found = connection.execute(
                f"SELECT {selected} FROM ({state.sql}) AS s JOIN wanted AS w ON {match}"
            ).fetch_arrow_table()
        finally:
            connection.close()
        out: dict[tuple, dict[str, Any]] = {}
        for row in found.to_pylist():
            values = list(row.values())
            key = tuple(values[: len(key_names)])
            out[key] = dict(zip(columns, values[len(key_names) :], strict=True))
        return out

    def _lake_name(self, plan_name: str) -> str:
        return lake_name(plan_name)

    def _plan_name(self, lake: str) -> str:
        assert self.plan is not None
        for column in self.plan.columns:
            if self._lake_name(column.name) == lake:
                return column.name
        return lake

    def _varlena_columns(self) -> list[str]:
        """Columns whose values may be stored out of line (TOAST): variable-length types."""
        connection = self.replication.connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT a.attname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT "
                    "a.attisdropped AND t.typlen = -1",
                    (self.table_sql,),
                )
                return [r[0] for r in cursor.fetchall()]
        finally:
            connection.close()

    def reconcile(self) -> tuple[Outcome, cdc_count.CdcCount | None]:
        """After the load committed: the source's count against the lake's current state
        (`ingest.checks.cdc_count`), and what was compared (None: no comparison)."""
        read = self.read
        if self.snapshot_rows is not None:
            source = self.snapshot_source_count
            return (
                Outcome(
                    Reconciled.MATCH if source == self.snapshot_rows else Reconciled.MISMATCH,
                    source,
                    f"first copy in the slot's snapshot: {self.snapshot_rows} row(s) read, "
                    f"{source} counted in the same snapshot",
                ),
                None,
            )
        assert self.counter is not None
        changes = (
            f"CDC: {read.inserts} insert(s), {read.updates} update(s), {read.deletes} "
            f"delete(s), {read.truncates} truncate(s)"
        )
        try:
            source = self.counter.rows()
            lake = cdc_count.lake_rows(self.dest, self.job, self.memory_mb, self.workdir / "spill")
        except Exception as exc:  # the load committed: a count that failed is reported
            log.warning("job %s: not reconciled: %s", self.job.job_id, exc)
            note = f"{changes}; not counted: {type(exc).__name__}: {exc}"
            return Outcome(Reconciled.SKIPPED, None, note), None
        if lake is None:
            return Outcome(Reconciled.SKIPPED, source, f"{changes}; nothing in the lake"), None
        counted = cdc_count.CdcCount(
            source, read.late_transactions, read.late_net, lake, self.counter.snapshot
        )
        skipped = ""
        if read.stopped_by:
            skipped = (
                f"the run stopped after {read.stopped_by}, before its end position: the "
                "snapshot holds changes the next run reads"
            )
        elif read.late_truncates:
            skipped = "a TRUNCATE committed after the snapshot: its rows are not known"
        if skipped:
            note = f"{changes}; not compared: {skipped}; {counted.note()}"
            return Outcome(Reconciled.SKIPPED, source, note), None
        return Outcome(counted.reconciled, counted.expected, f"{changes}; {counted.note()}"), (
            counted
        )

    # --- after the commit --------------------------------------------------------------------

    def confirm(self) -> bool:
        """The load committed (or there was nothing to land): move the slot on."""
        lsn = self.read.confirm_lsn
        if self.stored is None or not lsn:
            return True
        connection = self.replication.connection()
        try:
            return self.replication.confirm(connection, lsn)
        finally:
            connection.close()

    def slot_info(self) -> SlotInfo | None:
        """The slot after the run (retained WAL, lag), for telemetry; None if unreadable."""
        try:
            connection = self.replication.connection()
            try:
                return self.replication.slot(connection)
            finally:
                connection.close()
        except Exception as exc:  # telemetry only: never the job's failure
            log.warning("job %s: slot %s not read: %s", self.job.job_id, self.names.slot, exc)
            return None

    def close(self) -> None:
        self.collection.resume()
        self.replication.close_stream()
        if self.counter is not None:
            self.counter.close()
            self.counter = None
        self.engine.dispose()


def end_position(connection: Any) -> tuple[int, bytes | None]:
    """The run's end position: a non-transactional logical message written now (its LSN, its
    content), so the stream says when it has sent everything before it; where the message
    cannot be written or sent (no EXECUTE on pg_logical_emit_message; PostgreSQL before 14,
    whose pgoutput sends no messages), the WAL insert position."""
    marker = uuid.uuid4().hex.encode()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        if int(cursor.fetchone()[0]) >= MESSAGES_FROM:
            try:
                cursor.execute(
                    "SELECT pg_logical_emit_message(false, %s, %s)::text",
                    (MARKER_PREFIX, marker.decode()),
                )
                return pgoutput.parse_lsn(cursor.fetchone()[0]), marker
            except Exception as exc:  # a permission, or a read-only source
                log.info("no end marker (%s): the run ends at the WAL insert position", exc)
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return pgoutput.parse_lsn(cursor.fetchone()[0]), None


def _plain_sql(query: Any, dialect: Any) -> str | None:
    """`query` as SQL text for a reader that takes no parameters (ConnectorX); None when it
    has parameters. Compiled for named parameters, so no `%` is doubled for a driver."""
    compiled = query.compile(dialect=type(dialect)(paramstyle="named"))
    return None if compiled.params else str(compiled)


def _with_order(batch: pa.Table, order: str, *, deleted: bool) -> pa.Table:
    rows = len(batch)
    # one value repeated, made in Arrow (a first copy's batch: no Python list per row)
    lsn = pa.repeat(pa.scalar(order), rows)
    flags = pa.repeat(pa.scalar(deleted), rows)
    return pa.Table.from_arrays(
        [*batch.columns, lsn, flags], schema=pa.schema([*batch.schema, *lake_fields()])
    )
