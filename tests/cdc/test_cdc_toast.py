"""Values stored out of line (TOAST) that an update leaves alone: pgoutput does not send them
(default replica identity), and the lake keeps the key's previous value, never NULL: from an
earlier change of the key in the same run, else from the lake's current state, also when the
key changes several times in one run and every change leaves the value alone."""

from __future__ import annotations

from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, run, view

#: ~6 KB: stored out of line as it is (STORAGE EXTERNAL: never compressed inline)
BIG = "repeat(md5(%s::text), 200)"


def test_values_left_out_of_line_keep_their_previous_value(
    source, file_lake, tmp_path, monkeypatch
):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute("ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL")
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, now(), repeat(md5(x::text), 200) "
        "FROM generate_series(1, 10) x"
    )
    path = config(tmp_path)
    run(path, file_lake, "r1")
    # 1: two updates in two transactions, both leave `big` alone (the lake's value both times)
    source.execute("UPDATE items SET name = 'one' WHERE id = 1")
    source.execute("UPDATE items SET name = 'two' WHERE id = 1")
    # 2: `big` changed, then left alone (this run's earlier value)
    source.execute("UPDATE items SET big = repeat(md5('new'), 200) WHERE id = 2")
    source.execute("UPDATE items SET name = 'after' WHERE id = 2")
    # 3: left alone in a transaction that changes the row twice
    source.execute(
        "BEGIN; UPDATE items SET amount = 1 WHERE id = 3; UPDATE items SET amount = 2 "
        "WHERE id = 3; COMMIT"
    )
    second = run(path, file_lake, "r2")
    assert second["rows_updated"] == "6" and second["reconciled"] == "MATCH"
    equal_both_ways(source, file_lake)
    nulls = view(file_lake, f"SELECT count(*) FROM {SOURCE}.items_history WHERE big IS NULL")
    assert nulls == [(0,)], "a value left out of line landed as NULL"
    # and in the next run, from the lake's state (the newest version of each key)
    source.execute("UPDATE items SET name = 'later' WHERE id IN (1, 2, 3)")
    run(path, file_lake, "r3")
    equal_both_ways(source, file_lake)


def test_values_left_out_of_line_across_batches(source, file_lake, tmp_path, monkeypatch):
    """Batches of 100 changes (INGEST_CHUNK_SIZE), typed in a thread while the next is read:
    a value changed in the first batch and left alone in a batch 300 changes later comes from
    this run's earlier value (kept on disk by then), another from the lake's state."""
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_CHUNK_SIZE", "100")
    source.execute(ITEMS)
    source.execute("ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL")
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x, now(), repeat(md5(x::text), 200) "
        "FROM generate_series(1, 10) x"
    )
    path = config(tmp_path)
    run(path, file_lake, "r1")
    source.execute("UPDATE items SET big = repeat(md5('new'), 200) WHERE id = 2")
    source.execute(
        "INSERT INTO items SELECT x, 'filler ' || x, x, now(), NULL FROM generate_series(11, 310) x"
    )
    source.execute("UPDATE items SET name = 'after' WHERE id IN (1, 2)")
    second = run(path, file_lake, "r2")
    assert second["rows_inserted"] == "300" and second["reconciled"] == "MATCH"
    equal_both_ways(source, file_lake)
    nulls = view(
        file_lake, f"SELECT count(*) FROM {SOURCE}.items_history WHERE big IS NULL AND id <= 10"
    )
    assert nulls == [(0,)], "a value left out of line landed as NULL"
