"""A keyed table in the lake is the source's current state: one row per key, deletes applied,
late rows caught; its history has every version and delete marker (type 2).

Real PostgreSQL and MariaDB, local lakes and Azurite, runs through the command line (run, then
the views it writes, read through `query`'s DuckDB). After every run the current view equals
the source, compared both ways.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.views.duck import run_query
from tests.fixtures.processes import audit_rows
from tests.fixtures.sheet import TABLE_JOB, sheet_header

SOURCE = "pg_erp"
CUSTOMERS = """
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    credit_limit numeric(12, 2),
    updated_at timestamptz NOT NULL
)"""
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
HEADER = sheet_header(
    *TABLE_JOB,
    "watermark_column",
    "primary_key",
    "delete_detection",
    "lookback",
)


@pytest.fixture(params=["file", "azurite"])
def lake(request) -> str:
    return request.getfixturevalue("file_lake" if request.param == "file" else "azure_lake")


def _config(tmp_path: Path, schema: str, source_type: str = "postgresql") -> str:
    path = tmp_path / "jobs.csv"
    path.write_text(
        f"{HEADER}\nc1,Y,{source_type},{SOURCE},{schema},customers,INCREMENTAL,updated_at,id,"
        "keys,1h\n",
        encoding="utf-8",
    )
    return str(path)


def _run(config: str, lake: str, run_id: str) -> None:
    assert main(["run", "--config", config, "--destination", lake, "--run-id", run_id]) in (0, 1)


def _view(lake: str, sql: str) -> list[tuple]:
    result = run_query(lake, sql, max_rows=100_000)
    assert not result.truncated
    return result.rows


def _equal_both_ways(lake: str, source: list[tuple]) -> None:
    lake_rows = _view(lake, "SELECT id, name, credit_limit, updated_at FROM pg_erp.customers")
    source_set, lake_set = Counter(source), Counter(lake_rows)
    assert source_set - lake_set == Counter(), "rows of the source missing from the view"
    assert lake_set - source_set == Counter(), "rows in the view the source does not hold"


class Db:
    """The few statements the scenario needs, on PostgreSQL or MariaDB."""

    def __init__(self, handle, kind: str):
        self.handle, self.kind = handle, kind

    def execute(self, sql: str, params=None) -> None:
        if self.kind == "mysql" and params:  # DATETIME holds no zone: UTC wall time
            params = tuple(
                p.astimezone(dt.UTC).replace(tzinfo=None) if isinstance(p, dt.datetime) else p
                for p in params
            )
        self.handle.execute(sql, params)

    def rows(self) -> list[tuple]:
        rows = self.handle.query("SELECT id, name, credit_limit, updated_at FROM customers")
        if self.kind == "mysql":  # MariaDB's DATETIME is naive: the lake holds it as is
            return [tuple(r) for r in rows]
        return [(i, n, c, u.astimezone(dt.UTC)) for i, n, c, u in rows]


def _scenario(db: Db, lake: str, config: str) -> None:
    stamp = T0
    values = [
        (i, f"cust {i}", f"{i * 10}.50", stamp + dt.timedelta(seconds=i)) for i in range(1, 501)
    ]
    for row in values:
        db.execute("INSERT INTO customers VALUES (%s, %s, %s, %s)", row)
    _run(config, lake, "night-1")
    _equal_both_ways(lake, db.rows())

    # night 2: 30 updates (watermark bumped), 10 inserts, 5 deletes, 2 late rows (committed
    # after night 1 with a watermark below its last one, inside the 1 h lookback)
    later = T0 + dt.timedelta(days=1)
    for i in range(1, 31):
        db.execute(
            "UPDATE customers SET name = %s, credit_limit = credit_limit + 1, updated_at = %s "
            "WHERE id = %s",
            (f"changed {i}", later + dt.timedelta(seconds=i), i),
        )
    for i in range(501, 511):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (i, f"new {i}", "5.00", later + dt.timedelta(seconds=100 + i)),
        )
    for i in range(101, 106):
        db.execute("DELETE FROM customers WHERE id = %s", (i,))
    last = later + dt.timedelta(seconds=610)
    db.execute("INSERT INTO customers VALUES (%s, %s, %s, %s)", (900, "late one", "1.00", later))
    _run(config, lake, "night-2")
    _equal_both_ways(lake, db.rows())
    late_stamp = last - dt.timedelta(minutes=20)
    db.execute(
        "INSERT INTO customers VALUES (%s, %s, %s, %s)", (901, "late two", "2.00", late_stamp)
    )
    db.execute(
        "UPDATE customers SET name = 'late update', updated_at = %s WHERE id = 200", (late_stamp,)
    )
    _run(config, lake, "night-3")
    _equal_both_ways(lake, db.rows())

    history = _view(
        lake,
        "SELECT id, _deleted, _valid_from, _valid_to FROM pg_erp.customers_history "
        "ORDER BY id, _valid_from, _deleted",
    )
    by_key: dict[int, list[tuple]] = {}
    for key, deleted, valid_from, valid_to in history:
        by_key.setdefault(key, []).append((deleted, valid_from, valid_to))
    assert all(len(by_key[i]) == 2 for i in range(1, 31))  # first version and the update
    assert all(by_key[i][-1][0] is True for i in range(101, 106))  # the delete markers
    assert by_key[200][-1][0] is False and len(by_key[200]) == 2  # the late update
    assert {901, 900} <= set(by_key)
    for versions in by_key.values():  # type 2: each version ends where the next begins
        assert versions[-1][2] is None
        for before, after in zip(versions, versions[1:], strict=False):
            assert before[2] == after[1]
    audit = {row["run_id"]: row for row in audit_rows(lake)}
    assert audit["night-2"]["rows_deleted"] == "5"
    for night in ("night-1", "night-2", "night-3"):
        assert audit[night]["status"] == "SUCCESS", audit[night]["error"]
        assert audit[night]["reconciled"] == "MATCH", audit[night]["reconcile_note"]
        assert audit[night]["table_reconciled"] == "MATCH", audit[night]

    # nothing changed: the next run loads nothing, the view stays the source
    _run(config, lake, "night-4")
    _equal_both_ways(lake, db.rows())


def test_postgresql_current_state_deletes_late_rows_and_history(pg, lake, monkeypatch, tmp_path):
    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    _scenario(Db(pg, "postgresql"), lake, _config(tmp_path, pg.name))


def test_mariadb_current_state_deletes_late_rows_and_history(
    mariadb, file_lake, monkeypatch, tmp_path
):
    mariadb.execute(
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
        "credit_limit DECIMAL(12,2), updated_at DATETIME(6) NOT NULL)"
    )
    mariadb.use_as(monkeypatch, SOURCE)
    _scenario(Db(mariadb, "mysql"), file_lake, _config(tmp_path, mariadb.name, "mysql"))


COMPACTION_CONFIG = HEADER + "\n"


def _history_count(lake: str) -> int:
    return _view(lake, "SELECT count(*) FROM pg_erp.customers_history")[0][0]


@pytest.mark.parametrize("point", ["compaction_files", "compaction_marker"])
def test_a_compaction_killed_anywhere_leaves_the_views_right(
    pg, file_lake, monkeypatch, tmp_path, point
):
    """`dlt-ingest compact` is SIGKILLed after writing its base's files (not committed) or
    after committing them (no marker yet); the next run cleans up and the views still equal
    the source; compacting again works, is idempotent, and keeps every version in the history."""
    import signal

    from tests.fixtures.processes import Process, base_env, wait_for_file

    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "100")  # the runs leave the compacting to us
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    for i in range(1, 201):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (i, f"c{i}", "1.00", T0 + dt.timedelta(seconds=i)),
        )
    _run(config, file_lake, "n1")
    for i in range(1, 21):
        db.execute(
            "UPDATE customers SET name = 'x', updated_at = %s WHERE id = %s",
            (T0 + dt.timedelta(days=1, seconds=i), i),
        )
    db.execute("DELETE FROM customers WHERE id = 150")
    _run(config, file_lake, "n2")
    _equal_both_ways(file_lake, db.rows())
    history = _history_count(file_lake)

    pause = tmp_path / "pause"
    pause.mkdir()
    args = ["compact", "--config", config, "--destination", file_lake]
    doomed = Process(args, base_env(INGEST_TEST_PAUSE_AT=point), pause_dir=pause)
    wait_for_file(pause / point, doomed)
    doomed.popen.send_signal(signal.SIGKILL)
    assert doomed.finish() == -signal.SIGKILL
    _equal_both_ways(file_lake, db.rows())  # the views the last run wrote are untouched

    db.execute(
        "UPDATE customers SET name = 'y', updated_at = %s WHERE id = 30",
        (T0 + dt.timedelta(days=2),),
    )
    _run(config, file_lake, "n3")
    _equal_both_ways(file_lake, db.rows())
    assert _history_count(file_lake) == history + 1

    assert main([*args, "--json"]) == 0
    assert main(["views", "--config", config, "--destination", file_lake]) == 0
    _equal_both_ways(file_lake, db.rows())
    assert _history_count(file_lake) == history + 1  # the base is no version
    state = _view(file_lake, "SELECT DISTINCT _load_id FROM pg_erp.customers")
    assert len(state) == 1  # one base, nothing after it
    assert main(args) == 0  # again: nothing since the base, nothing done
    db.execute(
        "UPDATE customers SET name = 'z', updated_at = %s WHERE id = 31",
        (T0 + dt.timedelta(days=3),),
    )
    _run(config, file_lake, "n4")
    _equal_both_ways(file_lake, db.rows())
    assert len(_view(file_lake, "SELECT DISTINCT _load_id FROM pg_erp.customers")) == 2


def test_by_default_every_run_after_the_first_leaves_the_view_one_base(
    pg, file_lake, monkeypatch, tmp_path
):
    """INGEST_COMPACT_LOADS=1 (the default): the first load is not compacted (the view ranks
    it), every later run that lands something writes a new base, so the current view reads one
    load, the newest base; a run that lands nothing writes none; history keeps every version."""
    from ingest.configuration import load_config
    from ingest.lake.destination import Destination
    from ingest.views.state import current_state

    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.delenv("INGEST_COMPACT_LOADS", raising=False)
    monkeypatch.delenv("INGEST_COMPACT_RATIO", raising=False)
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    job = load_config(config).jobs[0]
    dest = Destination.from_url(file_lake)

    def view_loads() -> tuple[int, str | None]:
        state = current_state(dest, job)
        assert state is not None
        return len(state.view.loads), state.view.base_load

    for i in range(1, 41):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (i, f"c{i}", "1.00", T0 + dt.timedelta(seconds=i)),
        )
    _run(config, file_lake, "d1")
    assert view_loads() == (1, None)  # the first load alone: no base
    bases = []
    for night in (2, 3, 4):
        db.execute(
            "UPDATE customers SET name = %s, updated_at = %s WHERE id <= 5",
            (f"n{night}", T0 + dt.timedelta(days=night)),
        )
        db.execute("DELETE FROM customers WHERE id = %s", (40 - night,))
        _run(config, file_lake, f"d{night}")
        loads, base = view_loads()
        assert loads == 1 and base is not None and base not in bases
        bases.append(base)
        _equal_both_ways(file_lake, db.rows())
    _run(config, file_lake, "d5")  # nothing new at the source: no new base
    assert view_loads() == (1, bases[-1])
    _equal_both_ways(file_lake, db.rows())
    # every version: 40 first, 5 updated and 1 delete marker per night
    assert _history_count(file_lake) == 40 + 3 * (5 + 1)
    # superseded bases go (the newest two stay): files, markers and commits
    from ingest.lake.layout import is_base_file, load_id_of
    from ingest.lake.lease import read_commit_log
    from ingest.lake.loads import table_files
    from ingest.views.inventory import job_loads_by_schema

    assert job_loads_by_schema(dest, job, dest.filesystem())[job.base_schema_name_in_lake] == set(
        bases[1:]
    )
    left = {load_id_of(p) for p in table_files(dest, SOURCE, "customers")}
    assert bases[0] not in left and set(bases[1:]) <= left
    assert any(is_base_file(p) for p in table_files(dest, SOURCE, "customers"))
    log = read_commit_log(dest, SOURCE, "customers")
    assert log is not None and bases[0] not in {c.load_id for c in log.commits}


def test_runs_compact_past_the_threshold_and_retention_trims_the_history(
    pg, azure_lake, monkeypatch, tmp_path
):
    """INGEST_COMPACT_LOADS=2: the third load is followed by a base (the view reads one load);
    with INGEST_HISTORY_RETENTION_DAYS the loads before it and older than that are removed,
    except the job's newest load (its state holds the watermark); the view stays the source."""
    from ingest.lake.destination import Destination
    from ingest.views.inventory import job_loads_by_schema

    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "2")
    monkeypatch.setenv("INGEST_COMPACT_RATIO", "0")
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    for night in range(3):
        for i in range(1, 51):
            db.execute(
                "INSERT INTO customers VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, updated_at = EXCLUDED.updated_at",
                (i, f"n{night}-{i}", "1.00", T0 + dt.timedelta(days=night, seconds=i)),
            )
        _run(config, azure_lake, f"night-{night}")
        _equal_both_ways(azure_lake, db.rows())
    from ingest.configuration import load_config

    job = load_config(config).jobs[0]
    dest = Destination.from_url(azure_lake)
    loads = job_loads_by_schema(dest, job, dest.filesystem())
    # compacted after night 2 (two loads beyond the first), not after night 1
    assert len(loads[job.base_schema_name_in_lake]) == 1
    assert _history_count(azure_lake) == 150  # every version, the base is none of them

    monkeypatch.setenv("INGEST_HISTORY_RETENTION_DAYS", "0")
    assert main(["compact", "--config", config, "--destination", azure_lake]) == 0
    # retention of 0 days keeps everything; a tiny retention removes what precedes the base
    monkeypatch.setenv("INGEST_HISTORY_RETENTION_DAYS", "1")
    import time as clock

    real = clock.time
    monkeypatch.setattr(clock, "time", lambda: real() + 3 * 86400)  # three days later
    db.execute(
        "UPDATE customers SET name = 'late', updated_at = %s WHERE id = 7",
        (T0 + dt.timedelta(days=9),),
    )
    _run(config, azure_lake, "night-9")
    assert main(["compact", "--config", config, "--destination", azure_lake]) == 0
    monkeypatch.setattr(clock, "time", real)
    assert main(["views", "--config", config, "--destination", azure_lake]) == 0
    _equal_both_ways(azure_lake, db.rows())
    after = job_loads_by_schema(dest, job, dest.filesystem())
    assert len(after[job.schema_name_in_lake]) == 1  # only the newest load (the state's) stays


