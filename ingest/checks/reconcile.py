"""Row-count reconciliation: the source rows of exactly the extracted window against the rows
that landed in the lake.

Outcome per job (audit columns `source_rows`, `reconciled`, `reconcile_note`):

- `MATCH`: the source count of the window equals the rows that landed;
- `MISMATCH`: they differ, or the source changed while the job ran and the count cannot be
  trusted; the job becomes FAILED (or WARN with `INGEST_RECONCILE=WARN`);
- `SKIPPED`: no count is possible (REST sources), with the reason.

The window:
- FULL: the whole table. On PostgreSQL and MySQL/MariaDB the extraction and the count share
  one database connection and one REPEATABLE READ transaction (`Snapshot`): the count runs
  first (fixing the snapshot), dlt extracts through the same connection, the count runs again,
  then the transaction is rolled back. Both counts must agree with the landed rows.
  Otherwise the table is counted before and after the extraction (bracketing): SQLite, SQL
  Server, Oracle, and PostgreSQL read by ConnectorX, whose own connections cannot join the
  snapshot (there the "after" count runs on the snapshot's connection once its transaction
  has ended, i.e. in a new transaction that sees the data as of then). MATCH needs both
  counts and the landed rows to agree, so a row that arrives while the job runs is reported
  as MISMATCH, never silently matched.
- INCREMENTAL: rows whose watermark lies in the loaded range: above the stored watermark
  (or from initial_watermark, closed, on a first run) up to the new watermark (closed);
  a backfill counts `[from, to)`. dlt re-reads the rows equal to the stored watermark and
  drops those it loaded before, so landed rows are counted in the same window (landed rows
  at exactly the old watermark are left out on both sides). The count runs in a new
  transaction after the extraction, never in an older snapshot: a row that committed late
  with a watermark inside the loaded range would never be loaded by the next run (it starts
  above the new watermark), and this count sees it and reports MISMATCH.

The final source count starts as soon as the extraction ends (`after_extraction`), in a
background thread, so the database counts while dlt normalizes and loads; `finish` waits for
it and compares. It needs nothing from those steps: the window's upper end is the watermark
the extraction reached.

Identifiers reach SQL only through SQLAlchemy's quoting (`sa.table`/`sa.column`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from ingest.config import JobConfig
from ingest.identifiers import lake_name
from ingest.lake.delta import count_equal
from ingest.lake.destination import Destination
from ingest.lake.ledger import Boundary
from ingest.lake.loads import is_delta_table, load_id_of, table_files
from ingest.results import Landed, Watermarks
from ingest.sources.base import SourceBuilder
from ingest.sources.sql import SqlSourceBuilder, coerce_watermark
from ingest.tasks import Backfill
from ingest.vocabulary import Reconciled

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger(__name__)

MATCH, MISMATCH, SKIPPED = Reconciled.MATCH, Reconciled.MISMATCH, Reconciled.SKIPPED
#: source types whose extraction and count can share one REPEATABLE READ transaction
SNAPSHOT_TYPES = ("postgresql", "mysql")
REST_REASON = "REST source has no row count"
#: the named reason of a MISMATCH caused by rows the boundary de-duplication dropped
BOUNDARY_DROPPED = "BOUNDARY_ROWS_DROPPED"


@dataclass(frozen=True)
class Outcome:
    """The reconciliation of one job (audit columns `reconciled`, `source_rows`,
    `reconcile_note`)."""

    reconciled: Reconciled
    source_rows: int | None = None
    note: str = ""


# ------------------------------------------------------------------------------------------
# counting


def table_clause(job: JobConfig) -> sa.TableClause:

    return sa.table(job.table_name, schema=job.schema_name)


def count_query(
    job: JobConfig,
    *,
    lower: Any = None,
    lower_closed: bool = True,
    upper: Any = None,
    upper_closed: bool = True,
) -> sa.Select:
    """SELECT COUNT(*) of the job's table, bounded on the watermark column when given."""

    query = sa.select(sa.func.count()).select_from(table_clause(job))
    if job.is_incremental and job.watermark_column:
        column = sa.column(job.watermark_column)
        query = query.where(column.is_not(None))
        if lower is not None:
            query = query.where(column >= lower if lower_closed else column > lower)
        if upper is not None:
            query = query.where(column <= upper if upper_closed else column < upper)
    return query


def count(connectable: Any, query: sa.Select) -> int:
    """Run a count on an Engine (own connection) or a Connection."""

    if isinstance(connectable, sa.Engine):
        with connectable.connect() as connection:
            return int(connection.execute(query).scalar_one())
    return int(connectable.execute(query).scalar_one())


