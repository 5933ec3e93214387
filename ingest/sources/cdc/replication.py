"""The job's replication slot and publication on the source, through psycopg2.

- `prepare()`: the publication for the job's table (made when missing; a publication that
  exists must publish the table, inserts, updates, deletes and truncates);
- `create_slot()`: a new logical slot (`pgoutput`) exporting its snapshot: the first copy reads
  the table in exactly that snapshot (`SET TRANSACTION SNAPSHOT`), so no change is lost or
  read twice between the copy and the stream (the copy holds every transaction committed
  before the slot's consistent point, the stream every one after);
- `stream()`: the slot's messages from its confirmed position, decoded (`pgoutput`);
- `confirm(lsn)`: moves the slot's confirmed position (`pg_replication_slot_advance`), only
  after the load committed; the source may then remove the WAL before it;
- `slots()` / `drop()`: what `dlt-ingest cdc status` lists and `cdc drop` removes.

Names are checked (`[a-z0-9_]{1,63}`) and quoted; the table's name reaches SQL only quoted by
SQLAlchemy's PostgreSQL dialect or as a bound parameter.
"""

from __future__ import annotations

import logging
import re
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ingest.errors import JobError, RetriableJobError
from ingest.sources.cdc import pgoutput
from ingest.sources.cdc.names import CdcNames

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
#: how long `confirm` retries while the slot is still marked active by the walsender that
#: served this run's stream (it exits a moment after the connection closes)
CONFIRM_WAIT_S = 30.0
#: the stream waits this long for the server before asking it for a keepalive (asked at
#: every empty read, the server answered each one while it was still decoding the WAL)
IDLE_S = 0.02


def _psycopg2() -> ModuleType:
    """The PostgreSQL driver with its replication connection: the one lazy import of it here."""
    # the driver of the PostgreSQL source: imported when a CDC job connects
    import psycopg2
    import psycopg2.extras

    return psycopg2


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise JobError(f"{name!r} is not a slot or publication name ([a-z0-9_], 1 to 63)")
    return f'"{name}"'


@dataclass(frozen=True)
class SlotInfo:
    name: str
    database: str
    plugin: str
    active: bool
    confirmed_lsn: int | None
    restart_lsn: int | None
    #: bytes of WAL the slot keeps on the source (current position - restart_lsn)
    retained_bytes: int | None
    #: bytes of WAL not yet confirmed (current position - confirmed position)
    lag_bytes: int | None


SLOTS_SQL = """
SELECT slot_name, database, plugin, active,
       confirmed_flush_lsn::text, restart_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), restart_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn)::bigint
FROM pg_replication_slots
WHERE slot_type = 'logical' {where}
ORDER BY slot_name
"""


def _lsn(text: str | None) -> int | None:
    return pgoutput.parse_lsn(text) if text else None


def slots(connection: Any, name: str | None = None) -> list[SlotInfo]:
    """The logical slots of the server (one, by name)."""
    where, params = ("AND slot_name = %s", (name,)) if name else ("", ())
    with connection.cursor() as cursor:
        cursor.execute(SLOTS_SQL.format(where=where), params)
        rows = cursor.fetchall()
    return [
        SlotInfo(r[0], r[1] or "", r[2] or "", bool(r[3]), _lsn(r[4]), _lsn(r[5]), r[6], r[7])
        for r in rows
    ]