def test_a_table_over_the_compaction_rows_is_compacted_every_few_loads(
    pg, file_lake, monkeypatch, tmp_path
):
    """INGEST_COMPACT_MAX_ROWS=20 and a 50-row table: INGEST_COMPACT_LOADS=1 becomes
    1 x ceil(50 / 20) = 3 loads, so the base comes after the third load beyond the first, not
    after each; the view is the source every night."""
    from ingest.configuration import load_config
    from ingest.lake.destination import Destination
    from ingest.views.inventory import job_loads_by_schema

    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "1")
    monkeypatch.setenv("INGEST_COMPACT_RATIO", "0")
    monkeypatch.setenv("INGEST_COMPACT_MAX_ROWS", "20")
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    job = load_config(config).jobs[0]
    dest = Destination.from_url(file_lake)
    bases = []
    for night in range(5):
        for i in range(1, 51):
            db.execute(
                "INSERT INTO customers VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "name = EXCLUDED.name, updated_at = EXCLUDED.updated_at",
                (i, f"n{night}-{i}", "1.00", T0 + dt.timedelta(days=night, seconds=i)),
            )
        _run(config, file_lake, f"night-{night}")
        _equal_both_ways(file_lake, db.rows())
        loads = job_loads_by_schema(dest, job, dest.filesystem())
        bases.append(len(loads.get(job.base_schema_name_in_lake, [])))
    # the first base after night 3 (three loads beyond the first copy), none before
    assert bases == [0, 0, 0, 1, 1]


