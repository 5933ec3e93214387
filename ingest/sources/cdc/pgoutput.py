"""The `pgoutput` logical replication protocol (version 1), decoded from the bytes of each
XLogData message: BEGIN, COMMIT, RELATION, INSERT, UPDATE, DELETE, TRUNCATE, ORIGIN, TYPE and
MESSAGE (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).

Values arrive in PostgreSQL's text form (or as NULL, or as "unchanged TOAST": an UPDATE that
left an out-of-line value alone does not send it). `decode` raises `ProtocolError` for bytes
that are not a complete, known message: a truncated or unknown message never passes silently.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Union

#: a value the UPDATE did not send (an unchanged TOASTed value): keep the previous one
UNCHANGED = type("Unchanged", (), {"__repr__": lambda self: "UNCHANGED"})()
#: one column's value: its text, None for NULL, or UNCHANGED
Value = Union[str, None, object]  # noqa: UP007 (UNCHANGED is a sentinel object)


class ProtocolError(ValueError):
    """Bytes that are not a valid pgoutput message."""


class Begin(NamedTuple):
    #: the LSN of the transaction's commit record
    final_lsn: int
    commit_time_us: int
    xid: int


class Commit(NamedTuple):
    flags: int
    commit_lsn: int
    #: the end of the commit record: where the next transaction's reading starts
    end_lsn: int
    commit_time_us: int


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    #: part of the replica identity (the key sent with deletes)
    key: bool


@dataclass(frozen=True)
class Relation:
    relation_id: int
    namespace: str
    name: str
    #: `d` default (primary key), `f` full, `i` index, `n` nothing
    replica_identity: str
    columns: tuple[RelationColumn, ...]


class Insert(NamedTuple):
    relation_id: int
    new: tuple[Value, ...]


class Update(NamedTuple):
    relation_id: int
    new: tuple[Value, ...]
    #: the old row: its key (`K`, when the key changed) or all of it (`O`, REPLICA IDENTITY
    #: FULL); None when not sent
    old: tuple[Value, ...] | None = None
    old_kind: str = ""


class Delete(NamedTuple):
    relation_id: int
    #: the deleted row's key (`K`, other columns NULL) or all of it (`O`)
    old: tuple[Value, ...]
    old_kind: str


@dataclass(frozen=True)
class Truncate:
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class Type:
    type_oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Message:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Decoded = Union[  # noqa: UP007
    Begin, Commit, Relation, Insert, Update, Delete, Truncate, Origin, Type, Message
]


_I16, _I32, _U32 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!I")


class _Reader:
    """A cursor over one message's bytes; every read checks the bytes are there."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.at = 0

    def _need(self, size: int) -> int:
        start, end = self.at, self.at + size
        if size < 0 or end > len(self.data):
            raise ProtocolError(
                f"message truncated: wanted {size} byte(s) at offset {start} of {len(self.data)}"
            )
        self.at = end
        return start

    def take(self, size: int) -> bytes:
        start = self._need(size)
        return self.data[start : self.at]

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.data, self._need(size))
        return int(value)

    def int8(self) -> int:
        return self.unpack("!b")

    def byte(self) -> str:
        return chr(self.data[self._need(1)])

    def int16(self) -> int:
        return int(_I16.unpack_from(self.data, self._need(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack_from(self.data, self._need(4))[0])

    def uint32(self) -> int:
        return int(_U32.unpack_from(self.data, self._need(4))[0])

    def int64(self) -> int:
        return self.unpack("!q")

    def lsn(self) -> int:
        return self.unpack("!Q")

    def string(self) -> str:
        end = self.data.find(b"\x00", self.at)
        if end < 0:
            raise ProtocolError(f"unterminated string at offset {self.at}")
        text = self.data[self.at : end].decode("utf-8")
        self.at = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        values, self.at = _tuple_at(self.data, self.at)
        return values

    def end(self, what: str) -> None:
        if self.at != len(self.data):
            raise ProtocolError(
                f"{what} message has {len(self.data) - self.at} unexpected trailing byte(s)"
            )


def _tuple_at(data: bytes, at: int) -> tuple[tuple[Value, ...], int]:
    """TupleData at offset `at`: the values, and the offset after them. The common shapes
    take one unpack per value; a length or a value past the end is a truncated message."""
    size_of = len(data)
    try:
        (count,) = _I16.unpack_from(data, at)
        at += 2
        if count < 0:
            raise ProtocolError(f"negative column count {count}")
        values: list[Value] = []
        append = values.append
        for _ in range(count):
            kind = data[at]
            if kind == 0x74:  # 't'
                (length,) = _I32.unpack_from(data, at + 1)
                at += 5
                end = at + length
                if length < 0 or end > size_of:
                    raise ProtocolError(
                        f"message truncated: wanted {length} byte(s) at offset {at} of {size_of}"
                    )
                append(data[at:end].decode())
                at = end
            elif kind == 0x6E:  # 'n'
                append(None)
                at += 1
            elif kind == 0x75:  # 'u'
                append(UNCHANGED)
                at += 1
            else:  # 'b' (binary) only with the `binary` option, which we never ask for
                raise ProtocolError(f"unknown tuple value kind {chr(kind)!r}")
    except (IndexError, struct.error):
        raise ProtocolError(
            f"message truncated: a column count, value kind or length wanted at offset {at} of "
            f"{size_of}"
        ) from None
    return tuple(values), at


def _marker_at(data: bytes, at: int, what: str) -> int:
    if at >= len(data):
        raise ProtocolError(f"message truncated: {what} wanted at offset {at}")
    return data[at]


def _done(data: bytes, at: int, what: str) -> None:
    if at != len(data):
        raise ProtocolError(f"{what} message has {len(data) - at} unexpected trailing byte(s)")


def _relation_id(data: bytes) -> int:
    if len(data) < 5:
        raise ProtocolError(f"message truncated: wanted 4 byte(s) at offset 1 of {len(data)}")
    return int(_U32.unpack_from(data, 1)[0])


# the row changes, the bulk of a stream, are decoded straight from the bytes (no `_Reader`)


def _fast_insert(data: bytes) -> Insert:
    if len(data) > 6 and data[5] == 0x4E:  # the one shape: relation id, 'N', the new tuple
        new, at = _tuple_at(data, 6)
        if at == len(data):
            return Insert(_U32.unpack_from(data, 1)[0], new)
    relation_id = _relation_id(data)
    if (marker := _marker_at(data, 5, "a tuple marker")) != 0x4E:  # 'N'
        raise ProtocolError(f"INSERT: expected a new tuple ('N'), got {chr(marker)!r}")
    new, at = _tuple_at(data, 6)
    _done(data, at, "INSERT")
    return Insert(relation_id, new)


def _fast_update(data: bytes) -> Update:
    if len(data) > 6 and data[5] == 0x4E:  # the common shape: no old tuple, the new one
        new, at = _tuple_at(data, 6)
        if at == len(data):
            return Update(_U32.unpack_from(data, 1)[0], new)
    relation_id = _relation_id(data)
    marker, at = _marker_at(data, 5, "a tuple marker"), 6
    old, old_kind = None, ""
    if marker in (0x4B, 0x4F):  # 'K', 'O'
        old_kind = chr(marker)
        old, at = _tuple_at(data, at)
        marker = _marker_at(data, at, "a tuple marker")
        at += 1
    if marker != 0x4E:
        raise ProtocolError(f"UPDATE: expected a new tuple ('N'), got {chr(marker)!r}")
    new, at = _tuple_at(data, at)
    _done(data, at, "UPDATE")
    return Update(relation_id, new, old, old_kind)


def _fast_delete(data: bytes) -> Delete:
    relation_id = _relation_id(data)
    marker = _marker_at(data, 5, "a tuple marker")
    if marker not in (0x4B, 0x4F):
        raise ProtocolError(f"DELETE: expected an old key or row ('K' or 'O'), got {chr(marker)!r}")
    old, at = _tuple_at(data, 6)
    _done(data, at, "DELETE")
    return Delete(relation_id, old, chr(marker))


_FAST: dict[int, Callable[[bytes], Decoded]] = {
    0x49: _fast_insert,
    0x55: _fast_update,
    0x44: _fast_delete,
}


def decode(data: bytes) -> Decoded:
    """One pgoutput message (the payload of one XLogData message)."""
    if not data:
        raise ProtocolError("empty message")
    fast = _FAST.get(data[0])
    if fast is not None:
        return fast(data)
    reader = _Reader(data)
    kind = reader.byte()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    message = decoder(reader)
    reader.end(type(message).__name__.upper())
    return message


def _begin(r: _Reader) -> Begin:
    return Begin(r.lsn(), r.int64(), r.uint32())


def _commit(r: _Reader) -> Commit:
    return Commit(r.int8(), r.lsn(), r.lsn(), r.int64())


def _relation(r: _Reader) -> Relation:
    relation_id, namespace, name = r.uint32(), r.string(), r.string()
    identity = r.byte()
    columns = []
    for _ in range(r.int16()):
        flags = r.int8()
        columns.append(RelationColumn(r.string(), r.uint32(), r.int32(), bool(flags & 1)))
    return Relation(relation_id, namespace, name, identity, tuple(columns))


def _truncate(r: _Reader) -> Truncate:
    count, options = r.int32(), r.int8()
    if count < 0:
        raise ProtocolError(f"TRUNCATE: negative relation count {count}")
    ids = tuple(r.uint32() for _ in range(count))
    return Truncate(ids, bool(options & 1), bool(options & 2))


def _origin(r: _Reader) -> Origin:
    return Origin(r.lsn(), r.string())


def _type(r: _Reader) -> Type:
    return Type(r.uint32(), r.string(), r.string())


def _message(r: _Reader) -> Message:
    flags, lsn, prefix = r.int8(), r.lsn(), r.string()
    size = r.int32()
    return Message(bool(flags & 1), lsn, prefix, r.take(size))


_DECODERS: dict[str, Callable[[_Reader], Decoded]] = {
    "B": _begin,
    "C": _commit,
    "R": _relation,
    "T": _truncate,
    "O": _origin,
    "Y": _type,
    "M": _message,
}


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """PostgreSQL's `X/Y` text of an LSN as a number; ValueError for anything else."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"{text!r} is not an LSN (X/Y, hexadecimal)")
    return (int(high, 16) << 32) | int(low, 16)