class Snapshot:
    """One DBAPI connection in one REPEATABLE READ transaction, shared by dlt and the counts.

    The engine hands the same connection to every `connect()` (StaticPool) and never resets
    it; the dialect's commit/rollback are held back while the snapshot is open (SQLAlchemy
    rolls back when a `Connection` closes, which would end the transaction between dlt's
    reads and our count). `close()` rolls the transaction back for real and disposes.
    """

    def __init__(
        self,
        url: Any,
        engine_kwargs: Mapping[str, Any],
        table_name: str,
        configure: Callable[[Any], Any] = lambda engine: engine,
    ):

        kwargs = dict(engine_kwargs)
        kwargs.update(
            poolclass=StaticPool,
            pool_reset_on_return=None,
            isolation_level="REPEATABLE READ",
        )
        self.engine = configure(sa.create_engine(url, **kwargs))
        dialect = self.engine.dialect
        self._real_rollback = dialect.do_rollback
        # instance attributes: this engine's own dialect object only
        dialect.do_rollback = lambda dbapi_connection: None  # type: ignore[method-assign]
        dialect.do_commit = lambda dbapi_connection: None  # type: ignore[method-assign]
        self._table = table_name.lower()
        self.table_reads = 0
        sa.event.listen(self.engine, "before_cursor_execute", self._on_execute)
        self.closed = False

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = statement.lower()
        if "count(" not in text and self._table in text and "from" in text:
            self.table_reads += 1

    def release(self) -> None:
        """End the snapshot's transaction (a real rollback). The connection stays: its next
        statement starts a new transaction, which sees the data as of that statement."""
        raw = self.engine.raw_connection()
        try:
            self._real_rollback(raw.dbapi_connection)
        finally:
            raw.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.release()
        except Exception as exc:  # the transaction only read; the server ends it on disconnect
            log.debug("snapshot rollback failed: %s", exc)
        finally:
            self.engine.dispose()


