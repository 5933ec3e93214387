"""Backfill and reload, through the command line on a real PostgreSQL.

- `backfill --job ID --from X --to Y` loads exactly the source rows with X <= watermark < Y,
  audited as BACKFILL, and leaves the job's state alone: the next incremental run still loads
  exactly the new rows, and the backfilled files survive its clean-up;
- `run --full-refresh` resets the job's state and reloads it from initial_watermark.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.cli import main
from ingest.configuration import load_config
from ingest.errors import RequestError
from ingest.lake.destination import Destination
from ingest.lake.layout import load_id_of
from ingest.lake.loads import completed_load_ids, table_files
from tests.fixtures.orders import ORDERS_DDL, SOURCE, insert_orders
from tests.fixtures.sheet import TABLE_JOB, sheet_header

COLUMNS = sheet_header(
    *TABLE_JOB,
    "watermark_column",
    "primary_key",
    "initial_watermark",
)


def write_config(tmp_path: Path, pg, initial: str = "") -> str:
    path = tmp_path / "jobs.csv"
    path.write_text(
        COLUMNS + "\n"
        f"o1,Y,postgresql,{SOURCE},{pg.name},orders,INCREMENTAL,updated_at,order_id,{initial}\n"
        f"o2,Y,postgresql,{SOURCE},{pg.name},orders_full,FULL,,,\n",
        encoding="utf-8",
    )
    return str(path)


def audit(lake: str) -> list[dict]:
    day = dt.datetime.now(dt.UTC)
    path = Path(lake.removeprefix("file://")) / "metadata" / f"audit_{day:%Y%m%d}.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def loads(lake: str) -> dict[str, list[int]]:
    """load_id -> order ids in that load's files (every file in the table folder)."""
    dest = Destination.from_url(lake)
    fs = dest.filesystem()
    out: dict[str, list[int]] = {}
    for path in table_files(dest, SOURCE, "orders", fs):
        with fs.open(path, "rb") as handle:
            ids = pq.read_table(handle, columns=["order_id"]).column("order_id").to_pylist()
        out.setdefault(load_id_of(path), []).extend(ids)
    return {k: sorted(v) for k, v in out.items()}


def ids_between(pg, start: str, end: str | None = None) -> list[int]:
    if end is None:
        rows = pg.query("SELECT order_id FROM orders WHERE updated_at >= %s ORDER BY 1", (start,))
    else:
        rows = pg.query(
            "SELECT order_id FROM orders WHERE updated_at >= %s AND updated_at < %s ORDER BY 1",
            (start, end),
        )
    return [r[0] for r in rows]


@pytest.fixture
def source(pg, monkeypatch):
    pg.execute(ORDERS_DDL)
    # 300 rows updated 2024-01-01 00:00:01 .. 00:05:00 (one per second)
    insert_orders(pg, 1, 300)
    pg.use_as(monkeypatch, SOURCE)
    return pg


def test_backfill_loads_exactly_the_range_and_leaves_the_state(
    source, tmp_path, file_lake, monkeypatch
):
    # this test reads the loads' own files: the runs do not compact (INGEST_COMPACT_LOADS=1 would
    # add a base per run)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "1000")
    pg = source
    config = write_config(tmp_path, pg)
    assert main(["run", "--config", config, "--destination", file_lake, "--job", "o1"]) == 0
    first_loads = loads(file_lake)
    assert [ids for ids in first_loads.values()] == [list(range(1, 301))]

    start, end = "2024-01-01T00:01:00+00:00", "2024-01-01T00:02:30+00:00"
    code = main(
        [
            "backfill",
            "--job",
            "o1",
            "--from",
            start,
            "--to",
            end,
            "--config",
            config,
            "--destination",
            file_lake,
        ]
    )
    assert code == 0
    (row,) = [r for r in audit(file_lake) if r["load_type"] == "BACKFILL"]
    assert row["status"] == "SUCCESS", row["error"]
    expected = ids_between(pg, start, end)
    assert expected == list(range(60, 150))  # rows 60..149 (seconds 60..149)
    assert int(row["rows_loaded"]) == len(expected)
    assert row["reconciled"] == "MATCH" and int(row["source_rows"]) == len(expected)
    assert row["watermark_before"] == start
    # the watermark the backfill reached: its highest extracted row (second 149), not --from
    highest = pg.query("SELECT max(updated_at) FROM orders WHERE updated_at < %s", (end,))[0][0]
    assert dt.datetime.fromisoformat(row["watermark_after"]) == highest
    assert row["watermark_after"] != start
    backfill_loads = {k: v for k, v in loads(file_lake).items() if k not in first_loads}
    assert list(backfill_loads.values()) == [expected]  # exactly the range, nothing else
    # the backfill's load is completed (under the backfill schema), in the same folder/layout
    job = load_config(config).job("o1")
    dest = Destination.from_url(file_lake)
    (backfill_load,) = backfill_loads
    assert backfill_load in completed_load_ids(
        dest, SOURCE, job.backfill_schema_name_in_lake, table=job.lake_table
    )

    # new rows; the job's next run loads exactly them, and keeps the backfilled files
    insert_orders(pg, 301, 340, updated_at="2024-02-01T00:00:00+00")
    assert main(["run", "--config", config, "--destination", file_lake, "--job", "o1"]) == 0
    runs = [r for r in audit(file_lake) if r["load_type"] == "INCREMENTAL"]
    assert int(runs[-1]["rows_loaded"]) == 40 and runs[-1]["reconciled"] == "MATCH"
    after = loads(file_lake)
    assert after[backfill_load] == expected  # not removed as a leftover
    new = {k: v for k, v in after.items() if k not in first_loads and k != backfill_load}
    assert list(new.values()) == [list(range(301, 341))]
    # and a run after that finds nothing new: the state is where the job left it
    assert main(["run", "--config", config, "--destination", file_lake, "--job", "o1"]) == 0
    assert audit(file_lake)[-1]["rows_loaded"] == "0"
    # every source row is in the lake; the backfilled range twice (once per load)
    every = Counter(i for ids in loads(file_lake).values() for i in ids)
    assert set(every) == set(range(1, 341))
    assert {i for i, n in every.items() if n == 2} == set(expected)


