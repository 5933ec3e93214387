"""The first copy racing with writes on the source: a writer inserts, updates and deletes rows
before, during and after the copy (and the next run). Nothing is lost or landed twice: after the
writer stops and a last run, the current view equals the source, and no version is there twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from ingest.cli import main
from ingest.sources.cdc.replication import Replication
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, run, view
from tests.fixtures.processes import audit_rows


def writer(source, stop: threading.Event, counts: Counter) -> None:
    connection = source.cluster.connect(source.name)
    connection.autocommit = True
    next_id = 100_000
    try:
        with connection.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "BEGIN; INSERT INTO items VALUES (%s, 'w', 1, now(), NULL); "
                    "UPDATE items SET name = 'upd', amount = amount + 1 "
                    "WHERE id = (SELECT id FROM items ORDER BY random() LIMIT 1); "
                    "DELETE FROM items WHERE id = (SELECT id FROM items WHERE id < 100000 "
                    "ORDER BY random() LIMIT 1); COMMIT",
                    (next_id,),
                )
                next_id += 1
                counts["transactions"] += 1
    finally:
        connection.close()


def test_the_first_copy_racing_with_writes_loses_nothing_and_lands_nothing_twice(
    source, file_lake, tmp_path, monkeypatch
):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_CHUNK_SIZE", "1000")  # many batches: the copy takes a while
    source.execute(ITEMS)
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, now(), repeat('v', 100) "
        "FROM generate_series(1, 30000) x"
    )
    path = config(tmp_path)
    stop, counts = threading.Event(), Counter()
    thread = threading.Thread(target=writer, args=(source, stop, counts))
    thread.start()
    try:
        assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r1"]) == 0
        assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r2"]) == 0
    finally:
        stop.set()
        thread.join(30)
    assert counts["transactions"] > 10  # the writer did write meanwhile
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r3"]) == 0
    equal_both_ways(source, file_lake)
    versions = view(file_lake, f"SELECT id, _lsn FROM {SOURCE}.items_history")
    assert [k for k, n in Counter(versions).items() if n > 1] == []
    # the runs while the writer wrote are no false MISMATCH: each counted the source in a
    # snapshot and added what committed after it (`ingest.checks.cdc_count`)
    audits = {r["run_id"]: r for r in audit_rows(file_lake)}
    for run_id in ("r1", "r2", "r3"):
        assert audits[run_id]["reconciled"] == "MATCH", audits[run_id]["reconcile_note"]


@pytest.mark.parametrize("backend", ["auto", "pyarrow"])
def test_writes_between_the_slot_and_the_copys_read_are_the_streams_not_the_copys(
    source, file_lake, tmp_path, monkeypatch, backend: str
):
    """Forced overlap: right after the slot exports its snapshot, and before the copy reads a
    row, a transaction inserts, updates and deletes. The copy (ConnectorX with `auto`, in a
    transaction of its own that imports the snapshot; psycopg2 with `pyarrow`) reads the
    snapshot's rows only, counted in the same snapshot; the next run streams that transaction.
    A copy that read the table as it is now would hold 101 rows against a count of 100."""
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_BACKEND", backend)
    source.execute(ITEMS)
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, now(), NULL FROM generate_series(1, 100) x"
    )
    created = Replication.create_slot

    def create_then_write(self):
        made = created(self)
        source.execute(
            "BEGIN; INSERT INTO items VALUES (500, 'late', 5, now(), NULL); "
            "UPDATE items SET name = 'changed' WHERE id = 1; DELETE FROM items WHERE id = 2; COMMIT"
        )
        return made

    monkeypatch.setattr(Replication, "create_slot", create_then_write)
    path = config(tmp_path)
    first = run(path, file_lake, "r1")
    assert (first["rows_loaded"], first["source_rows"], first["reconciled"]) == (
        "100",
        "100",
        "MATCH",
    ), first["reconcile_note"]
    monkeypatch.setattr(Replication, "create_slot", created)
    second = run(path, file_lake, "r2")
    assert (second["rows_inserted"], second["rows_updated"], second["rows_deleted"]) == (
        "1",
        "1",
        "1",
    )
    equal_both_ways(source, file_lake)
    versions = view(
        file_lake, f"SELECT id, name, _deleted FROM {SOURCE}.items_history WHERE id IN (1, 2, 500)"
    )
    assert sorted(versions, key=lambda v: (v[0], v[2], v[1] or "")) == [
        (1, "changed", False),
        (1, "item 1", False),
        (2, "item 2", False),
        (2, None, True),
        (500, "late", False),
    ]
