"""The slot's messages as change rows of one table, read up to the run's bound.

A run reads whole transactions, in commit order, from the slot's confirmed position:
- a transaction whose commit LSN is at or below `skip_through` (the highest commit LSN the
  lake already holds) is read and dropped: it landed before a crash kept its confirmation
  from reaching the slot (exactly once);
- the read stops before the first transaction that commits at or after `end_lsn` (the WAL
  position when the run started: the run's end marker, a non-transactional logical message
  it writes at its start), or once `max_changes` changes or `max_bytes` bytes of messages were
  read (whole transactions: the check runs before each one), or when the marker (or, without
  one, a keepalive at or past `end_lsn`) arrives: a busy source never keeps a run going; the
  next run reads the rest.

For the reconciliation, the reader tells apart the transactions the source's count saw (its
REPEATABLE READ snapshot, taken right before the end marker: `Bound.visible`) from the ones
that committed after that snapshot and before the marker: their net rows (inserts - deletes)
are what the lake holds beyond the count (`ReadState.late_net`).

Each change gets its order in the lake (`_lsn`): the commit LSN of its transaction as 16
hexadecimal digits, `.`, and its place in the transaction as 8 (`000000000172AB40.00000003`).
Text of one width sorts like the numbers: a key's versions order by commit, then by their
order inside the transaction (a row changed twice by one transaction). The first copy's rows
carry the slot's consistent point with place 1 (place 0: the delete markers of a copy made
again over a lake that holds the table, `ingest.job.cdc`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ingest.errors import JobError
from ingest.sources.cdc import pgoutput
from ingest.sources.cdc.pgoutput import UNCHANGED

log = logging.getLogger(__name__)

INSERT, UPDATE, DELETE = "insert", "update", "delete"
Insert, Update, Delete = pgoutput.Insert, pgoutput.Update, pgoutput.Delete
#: what a change does to the table's row count (an update, even of the key, keeps it)
_NET: dict[type, int] = {Insert: 1, Delete: -1}


def order_text(commit_lsn: int, place: int) -> str:
    return f"{commit_lsn:016X}.{place:08X}"


class Row(NamedTuple):
    """One change of one row: its values (text, None, or UNCHANGED) in the order of `names`,
    the table's columns (a column the change did not carry: None)."""

    op: str
    order: str
    data: tuple[object, ...]
    names: tuple[str, ...]

    @property
    def values(self) -> dict[str, object]:
        """The values by column name."""
        return dict(zip(self.names, self.data, strict=True))

    @classmethod
    def of(cls, op: str, order: str, values: dict[str, object], names: tuple[str, ...]) -> Row:
        """A row from values by name (the names not given: None)."""
        return cls(op, order, tuple(map(values.get, names)), names)


class TruncateMark(NamedTuple):
    """A TRUNCATE of the table: every key the table held before it is deleted."""

    order: str


#: WAL page size and the page headers' sizes (a record never starts inside a header)
WAL_PAGE, PAGE_HEADERS = 8192, (24, 40)


#: where the table's columns are among a relation's values when they are the same, in the
#: same order: its values need no reordering
_SAME: tuple[int | None, ...] = ()

#: the prefix of the run's end marker (`pg_logical_emit_message`, non-transactional)
MARKER_PREFIX = "dlt-ingest-cdc-end"


@dataclass(frozen=True)
class Bound:
    end_lsn: int
    max_changes: int | None = None
    #: the content of this run's end marker: once the stream sends it, every transaction
    #: committed before it has been sent (None: no marker; wait for the position)
    marker: bytes | None = None
    #: bytes of messages (their payloads) one run reads at most (whole transactions)
    max_bytes: int | None = None
    #: whether a transaction (its xid) is in the snapshot the source was counted in
    visible: Callable[[int], bool] | None = None

    @property
    def reached_at(self) -> int:
        """Where the stream has sent everything before `end_lsn`: the insert position right
        after a page header is the end of the record that filled the page before it."""
        offset = self.end_lsn % WAL_PAGE
        return self.end_lsn - offset if offset in PAGE_HEADERS else self.end_lsn


