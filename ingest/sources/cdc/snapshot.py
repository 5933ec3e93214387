"""The source's row count of a CDC run, in a REPEATABLE READ snapshot taken right before the
run's end marker, and which transactions that snapshot saw.

A run reads every transaction that committed before its end marker (`ingest.sources.cdc.
changes`). The count's snapshot is taken first (its first statement), then the marker is
written: every transaction the snapshot sees committed before the marker, so the run reads it
(or had read it: it is in the lake). The marker may still come after a few transactions the
snapshot did not see (they committed between the two): the run reads those too, and tells them
apart by their xid against the snapshot's `xmin:xmax:xip` (`visible`). The lake then holds the
snapshot's rows plus those transactions' net rows (inserts - deletes): exact, whatever the
source's writers do meanwhile.

The count itself (`SELECT count(*)`) runs in a thread of its own in that transaction while the
run reads its changes (the database counts while we decode); `rows()` waits for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_XID_SPAN = 1 << 32


def full_xid(xid: int, xmax: int) -> int:
    """A 32-bit xid (as pgoutput sends it) as the 64-bit one closest to `xmax` (the snapshot's
    xmax, 64-bit): xids within 2^31 before or after it."""
    back = (xmax - xid) % _XID_SPAN
    return xmax - back if back <= _XID_SPAN // 2 else xmax + (_XID_SPAN - back)


def parse_snapshot(text: str) -> tuple[int, int, frozenset[int]]:
    """`xmin:xmax:xip,...` (pg_current_snapshot / txid_current_snapshot) as numbers."""
    xmin, xmax, xip = text.strip().split(":")
    return int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x)


class SnapshotCount:
    """One connection in one REPEATABLE READ, read-only transaction: `open()` fixes its
    snapshot, `start()` counts the table in it (in the background), `rows()` the count,
    `visible(xid)` whether a transaction committed before the snapshot."""

    def __init__(self, connection: Any, table_sql: str) -> None:
        self.connection = connection
        #: the table, quoted by SQLAlchemy's PostgreSQL dialect
        self.table_sql = table_sql
        self.snapshot = ""
        self._xmax = 0
        self._xip: frozenset[int] = frozenset()
        self._count: Future[int] | None = None

    def open(self) -> None:
        """The transaction's first statement: its snapshot, from now on."""
        self.connection.autocommit = False
        self.connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            # pg_current_snapshot: PostgreSQL 13 and later; the same text before
            function = (
                "pg_current_snapshot"
                if int(cursor.fetchone()[0]) >= 130000
                else ("txid_current_snapshot")
            )
            cursor.execute(f"SELECT {function}()::text")
            self.snapshot = str(cursor.fetchone()[0])
        _, self._xmax, self._xip = parse_snapshot(self.snapshot)

    def visible(self, xid: int) -> bool:
        """Whether the (committed) transaction `xid` is in the snapshot."""
        full = full_xid(xid, self._xmax)
        return full < self._xmax and full not in self._xip

    def start(self) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdc-count")
        try:
            self._count = executor.submit(self._run)
        finally:
            executor.shutdown(wait=False)

    def _run(self) -> int:
        with self.connection.cursor() as cursor:
            # one process, no JIT: the count runs beside the run's own work (on two cores a
            # parallel count took 0.45 s but ~1.3 s of CPU, a serial one 0.87 s; the JIT's
            # compilation alone ~0.1 s), and this transaction only
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(f"SELECT count(*) FROM {self.table_sql}")
            return int(cursor.fetchone()[0])

    def rows(self) -> int:
        assert self._count is not None, "start() first"
        return self._count.result()

    def close(self) -> None:
        if self._count is not None:
            if not self._count.done():  # the run failed first: the count is not wanted
                self.connection.cancel()
            self._count.exception()  # let the count end before its connection goes
        try:
            self.connection.rollback()
        except Exception as exc:  # the transaction only read; the server ends it on close
            log.debug("snapshot rollback failed: %s", exc)
        finally:
            self.connection.close()
