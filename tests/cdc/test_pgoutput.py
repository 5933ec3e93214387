"""The pgoutput decoder, message by message, from bytes built as the protocol documents them."""

from __future__ import annotations

import struct

import pytest

from ingest.sources.cdc import pgoutput as po


def s(text: str) -> bytes:
    return text.encode() + b"\x00"


def tup(*values) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is po.UNCHANGED:
            out += b"u"
        else:
            data = v.encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


def test_begin_and_commit():
    assert po.decode(b"B" + struct.pack("!QqI", 0x1_0000_0010, 7, 42)) == po.Begin(
        0x1_0000_0010, 7, 42
    )
    commit = po.decode(b"C" + struct.pack("!bQQq", 0, 100, 120, 9))
    assert commit == po.Commit(0, 100, 120, 9)


def test_relation_with_key_flags_and_type_modifiers():
    data = b"R" + struct.pack("!I", 16384) + s("public") + s("orders") + b"d"
    data += struct.pack("!h", 2)
    data += struct.pack("!b", 1) + s("id") + struct.pack("!Ii", 23, -1)
    data += struct.pack("!b", 0) + s("näme") + struct.pack("!Ii", 1043, 54)
    relation = po.decode(data)
    assert relation == po.Relation(
        16384,
        "public",
        "orders",
        "d",
        (po.RelationColumn("id", 23, -1, True), po.RelationColumn("näme", 1043, 54, False)),
    )


def test_insert_update_delete_tuples_null_unchanged_and_text():
    insert = po.decode(b"I" + struct.pack("!I", 5) + b"N" + tup("1", None, "a'b\"\\c", ""))
    assert insert == po.Insert(5, ("1", None, "a'b\"\\c", ""))
    plain = po.decode(b"U" + struct.pack("!I", 5) + b"N" + tup("1", po.UNCHANGED))
    assert plain == po.Update(5, ("1", po.UNCHANGED))
    keyed = po.decode(b"U" + struct.pack("!I", 5) + b"K" + tup("1", None) + b"N" + tup("2", "x"))
    assert keyed == po.Update(5, ("2", "x"), ("1", None), "K")
    full = po.decode(
        b"U" + struct.pack("!I", 5) + b"O" + tup("1", "big") + b"N" + tup("1", po.UNCHANGED)
    )
    assert full.old == ("1", "big") and full.old_kind == "O" and full.new[1] is po.UNCHANGED
    delete = po.decode(b"D" + struct.pack("!I", 5) + b"K" + tup("1", None))
    assert delete == po.Delete(5, ("1", None), "K")


def test_truncate_origin_type_and_message():
    assert po.decode(b"T" + struct.pack("!ibII", 2, 3, 7, 8)) == po.Truncate((7, 8), True, True)
    assert po.decode(b"O" + struct.pack("!Q", 9) + s("node")) == po.Origin(9, "node")
    assert po.decode(b"Y" + struct.pack("!I", 99) + s("public") + s("mood")) == po.Type(
        99, "public", "mood"
    )
    message = po.decode(b"M" + struct.pack("!bQ", 1, 5) + s("p") + struct.pack("!i", 2) + b"hi")
    assert message == po.Message(True, 5, "p", b"hi")


@pytest.mark.parametrize(
    "data, said",
    [
        (b"", "empty message"),
        (b"Z123", "unknown message type 'Z'"),
        (b"B" + struct.pack("!Q", 1), "truncated"),
        (b"I" + struct.pack("!I", 5) + b"X" + tup("1"), "expected a new tuple"),
        (
            b"I"
            + struct.pack("!I", 5)
            + b"N"
            + struct.pack("!h", 1)
            + b"t"
            + struct.pack("!i", 9)
            + b"ab",
            "truncated",
        ),
        (
            b"I" + struct.pack("!I", 5) + b"N" + struct.pack("!h", 1) + b"b",
            "unknown tuple value kind",
        ),
        (b"D" + struct.pack("!I", 5) + b"N" + tup("1"), "expected an old key"),
        (b"C" + struct.pack("!bQQq", 0, 1, 2, 3) + b"\x00", "trailing byte"),
        (b"R" + struct.pack("!I", 1) + b"public", "unterminated string"),
        (b"I" + struct.pack("!I", 5) + b"N" + struct.pack("!h", -1), "negative column count"),
    ],
)
def test_bytes_that_are_not_a_message_are_refused(data, said):
    with pytest.raises(po.ProtocolError, match=said):
        po.decode(data)


def test_lsn_text_round_trips():
    assert po.lsn_text(0x16_B374D848) == "16/B374D848"
    assert po.parse_lsn("16/B374D848") == 0x16_B374D848
    assert po.parse_lsn(po.lsn_text(2**64 - 1)) == 2**64 - 1
    for bad in ("", "16", "/1", "1/", "x/1", "123456789/1"):
        with pytest.raises(ValueError):
            po.parse_lsn(bad)
