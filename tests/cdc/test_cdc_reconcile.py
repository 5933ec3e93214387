"""Every CDC run reconciles the whole table: the source's count, in a REPEATABLE READ snapshot
taken right before the run's end marker, against the rows of the lake's current state after the
load (`ingest.checks.cdc_count`). A quiet source matches exactly; transactions that commit
between the snapshot and the marker (the run reads them, the count did not see them) are added
by xid, so a source written during the run is no false MISMATCH; a lake that really lost a row,
or a change the stream never sent, is a MISMATCH."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest.cli import main
from ingest.job import cdc as cdc_job
from ingest.sources.cdc.snapshot import full_xid, parse_snapshot
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, run
from tests.fixtures.processes import audit_rows


def fill(source, first: int, last: int) -> None:
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, now(), NULL FROM generate_series(%s, %s) x",
        (first, last),
    )


def audit(lake: str, run_id: str) -> dict:
    (row,) = [r for r in audit_rows(lake) if r["run_id"] == run_id]
    return row


def test_xids_against_the_snapshot():
    assert parse_snapshot("10:20:12,15") == (10, 20, frozenset({12, 15}))
    assert parse_snapshot("7:7:") == (7, 7, frozenset())
    assert full_xid(5, 20) == 5 and full_xid(25, 20) == 25
    # a 32-bit xid from the epoch before the snapshot's xmax, and from the next one
    epoch = 3 << 32
    assert full_xid(0xFFFFFFF0, epoch + 0x10) == epoch - 0x10
    assert full_xid(0x20, epoch - 0x10) == epoch + 0x20


@pytest.mark.parametrize("compact_loads", ["1", "30"])
def test_a_quiet_source_matches_with_its_counts(
    source, file_lake, tmp_path, monkeypatch, compact_loads
):
    """Compacted after every run (the default): the lake is counted from the new base; not
    compacted: from the first copy and the keys changed since, the copy read by its key only."""
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_COMPACT_LOADS", compact_loads)
    source.execute(ITEMS)
    fill(source, 1, 1000)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    fill(source, 1001, 1100)
    source.execute("UPDATE items SET name = 'u' WHERE id % 10 = 0")
    source.execute("DELETE FROM items WHERE id BETWEEN 1 AND 30")
    second = run(path, file_lake, "r2")
    assert second["reconciled"] == "MATCH", second["reconcile_note"]
    assert (second["source_rows"], second["table_rows_source"]) == ("1070", "1070")
    assert (second["table_rows_lake"], second["table_reconciled"]) == ("1070", "MATCH")
    assert "100 insert(s), 110 update(s), 30 delete(s)" in second["reconcile_note"]
    assert "committed after it" not in second["reconcile_note"]  # nothing written meanwhile
    how = "from the compacted base" if compact_loads == "1" else "from the first copy"
    assert f"({how})" in second["reconcile_note"], second["reconcile_note"]
    source.execute("DELETE FROM items WHERE id BETWEEN 31 AND 40")
    source.execute("UPDATE items SET name = 'again' WHERE id % 10 = 0")
    third = run(path, file_lake, "r3")  # a second load after the copy (or the base)
    assert (third["reconciled"], third["table_rows_lake"]) == ("MATCH", "1060"), third


def test_transactions_committed_between_the_count_and_the_end_are_no_false_mismatch(
    source, file_lake, tmp_path, monkeypatch
):
    """Two transactions commit after the count's snapshot and before the end marker: the run
    reads them (the lake holds one row more than the snapshot counted) and adds them by xid."""
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "30")  # counted from the first copy
    source.execute(ITEMS)
    fill(source, 1, 100)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    fill(source, 101, 110)
    real = cdc_job.end_position
    written = []

    def writes_first(connection):
        if not written:  # the snapshot is taken by now: a writer commits before the marker
            other = source.cluster.connect(source.name)
            other.autocommit = True
            with other.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO items VALUES (500, 'a', 1, now(), NULL), "
                    "(501, 'b', 1, now(), NULL)"
                )
                cursor.execute("DELETE FROM items WHERE id = 5")
            other.close()
            written.append(True)
        return real(connection)

    monkeypatch.setattr(cdc_job, "end_position", writes_first)
    second = run(path, file_lake, "r2")
    assert written
    note = second["reconcile_note"]
    assert second["reconciled"] == "MATCH", note
    assert "+1 from 2 transaction(s) committed after it" in note, note
    assert second["table_rows_lake"] == "111" and second["rows_inserted"] == "12"
    equal_both_ways(source, file_lake)
    monkeypatch.setattr(cdc_job, "end_position", real)
    third = run(path, file_lake, "r3")  # quiet again: exact
    assert (third["reconciled"], third["source_rows"]) == ("MATCH", "111")


def test_a_lake_that_lost_a_row_is_a_mismatch(source, file_lake, tmp_path, monkeypatch):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    fill(source, 1, 100)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    # a row removed from the first copy's files by hand
    lake = Path(file_lake.removeprefix("file://"))
    (copy,) = [p for p in (lake / SOURCE / "items").rglob("*.parquet")]
    table = pq.read_table(copy)
    pq.write_table(table.filter(pc.not_equal(table["id"], 42)), copy)
    source.execute("UPDATE items SET name = 'u' WHERE id = 1")
    args = ["run", "--config", path, "--destination", file_lake]
    assert main([*args, "--run-id", "r2"]) != 0
    second = audit(file_lake, "r2")
    assert (second["status"], second["reconciled"]) == ("FAILED", "MISMATCH"), second
    assert (second["source_rows"], second["table_rows_lake"]) == ("100", "99")


def test_a_change_the_stream_never_sent_is_a_mismatch(source, file_lake, tmp_path, monkeypatch):
    """The table was out of the publication for a while (an operator's mistake): its changes
    meanwhile are not in the stream, and the count says so."""
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    fill(source, 1, 100)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    (publication,) = source.query("SELECT pubname FROM pg_publication")
    source.execute(f'ALTER PUBLICATION "{publication[0]}" DROP TABLE items')
    source.execute("DELETE FROM items WHERE id = 7")
    source.execute(f'ALTER PUBLICATION "{publication[0]}" ADD TABLE items')
    source.execute("UPDATE items SET name = 'u' WHERE id = 1")
    monkeypatch.setenv("INGEST_RECONCILE", "WARN")
    args = ["run", "--config", path, "--destination", file_lake]
    main([*args, "--run-id", "r2"])
    second = audit(file_lake, "r2")
    assert second["reconciled"] == "MISMATCH", second
    assert (second["source_rows"], second["table_rows_lake"]) == ("99", "100")
