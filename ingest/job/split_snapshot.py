"""One state of the source for every chunk of a split FULL load (PostgreSQL, the local runner).

PostgreSQL exports a transaction's snapshot (`pg_export_snapshot()`): a transaction that
starts with `SET TRANSACTION SNAPSHOT '<id>'` (REPEATABLE READ) sees exactly the data the
exporting one sees, for as long as that one stays open. The CLI's local runner holds the
exporting transaction open in its own process for the whole split load (`export`, from the
split load's start to its commit); every chunk reads through an engine whose every transaction
imports it (`importing_engine`), in whichever worker process and whenever it runs, so the
chunks read one state of the table; the commit counts the source in that state too
(`ingest.job.split.reconcile`).

- Both read paths import it: SQLAlchemy/psycopg2 (dlt's pyarrow backend) by a `begin` hook of
  the chunk's engine; ConnectorX (the fast path) by its `pre_execution_query`, which opens the
  REPEATABLE READ transaction and imports the snapshot on the read's own connection. ConnectorX
  computes a partitioned read's key bounds outside that transaction, so a chunk that reads a
  snapshot reads in one partition.
- The held transaction is one idle connection; while it is open the source's VACUUM cannot
  remove row versions the snapshot still sees (on a busy table, some bloat for the load's
  duration). It sets `idle_in_transaction_session_timeout = 0` for its own session only.
- Where no process can hold it (Durable activities on several instances) or the source exports
  no snapshot (MariaDB/MySQL, SQL Server, ...), the chunks read their ranges at their own
  times, and the reconciliation says what it counted before, at the commit and in the chunks.
- A snapshot that cannot be exported (a permission, a standby that refuses it) is logged and
  the load goes on without one; a chunk that cannot import it (the holder died) fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ingest.model.task import Task
from ingest.secrets import build_resolver
from ingest.settings import Settings
from ingest.sources import get_builder

log = logging.getLogger(__name__)

#: source types whose snapshots other transactions can import
EXPORTING = frozenset({"postgresql"})
#: the chunk task's key (inside its `split`) that names the snapshot to read
SNAPSHOT_KEY = "snapshot"


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


def wanted(task: Task) -> bool:
    """Whether a split load of `task` reads one exported snapshot: a FULL load (not an
    INCREMENTAL job's first load nor a backfill, which read windows of the watermark) of a
    source that exports snapshots."""
    job = task.job
    return not job.is_incremental and task.backfill is None and job.source_type in EXPORTING


def export(spec: Task, settings: Settings) -> HeldSnapshot | None:
    """Open the exporting transaction for the split load of `spec` (None: not wanted, or the
    source would not export one; then the chunks read at their own times)."""
    if not wanted(spec):
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
