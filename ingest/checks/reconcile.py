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

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from ingest.checks.boundary import CAP as BOUNDARY_CAP
from ingest.checks.boundary import ReadWindow
from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.model.result import Landed, Watermarks
from ingest.model.task import Backfill
from ingest.sources.base import SourceBuilder
from ingest.sources.sql import SqlSourceBuilder, coerce_watermark
from ingest.vocabulary import Reconciled

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger(__name__)

MATCH, MISMATCH, SKIPPED = Reconciled.MATCH, Reconciled.MISMATCH, Reconciled.SKIPPED
#: source types whose extraction and count can share one REPEATABLE READ transaction
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
        column: sa.ColumnClause[Any] = sa.column(job.watermark_column)
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
        dialect.do_rollback = lambda dbapi_connection: None
        dialect.do_commit = lambda dbapi_connection: None
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
        can = builder.capabilities
        self.use_snapshot = not job.is_incremental and can.snapshot_isolation
        self.snapshot: Snapshot | None = None
        self.engine: Any = None
        self.before: int | None = None
        self.skip_reason = ""
        self._final_count: Future[SourceCount] | None = None
        #: how an INCREMENTAL run read (see `after_extraction`)
        self.read: ReadWindow | None = None
        #: the watermark column's type (SQL sources), to bind the window's bounds
        self.watermark_type: Any = None
        #: Delta tables: the table version before this load (None: no table yet)
        self.delta_version: int | None = None
        if not can.row_count or not isinstance(builder, SqlSourceBuilder):
            self.skip_reason = can.no_count_reason or f"{job.source_type} has no row count"

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
        read: ReadWindow | None = None,
        watermark_type: Any = None,
    ) -> None:
        """Start the final source count in the background. `watermarks`: the stored one and
        the one the extraction reached; `read`, how an INCREMENTAL run read (where it started,
        and the re-read boundary rows it dropped: `ingest.checks.boundary`); `watermark_type`,
        the watermark column's reflected type."""
        self.read = read
        self.watermark_type = watermark_type
        if self.skip_reason or self.engine is None or self._final_count is not None:
            return
        self._final_count = in_background(lambda: self._count_source(watermarks))

    def _count_source(self, watermarks: Watermarks) -> SourceCount:
        if not self.job.is_incremental:
            return SourceCount(count(self._counting_engine(), count_query(self.job)))
        lower, lower_closed, upper, upper_closed = self._window(watermarks)
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
        return SourceCount(rows, lower, lower_closed, upper, upper_closed)

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
        return self._finish_incremental(landed, source)

    def count_table(self) -> int:
        """The whole source table's rows, now (`ingest.checks.table_count`)."""
        return count(self._counting_engine(), count_query(self.job))

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

    def _window(self, watermarks: Watermarks) -> tuple[Any, bool, Any, bool]:
        """(lower, lower_closed, upper, upper_closed) in the column's type: what was read."""
        job = self.job

        def value(text: Any) -> Any:
            return coerce_watermark(text, self.watermark_type, job)

        after = value(watermarks.after)
        if self.backfill:
            lower = value(self.backfill.start)
            upper = value(self.backfill.end)
            if upper is None:
                return lower, True, after, True
            return lower, True, upper, False
        if watermarks.before and self.read is not None and self.read.start is not None:
            return self.read.start, self.read.closed, after, True
        return value(job.initial_watermark), True, after, True

    def _finish_incremental(self, landed: Landed, source: SourceCount) -> Outcome:
        if source.upper is None and not self.backfill:
            if source.rows == landed.rows == 0:
                return Outcome(MATCH, 0, "no rows in the window")
            return Outcome(
                MISMATCH, source.rows, f"source {source.rows} rows, lake {landed.rows} rows"
            )
        read = self.read or ReadWindow()
        window = _describe_window(
            source.lower, source.lower_closed, source.upper, source.upper_closed
        )
        how = " (same snapshot)" if self.shared_snapshot else ""
        dropped = (
            f", {read.dropped} re-read row(s) at the last watermark had landed before"
            if read.dropped
            else ""
        )
        if read.unverified:
            return Outcome(MISMATCH, source.rows, self._dropped_note(read, window))
        if read.reread:
            dropped += f", {read.reread} row(s) the lookback re-read were in the lake already"
        if read.late:
            dropped += f", {read.late} late row(s) caught by the lookback"
        if source.rows == landed.rows + read.dropped + read.reread:
            return Outcome(MATCH, source.rows, f"watermark {window}{how}{dropped}")
        return Outcome(
            MISMATCH,
            source.rows,
            f"watermark {window}: source {source.rows} rows, lake {landed.rows} rows{dropped}{how}",
        )

    def _dropped_note(self, read: ReadWindow, window: str) -> str:
        return (
            f"{BOUNDARY_DROPPED}: {read.unverified} row(s) arrived with the last watermark "
            f"after more than {BOUNDARY_CAP:,} rows with that value had landed, and this table "
            f"has no key to tell them apart (window {window}); they were not loaded. Declare a "
            "primary_key (the table's own is used when it has one), or use a strictly "
            "increasing watermark; run --full-refresh to reload the table"
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
