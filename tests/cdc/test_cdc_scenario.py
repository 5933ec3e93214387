"""CDC end to end against a PostgreSQL of our own with wal_level = logical: the first copy in the
slot's snapshot, then inserts, updates (some that leave the watermark-like column alone), deletes,
a key that changes, a row changed twice in one transaction, TOASTed values left unchanged, a
TRUNCATE and a column added. After every run the current view equals the source (compared both
ways) and the history holds every change in LSN order. On a file:// lake and on Azurite."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.cli import main
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, run, view
from tests.fixtures.sheet import TABLE_JOB, sheet_header


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


BIG = "repeat(md5(x::text) || md5((x * 7)::text), 200)"  # ~12 KB, stored out of line


def test_every_change_lands_exactly_once_in_lsn_order(source, lake, tmp_path, monkeypatch):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute(
        "INSERT INTO items SELECT x, 'item ' || x, x * 1.5, "
        f"timestamptz '2024-01-01 00:00+00' + x * interval '1 min', "
        f"CASE WHEN x % 10 = 0 THEN {BIG} ELSE 'small ' || x END FROM generate_series(1, 200) x"
    )
    path = config(tmp_path)
    first = run(path, lake, "r1")
    assert first["reconciled"] == "MATCH" and first["rows_loaded"] == "200"
    assert first["source_rows"] == "200"
    equal_both_ways(source, lake)

    # run 2: inserts, updates with and without the timestamp, deletes, a key change, a row
    # changed three times in one transaction, TOASTed values left unchanged (default replica
    # identity: pgoutput does not send them)
    source.execute(
        "INSERT INTO items SELECT x, 'new ' || x, 1, now(), NULL FROM generate_series(201, 210) x"
    )
    source.execute("UPDATE items SET amount = amount + 1 WHERE id BETWEEN 1 AND 15")
    source.execute("UPDATE items SET name = 'renamed ' || id, updated_at = now() WHERE id < 5")
    source.execute("UPDATE items SET name = 'toast kept ' || id WHERE id IN (10, 20, 30)")
    source.execute("UPDATE items SET amount = 99 WHERE id = 20")  # again, still unchanged big
    source.execute("DELETE FROM items WHERE id BETWEEN 100 AND 104")
    source.execute("UPDATE items SET id = 1000 WHERE id = 50")
    source.execute(
        "BEGIN; UPDATE items SET name = 'one' WHERE id = 60; "
        "UPDATE items SET name = 'two' WHERE id = 60; DELETE FROM items WHERE id = 61; "
        "INSERT INTO items VALUES (61, 'back', 0, now(), NULL); "
        "UPDATE items SET name = 'three' WHERE id = 60; COMMIT"
    )
    second = run(path, lake, "r2")
    equal_both_ways(source, lake)
    assert second["rows_inserted"] == "11" and second["rows_deleted"] == "7"
    # the whole table, every run: the source counted in a snapshot right before the run's end
    # against the lake's current state (`test_cdc_reconcile`)
    assert second["reconciled"] == "MATCH" and "6 delete(s)" in second["reconcile_note"]
    assert second["source_rows"] == "205" and second["table_rows_lake"] == "205"
    history = view(
        lake,
        f"SELECT name, _deleted FROM {SOURCE}.items_history WHERE id = 60 ORDER BY _lsn",
    )
    assert history == [("item 60", False), ("one", False), ("two", False), ("three", False)]
    assert view(lake, f"SELECT _deleted FROM {SOURCE}.items_history WHERE id = 50") == [
        (False,),
        (True,),
    ]

    # nothing changed: nothing lands, the view stays the source
    third = run(path, lake, "r3")
    assert third["load_id"] == "" and third["rows_loaded"] == "0"
    assert (third["reconciled"], third["source_rows"]) == ("MATCH", "205")
    equal_both_ways(source, lake)

    # run 4: rows, a TRUNCATE, rows after it (one transaction), then more rows
    source.execute("INSERT INTO items VALUES (500, 'before truncate', 1, now(), NULL)")
    source.execute(
        "BEGIN; UPDATE items SET name = 'x' WHERE id = 1; TRUNCATE items; "
        "INSERT INTO items VALUES (1, 'after truncate', 2, now(), 'a'); COMMIT"
    )
    source.execute("INSERT INTO items VALUES (2, 'later', 3, now(), 'b')")
    fourth = run(path, lake, "r4")
    equal_both_ways(source, lake)
    assert view(lake, f"SELECT count(*) FROM {SOURCE}.items") == [(2,)]
    assert (fourth["reconciled"], fourth["source_rows"]) == ("MATCH", "2")

    # run 5: a column added while the job runs (schema_policy evolve: it lands)
    source.execute("ALTER TABLE items ADD COLUMN extra numeric(5, 1)")
    source.execute("UPDATE items SET extra = 1.5 WHERE id = 1")
    source.execute("INSERT INTO items VALUES (3, 'with extra', 4, now(), 'c', 7.5)")
    fifth = run(path, lake, "r5")
    assert "extra" in fifth["schema_changes"]
    assert (fifth["reconciled"], fifth["source_rows"]) == ("MATCH", "3")
    equal_both_ways(source, lake, extra=", extra")
    places = view(lake, f"SELECT id, _lsn FROM {SOURCE}.items_history")
    assert len(places) == len(set(places)), "every change of a key has its own place"


def test_a_run_reads_whole_transactions_up_to_the_configured_maximum(
    source, file_lake, tmp_path, monkeypatch
):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_CDC_MAX_CHANGES", "5")
    source.execute(ITEMS)
    path = config(tmp_path)
    run(path, file_lake, "r1")  # an empty first copy
    for tx in range(3):  # three transactions of four inserts
        source.execute(
            "INSERT INTO items SELECT x, 'n', 1, now(), NULL FROM generate_series(%s, %s) x",
            (tx * 4 + 1, tx * 4 + 4),
        )
    second = run(path, file_lake, "r2")
    assert second["rows_inserted"] == "8"  # 4 < 5: a second whole transaction, then stop
    assert view(file_lake, f"SELECT count(*) FROM {SOURCE}.items") == [(8,)]
    # the source's snapshot holds the third transaction: not compared, said so
    assert second["reconciled"] == "SKIPPED"
    assert "stopped after 5 changes" in second["reconcile_note"], second["reconcile_note"]
    third = run(path, file_lake, "r3")
    assert third["rows_inserted"] == "4"
    assert (third["reconciled"], third["source_rows"]) == ("MATCH", "12")
    equal_both_ways(source, file_lake)


def test_a_run_reads_whole_transactions_up_to_the_configured_bytes(
    source, file_lake, tmp_path, monkeypatch
):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_CDC_MAX_BYTES", "1")  # checked before each transaction
    source.execute(ITEMS)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    for tx in range(2):  # two transactions of three inserts
        source.execute(
            "INSERT INTO items SELECT x, 'n', 1, now(), NULL FROM generate_series(%s, %s) x",
            (tx * 3 + 1, tx * 3 + 3),
        )
    second = run(path, file_lake, "r2")
    assert second["rows_inserted"] == "3"  # the first whole transaction, then the bound
    assert "stopped after 1 bytes" in second["reconcile_note"], second["reconcile_note"]
    third = run(path, file_lake, "r3")
    assert third["rows_inserted"] == "3" and third["reconciled"] == "MATCH"
    equal_both_ways(source, file_lake)


def test_a_compacted_cdc_table_keeps_its_current_state_and_history(
    source, file_lake, tmp_path, monkeypatch
):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "2")
    source.execute(ITEMS)
    source.execute("INSERT INTO items SELECT x, 'i', x, now(), NULL FROM generate_series(1, 100) x")
    path = config(tmp_path)
    run(path, file_lake, "r1")
    for night in range(2, 6):
        source.execute("UPDATE items SET name = %s WHERE id %% 7 = %s", (f"n{night}", night))
        source.execute("DELETE FROM items WHERE id = %s", (night * 10,))
        row = run(path, file_lake, f"r{night}")
        equal_both_ways(source, file_lake)
        assert row["reconciled"] == "MATCH", row["reconcile_note"]
        if night > 2:  # compacted after the second load: counted from the base
            assert "(from the compacted base)" in row["reconcile_note"], row["reconcile_note"]
    bases = list(Path(file_lake.removeprefix("file://")).rglob("*.base*.parquet"))
    assert bases, "the CDC table was compacted"
    deletes = view(file_lake, f"SELECT count(*) FROM {SOURCE}.items_history WHERE _deleted")
    assert deletes == [(4,)]


def test_quoted_names_another_schema_and_the_search_path(source, file_lake, tmp_path, monkeypatch):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute('CREATE SCHEMA "Sales"')
    source.execute(
        'CREATE TABLE "Sales"."Orders" ("OrderId" int PRIMARY KEY, "Näme" text, "_lsn" int)'
    )
    source.execute("CREATE TABLE plain (id int PRIMARY KEY, v text)")
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            *TABLE_JOB,
            "primary_key",
        )
        + "\n"
        f"q,Y,postgresql,{SOURCE},Sales,Orders,CDC,\n"
        f"p,Y,postgresql,{SOURCE},,plain,CDC,\n",
        encoding="utf-8",
    )
    source.execute("""INSERT INTO "Sales"."Orders" VALUES (1, 'a"b,c', 7)""")
    source.execute("INSERT INTO plain VALUES (1, 'x')")
    args = ["run", "--config", str(path), "--destination", file_lake]
    assert main([*args, "--run-id", "r1"]) == 0
    source.execute("""UPDATE "Sales"."Orders" SET "Näme" = 'ü', "_lsn" = 8 WHERE "OrderId" = 1""")
    source.execute("""INSERT INTO "Sales"."Orders" VALUES (2, NULL, NULL)""")
    source.execute("DELETE FROM plain")
    assert main([*args, "--run-id", "r2"]) == 0
    rows = view(file_lake, f'SELECT order_id, "n_me", _lsn_source FROM {SOURCE}.orders ORDER BY 1')
    assert rows == [(1, "ü", 8), (2, None, None)]
    assert view(file_lake, f"SELECT count(*) FROM {SOURCE}.plain") == [(0,)]


def test_schema_policy_freeze_stops_a_cdc_run_before_anything_lands(
    source, file_lake, tmp_path, monkeypatch
):
    from ingest.configuration import load_config
    from tests.fixtures.jobs import run_task

    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute("INSERT INTO items VALUES (1, 'a', 1, now(), NULL)")
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "schema_policy",
        )
        + "\n"
        f"c1,Y,postgresql,{SOURCE},items,CDC,freeze\n",
        encoding="utf-8",
    )
    (job,) = load_config(path).jobs
    task = {"job": job.to_dict(), "destination": file_lake}
    assert run_task({**task, "run_id": "r1"})["status"] == "SUCCESS"
    source.execute("ALTER TABLE items ADD COLUMN extra int")
    source.execute("INSERT INTO items VALUES (2, 'b', 2, now(), NULL, 5)")
    frozen = run_task({**task, "run_id": "r2"})
    assert frozen["status"] == "FAILED" and "added: extra" in frozen["error"], frozen
    assert frozen["load_id"] == ""
    # nothing landed, the slot was not confirmed: with the column dropped again, the next run
    # reads the insert again (its value of the dropped column is gone with it)
    source.execute("ALTER TABLE items DROP COLUMN extra")
    again = run_task({**task, "run_id": "r3"})
    assert again["status"] == "SUCCESS" and again["rows_inserted"] == 1, again


def test_without_an_end_marker_a_run_ends_at_the_wal_position(
    source, file_lake, tmp_path, monkeypatch
):
    """PostgreSQL before 14 (or no EXECUTE on pg_logical_emit_message): the run reads up to
    the WAL insert position of its start, asking the server how far it has decoded."""
    import time

    from ingest.job import cdc

    monkeypatch.setattr(cdc, "MESSAGES_FROM", 10**9)
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    path = config(tmp_path)
    run(path, file_lake, "r1")
    source.execute("INSERT INTO items VALUES (1, 'a', 1, now(), NULL)")
    source.execute("UPDATE items SET name = 'b' WHERE id = 1")
    started = time.monotonic()
    second = run(path, file_lake, "r2")
    assert second["rows_inserted"] == "1" and second["rows_updated"] == "1"
    equal_both_ways(source, file_lake)
    third = run(path, file_lake, "r3")  # nothing new: the run still ends
    assert third["load_id"] == ""
    print(f"two runs without a marker: {time.monotonic() - started:.1f} s")