@dataclass
class ReadState:
    """What the read found, for the commit and the audit."""

    #: the highest commit LSN of a transaction that landed rows in this run (0: none)
    last_commit_lsn: int = 0
    #: where the slot may be confirmed once the load committed (0: nowhere new)
    confirm_lsn: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    truncates: int = 0
    #: transactions read again and dropped (they had landed)
    skipped: int = 0
    ignored_columns: set[str] = field(default_factory=set)
    #: bytes of messages read (their payloads)
    bytes: int = 0
    #: why the read stopped before the run's end position ("" when it reached it)
    stopped_by: str = ""
    #: transactions read that the source's count did not see (they committed after its
    #: snapshot), their net rows (inserts - deletes) and TRUNCATEs of the table among them
    late_transactions: int = 0
    late_net: int = 0
    late_truncates: int = 0

    @property
    def changes(self) -> int:
        return self.inserts + self.updates + self.deletes + self.truncates


class ChangeReader:
    """The changes of table `schema.table` from a decoded stream (see module doc)."""

    def __init__(
        self,
        schema: str,
        table: str,
        keys: tuple[str, ...],
        columns: Iterable[str],
        skip_through: int,
        bound: Bound,
    ) -> None:
        self.schema, self.table, self.keys = schema, table, keys
        #: the table's columns: the order of every row's values
        self.names = tuple(columns)
        self.columns = set(self.names)
        self._key_at = tuple(self.names.index(k) for k in keys)
        self.skip_through, self.bound = skip_through, bound
        self.state = ReadState()
        self._relations: dict[int, pgoutput.Relation] = {}
        #: per relation: where the table's columns are among its values (`_known`)
        self._where: dict[int, tuple[int | None, ...]] = {}
        #: per relation id: the relation when it is this job's table, else None
        self._mine: dict[int, pgoutput.Relation | None] = {}

    def _ours(self, relation_id: int) -> pgoutput.Relation | None:
        return self._mine.get(relation_id)

    def _values(self, relation: pgoutput.Relation, values: tuple) -> tuple:
        """The relation's values in the table's column order (`names`)."""
        where = self._where.get(relation.relation_id)
        if where is None or len(values) != len(relation.columns):
            where = self._where[relation.relation_id] = self._known(relation)
            if len(values) != len(relation.columns):
                raise pgoutput.ProtocolError(
                    f"{len(values)} value(s) for the {len(relation.columns)} column(s) of "
                    f"{relation.namespace}.{relation.name}"
                )
        if not where:  # _SAME
            return values
        return tuple([values[i] if i is not None else None for i in where])

    def _known(self, relation: pgoutput.Relation) -> tuple[int | None, ...]:
        """Where each of the table's columns is among the relation's values (None: not
        there); `_SAME` when they are the table's columns in its order. A relation's column
        the table no longer has is logged once and not landed."""
        names = [c.name for c in relation.columns]
        for name in names:
            if name not in self.columns and name not in self.state.ignored_columns:
                # dropped since (the table read at the run's start has no such column)
                self.state.ignored_columns.add(name)
                log.info("column %s is no longer in %s: not landed", name, self.table)
        if tuple(names) == self.names:
            return _SAME
        at = {name: i for i, name in enumerate(names)}
        return tuple(at.get(name) for name in self.names)

    def _key(self, values: tuple) -> tuple:
        return tuple(values[i] for i in self._key_at)

    def rows(self, stream: Iterator[tuple[int, Any, int, int]]) -> Iterator[Row | TruncateMark]:
        """Change rows from `stream`: (data_start, decoded message or None, the server's
        decoded position, the message's size in bytes)."""
        state, bound = self.state, self.bound
        in_tx = skipping = late = False
        commit_lsn = place = 0
        visible = bound.visible
        mine = self._mine
        names = self.names
        prefix = ""
        for _, message, wal_end, size in stream:
            if message is None:
                if not in_tx and wal_end >= bound.reached_at:
                    # everything committed before the run's end position has been sent
                    state.confirm_lsn = max(state.confirm_lsn, wal_end)
                    return
                continue
            state.bytes += size
            kind = type(message)
            if kind is Insert or kind is Update or kind is Delete:
                if skipping:
                    continue
                relation = mine.get(message.relation_id)
                if relation is None:
                    continue
                if late:
                    state.late_net += _NET.get(kind, 0)
                if kind is Insert:  # the common shapes inline: a stream is mostly these
                    state.inserts += 1
                    place += 1
                    new = self._values(relation, message.new)
                    yield Row(INSERT, prefix + f"{place:08X}", new, names)
                    continue
                if kind is Update and message.old is None:
                    state.updates += 1
                    place += 1
                    new = self._values(relation, message.new)
                    self._check_key(new)
                    yield Row(UPDATE, prefix + f"{place:08X}", new, names)
                    continue
                for row in self._change(relation, message, commit_lsn, place):
                    place += 1
                    yield row
            elif kind is pgoutput.Begin:
                assert isinstance(message, pgoutput.Begin)
                if message.final_lsn >= bound.end_lsn:
                    return  # committed after the run started: the next run's
                if bound.max_changes is not None and state.changes >= bound.max_changes:
                    state.stopped_by = f"{bound.max_changes:,} changes"
                    return
                if bound.max_bytes is not None and state.bytes - size >= bound.max_bytes:
                    state.stopped_by = f"{bound.max_bytes:,} bytes"
                    return
                in_tx, commit_lsn, place = True, message.final_lsn, 0
                prefix = f"{commit_lsn:016X}."
                skipping = commit_lsn <= self.skip_through
                late = visible is not None and not skipping and not visible(message.xid)
                if late:
                    state.late_transactions += 1
            elif kind is pgoutput.Commit:
                assert isinstance(message, pgoutput.Commit)
                in_tx = False
                state.confirm_lsn = max(state.confirm_lsn, message.end_lsn)
                if skipping:
                    state.skipped += 1
                elif place:
                    state.last_commit_lsn = max(state.last_commit_lsn, commit_lsn)
            elif kind is pgoutput.Relation:
                assert isinstance(message, pgoutput.Relation)
                self._relations[message.relation_id] = message
                self._where.pop(message.relation_id, None)
                ours = message.namespace == self.schema and message.name == self.table
                mine[message.relation_id] = message if ours else None
            elif kind is pgoutput.Message:
                assert isinstance(message, pgoutput.Message)
                ours = message.prefix == MARKER_PREFIX and message.content == bound.marker
                if ours and not message.transactional and not in_tx:
                    state.confirm_lsn = max(state.confirm_lsn, message.lsn)
                    return
            elif kind is pgoutput.Truncate and not skipping:
                assert isinstance(message, pgoutput.Truncate)
                if any(self._ours(r) for r in message.relation_ids):
                    place += 1
                    state.truncates += 1
                    state.late_truncates += late
                    yield TruncateMark(order_text(commit_lsn, place))

    def _change(
        self, relation: pgoutput.Relation, message: object, commit_lsn: int, place: int
    ) -> list[Row]:
        state = self.state
        if isinstance(message, pgoutput.Insert):
            state.inserts += 1
            return [
                Row(
                    INSERT,
                    order_text(commit_lsn, place + 1),
                    self._values(relation, message.new),
                    self.names,
                )
            ]
        if isinstance(message, pgoutput.Delete):
            state.deletes += 1
            old = self._values(relation, message.old)
            return [Row(DELETE, order_text(commit_lsn, place + 1), old, self.names)]
        assert isinstance(message, pgoutput.Update)
        state.updates += 1
        new = self._values(relation, message.new)
        out = []
        if message.old is not None:
            old = self._values(relation, message.old)
            if message.old_kind == "O":  # REPLICA IDENTITY FULL: the old row, TOAST included
                new = tuple([o if v is UNCHANGED else v for v, o in zip(new, old, strict=True)])
            if self._key(old) != self._key(new):  # the key changed: the old key is gone
                out.append(Row(DELETE, order_text(commit_lsn, place + 1), old, self.names))
                place += 1
        self._check_key(new)
        out.append(Row(UPDATE, order_text(commit_lsn, place + 1), new, self.names))
        return out

    def _check_key(self, new: tuple) -> None:
        for i in self._key_at:
            value = new[i]
            if value is UNCHANGED or value is None:
                raise JobError(f"an update of {self.table} arrived without its key {self.keys}")
