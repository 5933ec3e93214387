"""The first copy racing with writes on the source: a writer inserts, updates and deletes rows
before, during and after the copy (and the next run). Nothing is lost or landed twice: after the
writer stops and a last run, the current view equals the source, and no version is there twice."""

from __future__ import annotations

import threading
from collections import Counter

from ingest.cli import main
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, view
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