def in_background(call: Callable[[], Any]) -> Future[Any]:
    """Run `call` in its own thread (with the caller's context, e.g. the job's log fields);
    the Future holds its result or its exception."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile")
    try:
        return executor.submit(contextvars.copy_context().run, call)
    finally:
        executor.shutdown(wait=False)


@dataclass(frozen=True)
class SourceCount:
    """The final count of the source side and, for INCREMENTAL jobs, the window it covers."""

    rows: int
    lower: Any = None
    lower_closed: bool = True
    upper: Any = None
    upper_closed: bool = True
    boundary: str = ""
    #: rows whose watermark equals the stored one (`boundary`), when a boundary record exists
    at_boundary: int | None = None


class Reconciler:
    """Counts the source side of one job around its extraction (see module doc).

    Call `extraction_engine()` before building the resource (it may return the snapshot
    engine dlt must read through), `before_extraction()` right before the extraction,
    `after_extraction()` right after it (starts the final count), `finish()` after the load,
    `close()` always.
    """

    def __init__(
        self,
        job: JobConfig,
        builder: SourceBuilder,
        secrets: Mapping[str, Any],
        *,
        backfill: Backfill | None = None,
    ):
        self.job = job
        self.builder = builder
        self.secrets = secrets
        self.backfill = backfill
        self.use_snapshot = not job.is_incremental and job.source_type in SNAPSHOT_TYPES
        self.snapshot: Snapshot | None = None
        self.engine: Any = None
        self.before: int | None = None
        self.skip_reason = ""
        self._final_count: Future[SourceCount] | None = None
        #: the boundary record stored by the previous load (see `after_extraction`)
        self.boundary: Boundary | None = None
        #: the watermark column's type (SQL sources), to bind the window's bounds
        self.watermark_type: Any = None
        #: Delta tables: the table version before this load (None: no table yet)
        self.delta_version: int | None = None
        if not isinstance(builder, SqlSourceBuilder):
            self.skip_reason = (
                REST_REASON
                if job.source_type == "rest_api"
                else f"source type {job.source_type} has no row count"
            )

    # --- before extraction ------------------------------------------------------------------

    def extraction_engine(self) -> Any:
        """The engine dlt should read through (None: the source is not counted): the
        snapshot engine, or else the engine the counts use, so that one engine serves the
        whole job and `close()` disposes of it (no pooled connection outlives the job)."""
        if self.skip_reason:
            return None
        builder = self.builder
        assert isinstance(builder, SqlSourceBuilder)
        if self.use_snapshot:
            self.snapshot = Snapshot(
                builder.url(self.secrets),
                builder.engine_kwargs(),
                self.job.table_name,
                builder.configure_engine,
            )
            self.engine = self.snapshot.engine
        else:
            self.engine = builder.engine(self.secrets)
        return self.engine

    def before_extraction(self) -> None:
        """FULL: the "before" count, after the resource was built (so a missing table is
        reported by the source builder) and right before dlt reads. In a snapshot, every
        statement of the transaction sees the data as of its first one."""
        if self.engine is None or self.job.is_incremental:
            return
        self.before = count(self.engine, count_query(self.job))
        if self.snapshot is not None:
            self.snapshot.table_reads = 0

    # --- after the extraction ---------------------------------------------------------------

    def after_extraction(
        self,
        watermarks: Watermarks,
        boundary: Boundary | None = None,
        watermark_type: Any = None,
    ) -> None:
        """Start the final source count in the background. `watermarks`: the stored one and
        the one the extraction reached; `boundary`, the stored boundary record (INCREMENTAL
        jobs); `watermark_type`, the watermark column's reflected type."""
        self.boundary = boundary
        self.watermark_type = watermark_type
        if self.skip_reason or self.engine is None or self._final_count is not None:
            return
        self._final_count = in_background(lambda: self._count_source(watermarks))

    def _count_source(self, watermarks: Watermarks) -> SourceCount:
        if not self.job.is_incremental:
            return SourceCount(count(self._counting_engine(), count_query(self.job)))
        lower, lower_closed, upper, upper_closed, boundary = self._window(watermarks)
        if upper is None and not self.backfill:
            # no watermark yet, so nothing was loaded: the window is everything from `lower`
            query = count_query(self.job, lower=lower)
        else:
            query = count_query(
                self.job,
                lower=lower,
                lower_closed=lower_closed,
                upper=upper,
                upper_closed=upper_closed,
            )
        rows = count(self._counting_engine(), query)
        at_boundary = None
        if self.boundary is not None and boundary and self.boundary.value == boundary:
            # the rows at the stored watermark now, against those that landed (module doc)
            at_boundary = count(
                self._counting_engine(), count_query(self.job, lower=lower, upper=lower)
            )
        return SourceCount(rows, lower, lower_closed, upper, upper_closed, boundary, at_boundary)

    # --- after the load ---------------------------------------------------------------------

    def finish(
        self,
        dest: Destination,
        dataset: str,
        table: str,
        landed: Landed,
    ) -> Outcome:
        if self.skip_reason:
            return Outcome(SKIPPED, None, self.skip_reason)
        if self.engine is None or self._final_count is None:
            return Outcome(SKIPPED, None, "source was not read")
        source = self._final_count.result()
        if not self.job.is_incremental:
            return self._finish_full(source.rows, landed.rows)
        return self._finish_incremental(dest, dataset, table, landed, source)

    @property
    def shared_snapshot(self) -> bool:
        """Whether dlt really read through the snapshot connection (a read path with its own
        connections, e.g. ConnectorX, does not: the counts then bracket the extraction)."""
        return self.snapshot is not None and self.snapshot.table_reads > 0

    def _counting_engine(self) -> Any:
        """Where to count after the extraction: the shared snapshot, else a new transaction.
        A snapshot the read did not go through (ConnectorX reads with its own connections)
        is released first, so the count on its connection sees the data as of now."""
        if self.snapshot is not None and not self.shared_snapshot and not self.snapshot.closed:
            self.snapshot.release()
        return self.engine

    def _finish_full(self, after: int, landed: int) -> Outcome:
        before = self.before
        if self.shared_snapshot:
            if before != after:
                return Outcome(
                    MISMATCH,
                    after,
                    f"snapshot not held: source counted {before} then {after} rows, "
                    f"lake {landed} rows",
                )
            if after == landed:
                return Outcome(MATCH, after, "same REPEATABLE READ snapshot")
            return Outcome(MISMATCH, after, f"source {after} rows, lake {landed} rows (snapshot)")
        if before == after == landed:
            return Outcome(MATCH, after, "counted before and after extraction")
        if before != after:
            return Outcome(
                MISMATCH,
                after,
                f"source changed during the load: {before} rows before, {after} after "
                f"extraction, lake {landed} rows",
            )
        return Outcome(MISMATCH, after, f"source {after} rows, lake {landed} rows")

    def _window(self, watermarks: Watermarks) -> tuple[Any, bool, Any, bool, str]:
        """(lower, lower_closed, upper, upper_closed, boundary) in the column's type."""
        job = self.job

        def value(text: Any) -> Any:
            return coerce_watermark(text, self.watermark_type, job)

        after = value(watermarks.after)
        if self.backfill:
            lower = value(self.backfill.start)
            upper = value(self.backfill.end)
            if upper is None:
                return lower, True, after, True, ""
            return lower, True, upper, False, ""
        before = watermarks.before
        if before:
            # rows at exactly the stored watermark were loaded by the previous run
            return value(before), False, after, True, str(before)
        return value(job.initial_watermark), True, after, True, ""

    def _finish_incremental(
        self,
        dest: Destination,
        dataset: str,
        table: str,
        landed: Landed,
        source: SourceCount,
    ) -> Outcome:
        if source.upper is None and not self.backfill:
            if source.rows == landed.rows == 0:
                return Outcome(MATCH, 0, "no rows in the window")
            return Outcome(
                MISMATCH, source.rows, f"source {source.rows} rows, lake {landed.rows} rows"
            )
        in_window = landed.rows
        landed_at_boundary = 0
        if source.boundary and landed.rows:
            landed_at_boundary = landed_at_watermark(
                dest,
                dataset,
                table,
                landed.load_id,
                self.job,
                source.lower,
                self.delta_version,
            )
            in_window = landed.rows - landed_at_boundary
        window = _describe_window(
            source.lower, source.lower_closed, source.upper, source.upper_closed
        )
        how = " (same snapshot)" if self.shared_snapshot else ""
        if source.at_boundary is not None and self.boundary is not None:
            expected = self.boundary.rows + landed_at_boundary
            if source.at_boundary > expected:
                return Outcome(MISMATCH, source.rows, self._dropped_note(source, expected))
        if source.rows == in_window:
            return Outcome(MATCH, source.rows, f"watermark {window}{how}")
        return Outcome(
            MISMATCH,
            source.rows,
            f"watermark {window}: source {source.rows} rows, lake {in_window} rows{how}",
        )

    def _dropped_note(self, source: SourceCount, expected: int) -> str:
        missing = int(source.at_boundary or 0) - expected
        key = (
            f"primary key {', '.join(self.job.primary_key)}"
            if self.job.primary_key
            else "no primary_key in the config (dlt compares whole rows, or the table's own key)"
        )
        return (
            f"{BOUNDARY_DROPPED}: {missing} row(s) with the stored watermark {source.boundary} "
            f"never landed: the source has {source.at_boundary} such rows, the lake {expected}. "
            "Rows that arrive after their watermark value was loaded are taken for the rows "
            f"loaded then by the boundary de-duplication ({key}). Declare a primary_key that "
            "tells rows apart, or use a strictly increasing watermark; run --full-refresh to "
            "reload them"
        )

    def close(self) -> None:
        if self._final_count is not None:
            # the count may still run (the load failed first): let it end before its
            # connection is disposed of; a failed load is reported, not the count's error
            self._final_count.exception()
        if self.snapshot is not None:
            self.snapshot.close()
        elif self.engine is not None:
            self.engine.dispose()