def test_a_backfill_of_a_loaded_range_leaves_the_current_view_unchanged(
    pg, file_lake, monkeypatch, tmp_path
):
    pg.execute(CUSTOMERS)
    pg.use_as(monkeypatch, SOURCE)
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    for i in range(1, 301):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (i, f"c{i}", f"{i}.00", T0 + dt.timedelta(minutes=i)),
        )
    _run(config, file_lake, "n1")
    before = sorted(
        _view(file_lake, "SELECT * EXCLUDE (_load_id, _load_date) FROM pg_erp.customers")
    )
    window = ["--from", (T0 + dt.timedelta(minutes=50)).isoformat()]
    window += ["--to", (T0 + dt.timedelta(minutes=250)).isoformat()]
    assert (
        main(["backfill", "--config", config, "--destination", file_lake, "--job", "c1", *window])
        == 0
    )
    after = sorted(
        _view(file_lake, "SELECT * EXCLUDE (_load_id, _load_date) FROM pg_erp.customers")
    )
    assert after == before and len(after) == 300
    _equal_both_ways(file_lake, db.rows())
    assert _history_count(file_lake) == 300 + 200  # the backfill's versions are in the history


@pytest.mark.parametrize("twice", [False, True])
def test_a_first_compaction_leaves_the_current_view_as_it_was(
    pg, file_lake, monkeypatch, tmp_path, caplog, twice
):
    """The first compaction reads the first load as a base when it holds one row per key (no
    ranking of every version), and ranks every version when it does not (a key declared in the
    config that the source table does not enforce: a key read twice). Either way the current
    view is the same before and after, row for row."""
    import logging

    pg.execute(CUSTOMERS.replace("id int PRIMARY KEY", "id int"))
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "100")  # the runs leave the compacting to us
    db = Db(pg, "postgresql")
    config = _config(tmp_path, pg.name)
    for i in range(1, 31):
        db.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (i, f"c{i}", "1.00", T0 + dt.timedelta(seconds=i)),
        )
    if twice:  # key 7 twice in the first load, a later version second
        db.execute(
            "INSERT INTO customers VALUES (7, 'again', 2.00, %s)", (T0 + dt.timedelta(days=1),)
        )
    _run(config, file_lake, "f1")
    db.execute(
        "UPDATE customers SET name = 'x', updated_at = %s WHERE id IN (3, 4)",
        (T0 + dt.timedelta(days=2),),
    )
    db.execute("DELETE FROM customers WHERE id = 9")
    _run(config, file_lake, "f2")
    every = "SELECT id, name, credit_limit, updated_at, _load_id FROM pg_erp.customers"
    before = Counter(_view(file_lake, every))
    assert len(before) == 29  # one row per key (7 once), 9 gone
    caplog.set_level(logging.INFO, logger="ingest.job.compaction")
    assert main(["compact", "--config", config, "--destination", file_lake]) == 0
    assert main(["views", "--config", config, "--destination", file_lake]) == 0
    after = _view(file_lake, "SELECT id, name, credit_limit, updated_at FROM pg_erp.customers")
    assert Counter(after) == Counter(row[:4] for row in before)
    assert ("holds 1 key(s) twice" in caplog.text) is twice
    assert _view(file_lake, "SELECT name FROM pg_erp.customers WHERE id = 7") == [
        ("again" if twice else "c7",)
    ]