class Replication:
    """One CDC job's slot and publication on one source database."""

    def __init__(self, connect: dict[str, Any], names: CdcNames, table_sql: str) -> None:
        #: psycopg2.connect keyword arguments (no secret is ever logged from them)
        self.connect_args = connect
        self.names = names
        #: the table's name, quoted by SQLAlchemy's PostgreSQL dialect
        self.table_sql = table_sql
        self._stream_connection: Any = None

    # --- connections ---------------------------------------------------------------------

    def connection(self) -> Any:
        connection = _psycopg2().connect(**self.connect_args)
        connection.autocommit = True
        return connection

    def replication_connection(self) -> Any:
        psycopg2 = _psycopg2()
        return psycopg2.connect(
            **self.connect_args, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )

    # --- publication and slot --------------------------------------------------------------

    def prepare(self, connection: Any, schema: str, table: str) -> None:
        """The publication of the table: made when missing, else checked."""
        publication = self.names.publication
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication "
                "WHERE pubname = %s",
                (publication,),
            )
            found = cursor.fetchone()
            if found is None:
                cursor.execute(
                    f"CREATE PUBLICATION {_ident(publication)} FOR TABLE {self.table_sql}"
                )
                log.info("created publication %s for %s", publication, self.table_sql)
                return
            cursor.execute(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s "
                "AND tablename = %s",
                (publication, schema, table),
            )
            holds = cursor.fetchone() is not None
        if not holds or not all(found):
            raise JobError(
                f"publication {publication} exists but does not publish every change of "
                f"{self.table_sql} (it must hold the table and publish insert, update, delete "
                f"and truncate): ALTER PUBLICATION {publication} ADD TABLE ..., or name another "
                "publication in cdc_publication"
            )

    def slot(self, connection: Any) -> SlotInfo | None:
        found = slots(connection, self.names.slot)
        return found[0] if found else None

    def create_slot(self) -> tuple[Any, int, str]:
        """A new slot that exports its snapshot: (the replication connection, which must stay
        open and idle until the snapshot is imported; the consistent point; the snapshot)."""
        connection = self.replication_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE_REPLICATION_SLOT {_ident(self.names.slot)} LOGICAL pgoutput "
                    "EXPORT_SNAPSHOT"
                )
                _, consistent_point, snapshot, _ = cursor.fetchone()
        except Exception:
            connection.close()
            raise
        log.info("created replication slot %s at %s", self.names.slot, consistent_point)
        return connection, pgoutput.parse_lsn(consistent_point), str(snapshot)

    def drop(self, connection: Any, *, publication: bool) -> list[str]:
        """Drop the slot (and the publication): what was dropped."""
        dropped = []
        with connection.cursor() as cursor:
            if self.slot(connection) is not None:
                cursor.execute("SELECT pg_drop_replication_slot(%s)", (self.names.slot,))
                dropped.append(f"slot {self.names.slot}")
            if publication:
                cursor.execute(
                    "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.names.publication,)
                )
                if cursor.fetchone() is not None:
                    cursor.execute(f"DROP PUBLICATION {_ident(self.names.publication)}")
                    dropped.append(f"publication {self.names.publication}")
        return dropped

    # --- the stream ------------------------------------------------------------------------

    def stream(
        self, deadline_s: float, *, messages: bool = True
    ) -> Iterator[tuple[int, pgoutput.Decoded | None, int, int]]:
        """(data_start, message, the server's decoded position, the message's bytes) from the
        slot's confirmed position; message None when nothing is waiting (a keepalive moved the
        position).
        Stops at `deadline_s` (time.monotonic()) with a retriable error."""
        connection = self._stream_connection = self.replication_connection()
        decode = pgoutput.decode
        try:
            cursor = connection.cursor()
            self._start(cursor, messages)
            while True:
                message = cursor.read_message()
                if message is None:
                    yield 0, None, int(cursor.wal_end or 0), 0
                    if time.monotonic() > deadline_s:
                        raise RetriableJobError(
                            f"slot {self.names.slot}: the stream did not reach the run's end "
                            "position in time; the next run continues"
                        )
                    if select.select([cursor], [], [], IDLE_S)[0]:
                        continue  # the server is sending: no need to ask it anything
                    # idle: ask for a keepalive now (it carries how far the server has
                    # decoded); the feedback's positions stay 0: nothing is confirmed here
                    cursor.send_feedback(reply=True)
                    select.select([cursor], [], [], 1.0)
                    continue
                payload = message.payload
                yield message.data_start, decode(payload), cursor.wal_end, len(payload)
        finally:
            self.close_stream()

    def _start(self, cursor: Any, messages: bool) -> None:
        """START_REPLICATION; a slot still held by the walsender of a reader that just died
        (it notices a moment later) is waited for, a bounded time."""
        deadline = time.monotonic() + CONFIRM_WAIT_S
        while True:
            try:
                cursor.start_replication(
                    slot_name=self.names.slot,
                    decode=False,
                    options={
                        "proto_version": "1",
                        "publication_names": self.names.publication,
                        # logical messages (the run's end marker): PostgreSQL 14 and later
                        **({"messages": "true"} if messages else {}),
                    },
                )
                return
            except Exception as exc:
                if "is active" not in str(exc) or time.monotonic() > deadline:
                    raise RetriableJobError(
                        f"replication slot {self.names.slot} cannot be read: {exc}".strip()
                    ) from None
                time.sleep(0.2)

    def wait_inactive(self, connection: Any) -> SlotInfo | None:
        """The slot once no reader holds it (a bounded wait; a live reader keeps it)."""
        deadline = time.monotonic() + CONFIRM_WAIT_S
        while True:
            info = self.slot(connection)
            if info is None or not info.active or time.monotonic() > deadline:
                return info
            time.sleep(0.2)

    def close_stream(self) -> None:
        if self._stream_connection is not None:
            try:
                self._stream_connection.close()
            finally:
                self._stream_connection = None

    def confirm(self, connection: Any, lsn: int) -> bool:
        """Move the slot's confirmed position to `lsn` (never back). False when the slot stayed
        busy (another reader): the next run reads those changes again and skips them."""
        deadline = time.monotonic() + CONFIRM_WAIT_S
        while True:
            info = self.slot(connection)
            if info is None:
                raise JobError(f"replication slot {self.names.slot} is gone")
            if info.confirmed_lsn is not None and info.confirmed_lsn >= lsn:
                return True
            if not info.active:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                            (self.names.slot, pgoutput.lsn_text(lsn)),
                        )
                    return True
                except Exception as exc:  # e.g. active again for a moment: retry
                    if "is active" not in str(exc) or time.monotonic() > deadline:
                        raise
            if time.monotonic() > deadline:
                log.warning("slot %s stayed busy: not confirmed at this run", self.names.slot)
                return False
            time.sleep(0.1)