def test_backfill_without_end_and_before_any_run(source, tmp_path, file_lake):
    pg = source
    config = write_config(tmp_path, pg)
    start = "2024-01-01T00:04:00+00:00"
    assert (
        main(
            ["backfill", "--job", "o1", "--from", start]
            + ["--config", config, "--destination", file_lake]
        )
        == 0
    )
    (loaded,) = loads(file_lake).values()
    assert loaded == ids_between(pg, start)
    # the job itself has no state yet: its first run loads everything
    assert main(["run", "--config", config, "--destination", file_lake, "--job", "o1"]) == 0
    assert audit(file_lake)[-1]["rows_loaded"] == "300"


def test_backfill_requests_that_cannot_run_are_usage_errors(source, tmp_path, file_lake, capsys):
    config = write_config(tmp_path, source)
    base = ["--config", config, "--destination", file_lake]
    assert main(["backfill", "--job", "o2", "--from", "2024-01-01", *base]) == 2
    assert "FULL" in capsys.readouterr().err
    assert main(["backfill", "--job", "nope", "--from", "2024-01-01", *base]) == 2
    assert "unknown job id: nope" in capsys.readouterr().err
    code = main(["backfill", "--job", "o1", "--from", "2024-02-01", "--to", "2024-01-01", *base])
    assert code == 2 and "range is empty" in capsys.readouterr().err
    assert not Path(file_lake.removeprefix("file://"), SOURCE).exists()  # nothing ran


def test_plan_backfill_has_the_plan_shape(source, tmp_path, file_lake):
    from ingest.plan import plan, plan_backfill

    config = write_config(tmp_path, source)
    the_plan = plan_backfill(config, file_lake, "o1", "2024-01-01", "2024-02-01", "r-1").to_dict()
    regular = plan(config, destination=file_lake, run_id="r-1", jobs=["o1"]).to_dict()
    assert set(regular) <= set(the_plan)
    (task,) = the_plan["tasks"]
    assert task["backfill"] == {"from": "2024-01-01", "to": "2024-02-01"}
    assert {k: v for k, v in task.items() if k != "backfill"} == {
        k: v for k, v in regular["tasks"][0].items() if k != "backfill"
    }
    with pytest.raises(RequestError):
        plan_backfill(config, file_lake, "o1", "", None, "r-2")


def test_full_refresh_resets_the_state_and_reloads(source, tmp_path, file_lake, monkeypatch):
    # this test reads the loads' own files: the runs do not compact (INGEST_COMPACT_LOADS=1 would
    # add a base per run)
    monkeypatch.setenv("INGEST_COMPACT_LOADS", "1000")
    pg = source
    config = write_config(tmp_path, pg, initial="2024-01-01T00:02:00+00:00")
    base = ["--config", config, "--destination", file_lake, "--job", "o1"]
    assert main(["run", *base]) == 0
    assert audit(file_lake)[-1]["rows_loaded"] == str(len(ids_between(pg, "2024-01-01T00:02:00Z")))
    assert main(["run", *base]) == 0
    assert audit(file_lake)[-1]["rows_loaded"] == "0"

    assert main(["run", "--full-refresh", *base]) == 0
    reload = audit(file_lake)[-1]
    assert reload["status"] == "SUCCESS" and reload["reconciled"] == "MATCH"
    assert int(reload["rows_loaded"]) == 181  # from initial_watermark again (seconds 120..300)
    assert reload["watermark_before"] == ""
    # the reload's state is the job's state from now on
    insert_orders(pg, 301, 305, updated_at="2024-03-01T00:00:00+00")
    assert main(["run", *base]) == 0
    assert audit(file_lake)[-1]["rows_loaded"] == "5"
    # history is kept: the first load and the reload are both in the lake
    all_rows = pa.concat_tables(
        pq.read_table(p)
        for p in Path(file_lake.removeprefix("file://")).rglob("*.parquet")
        if "/orders/" in str(p)
    )
    assert all_rows.num_rows == 181 * 2 + 5
