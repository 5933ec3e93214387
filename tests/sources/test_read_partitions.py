"""INGEST_READ_PARTITIONS: auto splits whole-table reads of large tables, rows land exactly once."""

from __future__ import annotations

import connectorx
import pytest
import sqlalchemy as sa

from ingest.config import JobConfig
from ingest.settings import Settings, SettingsError
from ingest.sources import fast_arrow
from ingest.sources.fast_arrow import AUTO_PARTITIONS, auto_partitions
from tests.conftest import read_lake_table
from tests.fixtures.jobs import run_task

SOURCE = "pg_parts"


@pytest.mark.parametrize(
    ("whole_table", "estimate", "cores", "expected"),
    [
        (True, 10_000_000, 2, AUTO_PARTITIONS),
        (True, fast_arrow.AUTO_PARTITION_ROWS, 4, AUTO_PARTITIONS),
        (True, fast_arrow.AUTO_PARTITION_ROWS - 1, 4, 1),  # small: not worth a second read
        (True, None, 4, 1),  # never analyzed: no estimate
        (True, 10_000_000, 1, 1),  # one core: the reads would only take turns
        (False, 10_000_000, 4, 1),  # new rows after a watermark
    ],
)
def test_auto_partitions_decides_from_the_read_the_table_and_the_cores(
    whole_table, estimate, cores, expected
):
    assert auto_partitions(whole_table, estimate, cores) == expected


def test_the_setting_is_auto_or_a_number():
    assert Settings.from_env({}).read_partitions is None
    assert Settings.from_env({"INGEST_READ_PARTITIONS": "AUTO"}).read_partitions is None
    assert Settings.from_env({"INGEST_READ_PARTITIONS": "3"}).read_partitions == 3
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(SettingsError, match="INGEST_READ_PARTITIONS"):
            Settings.from_env({"INGEST_READ_PARTITIONS": bad})


@pytest.fixture
def reads(monkeypatch):
    """The keyword arguments of every ConnectorX read (the real reader still runs)."""
    calls: list[dict] = []
    real = connectorx.read_sql

    def recording(url, query, **kwargs):
        calls.append(kwargs)
        return real(url, query, **kwargs)

    monkeypatch.setattr(connectorx, "read_sql", recording)
    return calls


def _job(pg, load_type: str, table: str = "events") -> dict:
    job = JobConfig(
        "e",
        True,
        "postgresql",
        SOURCE,
        table,
        load_type,
        schema_name=pg.name,
        watermark_column="id" if load_type == "INCREMENTAL" else None,
        primary_key=("id",),
    )
    return job.to_dict()


def _source(pg, table: str = "events", rows: int = 5000) -> None:
    pg.execute(
        f'CREATE TABLE "{table}" (id bigint PRIMARY KEY, label text, amount numeric(12, 2));'
        f"INSERT INTO \"{table}\" SELECT g, 'row ' || g, g / 100.0 "
        f"FROM generate_series(1, {rows}) g;"
        f'ANALYZE "{table}"'
    )


def _landed_ids(lake: str, table: str = "events") -> list[int]:
    return sorted(read_lake_table(lake, SOURCE, table).column("id").to_pylist())


def test_auto_splits_a_large_full_read_and_every_row_lands_once(pg, file_lake, monkeypatch, reads):
    _source(pg)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setattr(fast_arrow, "AUTO_PARTITION_ROWS", 1000)  # "large" for this test
    monkeypatch.setattr(fast_arrow, "usable_cores", lambda: 2)
    task = {"run_id": "r1", "job": _job(pg, "FULL"), "destination": file_lake}
    result = run_task(task)
    assert result["status"] == "SUCCESS", result["error"]
    assert result["reconciled"] == "MATCH"
    assert [r.get("partition_num") for r in reads] == [AUTO_PARTITIONS]
    assert reads[0]["partition_on"] == "id"
    source = [row[0] for row in pg.query("SELECT id FROM events ORDER BY id")]
    assert _landed_ids(file_lake) == source  # no row twice, none missing


def test_auto_reads_small_tables_and_new_rows_in_one_read(pg, file_lake, monkeypatch, reads):
    _source(pg)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setattr(fast_arrow, "usable_cores", lambda: 2)
    task = {"run_id": "r1", "job": _job(pg, "FULL"), "destination": file_lake}
    assert run_task(task)["status"] == "SUCCESS"  # 5,000 rows: below the real threshold
    monkeypatch.setattr(fast_arrow, "AUTO_PARTITION_ROWS", 1000)
    incremental = {
        "run_id": "r2",
        "job": _job(pg, "INCREMENTAL", "events"),
        "destination": file_lake,
    }
    lake2 = file_lake.rstrip("/") + "_incremental"
    incremental["destination"] = lake2
    assert run_task(incremental)["status"] == "SUCCESS"  # first load: the whole table, split
    pg.execute("INSERT INTO events SELECT g, 'new', 1 FROM generate_series(5001, 5100) g")
    incremental["run_id"] = "r3"
    result = run_task(incremental)
    assert result["status"] == "SUCCESS" and result["rows_loaded"] == 100
    assert [r.get("partition_num") for r in reads] == [None, AUTO_PARTITIONS, None]
    assert _landed_ids(lake2) == list(range(1, 5101))


def test_an_explicit_number_wins_and_a_hostile_table_name_is_only_a_parameter(
    pg, file_lake, monkeypatch, reads
):
    table = 'odd "name"; drop table x --'
    pg.execute(
        f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" (id bigint PRIMARY KEY, v int);'
        f'INSERT INTO "{table.replace(chr(34), chr(34) * 2)}" '
        "SELECT g, g FROM generate_series(1, 3000) g;"
        f'ANALYZE "{table.replace(chr(34), chr(34) * 2)}"'
    )
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setattr(fast_arrow, "AUTO_PARTITION_ROWS", 1000)
    monkeypatch.setattr(fast_arrow, "usable_cores", lambda: 2)
    task = {"run_id": "r1", "job": _job(pg, "FULL", table), "destination": file_lake}
    result = run_task(task)
    assert result["status"] == "SUCCESS", result["error"]
    assert reads[-1].get("partition_num") == AUTO_PARTITIONS  # the estimate was found
    monkeypatch.setenv("INGEST_READ_PARTITIONS", "1")
    task["run_id"] = "r2"
    assert run_task(task)["status"] == "SUCCESS"
    assert reads[-1].get("partition_num") is None


def test_a_failing_estimate_reads_once_and_the_snapshot_survives(pg, file_lake, monkeypatch, reads):
    from ingest.sources.sql import PostgresBuilder

    _source(pg)
    pg.use_as(monkeypatch, SOURCE)
    monkeypatch.setattr(fast_arrow, "AUTO_PARTITION_ROWS", 1000)
    monkeypatch.setattr(fast_arrow, "usable_cores", lambda: 2)
    monkeypatch.setattr(PostgresBuilder, "ROW_ESTIMATE", sa.text("SELECT 1 / 0 WHERE :name <> ''"))
    result = run_task({"run_id": "r1", "job": _job(pg, "FULL"), "destination": file_lake})
    assert result["status"] == "SUCCESS", result["error"]
    assert result["reconciled"] == "MATCH"
    assert [r.get("partition_num") for r in reads] == [None]  # no estimate: one read
    assert _landed_ids(file_lake) == list(range(1, 5001))
