"""The change reader, from decoded messages (no database): transactions at or below the lake's
LSN are dropped, the read stops at the run's end marker, its end position or its maximum (whole
transactions), a key that changes lands a delete of the old key, REPLICA IDENTITY FULL fills
unchanged TOAST values, a TRUNCATE of the table is one mark, and `_lsn` sorts like the LSNs."""

from __future__ import annotations

from ingest.sources.cdc import pgoutput as po
from ingest.sources.cdc.changes import (
    MARKER_PREFIX,
    Bound,
    ChangeReader,
    Row,
    TruncateMark,
    order_text,
)

REL = po.Relation(
    7,
    "public",
    "t",
    "d",
    (po.RelationColumn("id", 23, -1, True), po.RelationColumn("v", 25, -1, False)),
)
OTHER = po.Relation(8, "public", "other", "d", (po.RelationColumn("id", 23, -1, True),))


def tx(commit: int, *changes, xid: int = 0) -> list:
    return [
        (0, po.Begin(commit, 0, xid or commit), 0, 20),
        (0, REL, 0, 40),
        (0, OTHER, 0, 30),
        *[(0, c, 0, 10) for c in changes],
        (0, po.Commit(0, commit, commit + 8, 0), 0, 26),
    ]


def reader(
    skip: int = 0,
    end: int = 10_000,
    most: int | None = None,
    marker=None,
    most_bytes: int | None = None,
    visible=None,
):
    return ChangeReader(
        "public", "t", ("id",), ("id", "v"), skip, Bound(end, most, marker, most_bytes, visible)
    )


def test_transactions_the_lake_holds_are_dropped_and_the_rest_ordered():
    stream = [
        *tx(100, po.Insert(7, ("1", "a"))),
        *tx(200, po.Insert(7, ("2", "b")), po.Update(7, ("2", "c")), po.Insert(8, ("9",))),
        *tx(300, po.Delete(7, ("1", None), "K")),
        (0, None, 10_000, 0),
    ]
    read = reader(skip=100)
    rows = list(read.rows(iter(stream)))
    assert [(r.op, r.order, r.values["id"]) for r in rows] == [
        ("insert", order_text(200, 1), "2"),
        ("update", order_text(200, 2), "2"),
        ("delete", order_text(300, 1), "1"),
    ]
    assert read.state.skipped == 1 and read.state.last_commit_lsn == 300
    assert read.state.confirm_lsn == 10_000
    assert order_text(0xFF, 2) < order_text(0x100, 1) < order_text(0x100, 2)


def test_the_read_stops_at_its_marker_its_end_or_its_maximum():
    marker = b"m1"
    stream = [
        *tx(100, po.Insert(7, ("1", "a"))),
        (0, po.Message(False, 150, MARKER_PREFIX, b"someone else's"), 0, 40),
        (0, po.Message(False, 160, MARKER_PREFIX, marker), 0, 40),
        *tx(200, po.Insert(7, ("2", "b"))),
    ]
    read = reader(marker=marker)
    assert [r.values["id"] for r in read.rows(iter(stream))] == ["1"]
    assert read.state.confirm_lsn == 160
    late = reader(end=200)  # a transaction committing at or after the end: the next run's
    two = tx(100, po.Insert(7, ("1", "a"))) + tx(200, po.Insert(7, ("2", "b")))
    assert [r.values["id"] for r in late.rows(iter(two))] == ["1"]
    assert late.state.confirm_lsn == 108
    both = tx(100, po.Insert(7, ("1", "a")), po.Insert(7, ("2", "a")))
    most = reader(most=1)  # whole transactions: both rows of the first, none of the second
    rows = list(most.rows(iter(both + tx(200, po.Insert(7, ("3", "a"))))))
    assert [r.values["id"] for r in rows] == ["1", "2"]
    assert most.state.stopped_by == "1 changes"


def test_the_read_stops_at_its_maximum_of_bytes_between_whole_transactions():
    # each transaction: 20 + 40 + 30 + 10 per change + 26 bytes of messages
    three = [
        *tx(100, po.Insert(7, ("1", "a")), po.Insert(7, ("2", "a"))),
        *tx(200, po.Insert(7, ("3", "a"))),
        *tx(300, po.Insert(7, ("4", "a"))),
        (0, None, 10_000, 0),
    ]
    first = 20 + 40 + 30 + 2 * 10 + 26
    for bound, ids in ((1, ["1", "2"]), (first, ["1", "2"]), (first + 1, ["1", "2", "3"])):
        read = reader(most_bytes=bound)
        assert [r.values["id"] for r in read.rows(iter(three))] == ids
        assert read.state.stopped_by == f"{bound:,} bytes"
        assert read.state.confirm_lsn == (108 if len(ids) == 2 else 208)
    everything = reader(most_bytes=10_000)
    assert len(list(everything.rows(iter(three)))) == 4
    assert everything.state.stopped_by == "" and everything.state.bytes == 3 * 126 + 10


def test_transactions_the_count_did_not_see_add_their_net_rows():
    stream = [
        *tx(100, po.Insert(7, ("1", "a")), po.Insert(7, ("2", "a")), xid=5),  # seen
        *tx(200, po.Insert(7, ("3", "a")), po.Insert(7, ("4", "a")), po.Insert(8, ("9",)), xid=9),
        *tx(300, po.Delete(7, ("1", None), "K"), po.Update(7, ("2", "b")), xid=7),
        *tx(400, po.Truncate((7,), False, False), xid=11),
        (0, None, 10_000, 0),
    ]
    read = reader(visible=lambda xid: xid < 8)  # xids 9 and 11 committed after the snapshot
    list(read.rows(iter(stream)))
    assert (read.state.late_transactions, read.state.late_net) == (2, 2)
    assert read.state.late_truncates == 1 and read.state.truncates == 1


def test_a_key_change_deletes_the_old_key_and_full_identity_fills_toast():
    stream = [
        *tx(
            100,
            po.Update(7, ("5", "x"), ("4", None), "K"),
            po.Update(7, ("5", po.UNCHANGED), ("5", "big"), "O"),
            po.Truncate((8, 7), False, False),
        ),
        (0, None, 10_000, 0),
    ]
    rows = list(reader().rows(iter(stream)))
    assert isinstance(rows[0], Row) and (rows[0].op, rows[0].values["id"]) == ("delete", "4")
    assert (rows[1].op, rows[1].values) == ("update", {"id": "5", "v": "x"})
    assert rows[2].values == {"id": "5", "v": "big"}
    assert rows[3] == TruncateMark(order_text(100, 4))


def test_a_reading_stopped_before_its_end_leaves_collection_on():
    """The reading pauses cyclic garbage collection (`CdcRead._stream`); dlt may stop
    iterating it (a failure elsewhere): the job's close() resumes it, so a warm worker never
    keeps it off."""
    import gc

    from ingest.job import cdc

    read = object.__new__(cdc.CdcRead)
    read.collection = cdc.CollectionPause()
    read.replication = type("Replication", (), {"close_stream": lambda self: None})()
    read.engine = type("Engine", (), {"dispose": lambda self: None})()
    read.counter = None
    assert gc.isenabled()
    read.collection.pause()  # as _stream does at its start; the generator then abandoned
    assert not gc.isenabled()
    read.close()
    assert gc.isenabled()