def _describe_window(lower: Any, lower_closed: bool, upper: Any, upper_closed: bool) -> str:
    left = ("[" if lower_closed else "(") + ("" if lower is None else str(lower))
    right = ("" if upper is None else str(upper)) + ("]" if upper_closed else ")")
    return f"{left}, {right}"


def landed_at_watermark(
    dest: Destination,
    dataset: str,
    table: str,
    load_id: str,
    job: JobConfig,
    value: Any,
    delta_version: int | None = None,
) -> int:
    """Rows of load `load_id` whose watermark equals `value` (read from the Parquet files)."""

    if not load_id or value is None:
        return 0
    fs = dest.filesystem()
    column = lake_name(job.watermark_column or "")

    if is_delta_table(dest, dataset, table, fs):
        # Delta: the rows this load appended = now minus the version before the load

        before = count_equal(dest, dataset, table, column, value, delta_version)
        return count_equal(dest, dataset, table, column, value) - before
    total = 0
    for path in table_files(dest, dataset, table, fs):
        if load_id_of(path) != load_id:
            continue
        with fs.open(path, "rb") as handle:
            data = pq.read_table(handle, columns=[column]).column(column)
        scalar = pa.scalar(value, type=data.type)
        total += int(pc.sum(pc.equal(data, scalar)).as_py() or 0)
    return total
