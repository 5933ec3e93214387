"""One state of the source for every chunk of a split FULL load (exported snapshots).

PostgreSQL exports a transaction's snapshot (`pg_export_snapshot()`): a transaction that
starts with `SET TRANSACTION SNAPSHOT '<id>'` (REPEATABLE READ) sees exactly the data the
exporting one sees, for as long as that one stays open. A source declares that it can in its
builder's `Capabilities.exports_snapshot`; INGEST_SPLIT_SNAPSHOT=off turns it off everywhere.

- **Who holds it.** The CLI's local runner holds the exporting transaction in its own process
  from the split load's start until every chunk has ended (`export`). On Azure the batch
  orchestration runs a `hold_snapshot` activity next to the chunks (`ingest.app.activities`):
  it exports, records the id in the run store, and keeps the transaction open (`hold`) until
  every chunk has landed, the split load is gone (committed or abandoned), the commit has
  ended, or a bound.
- **How the chunks read it.** Every chunk reads through an engine whose every transaction
  imports it (`importing_engine`), in whichever process and whenever it runs. Both read paths
  import it: SQLAlchemy/psycopg2 (dlt's pyarrow backend) by a `begin` hook of the chunk's
  engine; ConnectorX (the fast path) by its `pre_execution_query`, which opens the REPEATABLE
  READ transaction and imports the snapshot on the read's own connection. ConnectorX computes a
  partitioned read's key bounds outside that transaction, so a chunk that reads a snapshot
  reads in one partition. Before it reads, a chunk counts its own range in the snapshot and
  lands that count with its rows: the commit's reconciliation sums those counts (one state,
  whether or not the snapshot is still held when the commit runs).
- **When the holder ends early** (its process died, its connection was cut, its bound): the
  snapshot cannot be imported any more (`gone`). A chunk that has not read yet then reads its
  range at its own time (logged), and lands without a snapshot; the reconciliation says that
  the load was not read in one state (which chunks read the snapshot, which did not) and
  compares the source's counts when the split load started, at its commit and in the chunks.
  A new snapshot would not help: the chunks that landed read the old one, and reading them
  again would throw away hours of a big table's work. A chunk whose read fails because the
  snapshot ended between its count and its read fails retriable (its retry reads at its own
  time); no chunk lands rows read in another state than the one it records.
- **Costs.** The held transaction is one idle connection; while it is open the source's VACUUM
  cannot remove row versions the snapshot still sees (on a busy table, some bloat for the
  load's duration): INGEST_SPLIT_SNAPSHOT=off when that matters more than one state. It sets
  `idle_in_transaction_session_timeout = 0` for its own session only.
- Where no snapshot is held (the setting off, the first load of an INCREMENTAL job or a
  backfill, a source that exports none: MariaDB/MySQL, SQL Server, ...), the chunks read their
  ranges at their own times, and the reconciliation says what it counted before, at the commit
  and in the chunks. A snapshot that cannot be exported (a permission, a standby that refuses
  it) is logged and the load goes on without one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from ingest.lake.destination import Destination
from ingest.lake.lease import read_commit_log
from ingest.model.task import SplitPlan, Task
from ingest.secrets import build_resolver
from ingest.settings import Settings
from ingest.sources import capabilities, get_builder

log = logging.getLogger(__name__)

#: the chunk task's key (inside its `split`) that names the snapshot to read
SNAPSHOT_KEY = "snapshot"
#: how often the holder asks whether the chunks still need its snapshot
HOLD_POLL_S = 3.0
#: SQLSTATE of PostgreSQL's "invalid snapshot identifier" (its exporter ended)
INVALID_PARAMETER = "22023"


class HeldSnapshot:
    """The exporting transaction, open until `close()`."""

    def __init__(self, engine: sa.Engine, connection: sa.Connection, snapshot_id: str):
        self.engine = engine
        self.connection = connection
        self.id = snapshot_id

    def close(self) -> None:
        try:
            self.connection.rollback()
            self.connection.close()
        except sa.exc.SQLAlchemyError as exc:  # it only read: the server ends it on disconnect
            log.debug("closing the exported snapshot: %s", type(exc).__name__)
        finally:
            self.engine.dispose()


def wanted(task: Task, settings: Settings) -> bool:
    """Whether a split load of `task` reads one exported snapshot: a FULL load (not an
    INCREMENTAL job's first load nor a backfill, which read windows of the watermark) of a
    source that exports snapshots (`Capabilities.exports_snapshot`), with
    INGEST_SPLIT_SNAPSHOT on."""
    job = task.job
    if job.is_incremental or task.backfill is not None or not settings.split_snapshot:
        return False
    try:
        return capabilities(job.source_type).exports_snapshot
    except (KeyError, ValueError):  # an unknown type fails elsewhere, with its own message
        return False


def gone(exc: BaseException) -> bool:
    """Whether `exc` says the snapshot could not be imported: its exporting transaction ended
    (both read paths: psycopg2's error code, ConnectorX's message)."""
    seen: BaseException | None = exc
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        code = getattr(seen, "pgcode", None) or getattr(getattr(seen, "orig", None), "pgcode", None)
        if code == INVALID_PARAMETER and "snapshot" in str(seen).lower():
            return True
        if "invalid snapshot identifier" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def export(spec: Task, settings: Settings) -> HeldSnapshot | None:
    """Open the exporting transaction for the split load of `spec` (None: not wanted, or the
    source would not export one; then the chunks read at their own times)."""
    if not wanted(spec, settings):
        return None
    job = spec.job
    try:
        resolver = build_resolver(settings.secrets_file, settings.key_vault_url)
        builder: Any = get_builder(job.source_type)
        secrets = builder.secrets(resolver, job.source_name)
        engine = sa.create_engine(
            builder.url(secrets), **builder.engine_kwargs(), isolation_level="REPEATABLE READ"
        )
    except Exception as exc:
        log.warning("job %s: no exported snapshot (%s)", job.job_id, type(exc).__name__)
        return None
    try:
        connection = engine.connect()
        connection.exec_driver_sql("SET idle_in_transaction_session_timeout = 0")
        snapshot_id = str(connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        log.warning(
            "job %s: the source exported no snapshot (%s); the chunks read their ranges at "
            "their own times",
            job.job_id,
            str(exc).splitlines()[0][:200],
        )
        return None
    log.info("job %s: the split load's chunks read exported snapshot %s", job.job_id, snapshot_id)
    return HeldSnapshot(engine, connection, snapshot_id)


def importing_engine(builder: Any, secrets: Mapping[str, Any], snapshot_id: str) -> sa.Engine:
    """An engine of the source (the job's timeouts) whose every transaction is REPEATABLE READ
    and starts by importing `snapshot_id`: whatever reads through it sees the exported state."""
    engine = builder.configure_engine(
        sa.create_engine(
            builder.url(secrets), **builder.engine_kwargs(), isolation_level="REPEATABLE READ"
        )
    )

    def import_snapshot(connection: sa.Connection) -> None:
        # the DBAPI cursor: the transaction's first statement, before SQLAlchemy's own
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))
        finally:
            cursor.close()

    sa.event.listen(engine, "begin", import_snapshot)
    return engine


def alive(held: HeldSnapshot) -> bool:
    """Whether the exporting transaction still answers (a statement in it: its snapshot is
    fixed since its first one, and the session does not look idle to the network)."""
    try:
        held.connection.exec_driver_sql("SELECT 1").scalar()
        return True
    except sa.exc.SQLAlchemyError as exc:
        log.warning("the exported snapshot %s ended: %s", held.id, type(exc).__name__)
        return False


def hold(
    held: HeldSnapshot,
    ended: Callable[[], str | None],
    bound_s: float,
    poll_s: float = HOLD_POLL_S,
) -> str:
    """Keep `held` open until `ended()` gives a reason (every chunk landed, the split load is
    gone, ...), its connection dies, or `bound_s` passed; asks every `poll_s`. Returns why it
    ended; the caller closes it."""
    start = time.monotonic()
    while True:
        try:
            reason = ended()
        except Exception as exc:  # a lake that does not answer for a moment: ask again later
            log.warning("snapshot %s: could not tell whether it is still needed: %s", held.id, exc)
            reason = None
        if reason:
            return reason
        if not alive(held):
            return "lost: its connection to the source ended"
        waited = time.monotonic() - start
        if waited >= bound_s:
            return f"bound: held {waited:.0f} s, the most allowed"
        time.sleep(min(poll_s, max(0.0, bound_s - waited)))


def holder_done(dest: Destination, task: Task, plan: SplitPlan) -> str | None:
    """Why the holder of `plan`'s snapshot may end, from the table's commit log (no lease
    needed; None: a chunk still needs it): every chunk landed, or the split load is no longer
    pending (committed or abandoned)."""
    job = task.job
    log_ = read_commit_log(dest, job.source_name, job.lake_table)
    pending = log_.pending if log_ is not None else None
    if pending is None or pending.token != plan.token:
        return "the split load is no longer pending (committed or abandoned)"
    if pending.complete:
        return f"every chunk of {pending.chunks} landed"
    return None


def importable(spec: Task, settings: Settings, snapshot_id: str) -> bool:
    """Whether a transaction can still import `snapshot_id` (its exporter is still open)."""
    job = spec.job
    resolver = build_resolver(settings.secrets_file, settings.key_vault_url)
    builder: Any = get_builder(job.source_type)
    engine = importing_engine(builder, builder.secrets(resolver, job.source_name), snapshot_id)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1").scalar()
        return True
    except Exception as exc:  # the import runs on the DBAPI cursor: psycopg2's own error
        if not gone(exc):
            raise
        return False
    finally:
        engine.dispose()
