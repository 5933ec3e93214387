"""The audit CSV: any text round-trips, every later append of the day still works, and the
history and catalog read it; a text watermark is compared exactly as stored."""

from __future__ import annotations

import datetime as dt
import string
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.audit import read_audit
from ingest.cli import main
from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.reports.history import recent
from tests.fixtures.audit import append_audit_json
from tests.fixtures.orders import SOURCE, run
from tests.fixtures.sheet import TABLE_JOB, sheet_header

DAY = dt.date(2026, 1, 2)
#: what an audit cell may hold: any text (control characters, line breaks, quotes, formulas,
#: surrogate-free unicode)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


def _row(index: int, **values: str) -> dict[str, object]:
    row: dict[str, object] = dict(
        run_id=f"run-{index}",
        job_id="001",
        source_type="postgresql",
        source_name="s",
        table_name="t",
        load_type="INCREMENTAL",
        status="SUCCESS",
        rows_loaded=index,
        load_id=f"17000000{index:02d}.5",
    )
    row.update(values)
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(watermark=TEXT, error=TEXT, note=TEXT)
@example(watermark="2024-01-01\r", error="=1+2", note="'quoted")
@example(watermark="a\r\nb", error='he said "no", twice', note="\x00\x1f\x7f")
@example(watermark="'=x", error="''", note=" =SUM(1)")
def test_any_text_round_trips_and_later_appends_still_work(watermark, error, note):
    with tempfile.TemporaryDirectory() as lake:
        _round_trip(Destination.from_url(lake), watermark, error, note)


def _round_trip(dest: Destination, watermark: str, error: str, note: str) -> None:
    first = _row(1, watermark_after=watermark, error=error, reconcile_note=note)
    append_audit_json(dest, [first], DAY)
    append_audit_json(dest, [_row(2, watermark_before=watermark)], DAY)  # the day's next run
    append_audit_json(dest, [first], DAY)  # a retried write finds its row: nothing added
    rows = read_audit(dest, DAY)
    assert [r["run_id"] for r in rows] == ["run-1", "run-2"]
    assert rows[0]["watermark_after"] == watermark
    assert rows[0]["error"] == error
    assert rows[0]["reconcile_note"] == note
    assert rows[1]["watermark_before"] == watermark


TEXT_KEYED = """
CREATE TABLE tickets (code varchar(20) PRIMARY KEY, body text, stamp varchar(20) NOT NULL)
"""


def test_a_text_watermark_ending_in_a_carriage_return(pg, file_lake, monkeypatch, tmp_path):
    """Three runs of a day over a text watermark whose values end in a carriage return and a
    space: every run's audit row is kept, reconciliation counts the exact stored bound (MATCH),
    and `history` and `catalog` read the day's file."""
    pg.execute(TEXT_KEYED)
    pg.use_as(monkeypatch, SOURCE)
    job = JobConfig(
        job_id="tx",
        enabled=True,
        source_type="postgresql",
        source_name=SOURCE,
        table_name="tickets",
        load_type="INCREMENTAL",
        watermark_column="stamp",
        primary_key=("code",),
        schema_name=pg.name,
    )
    stamps = ["a\r", "b ", "c\r"]
    results = []
    for night, stamp in enumerate(stamps):
        for i in range(3):
            pg.execute(
                "INSERT INTO tickets VALUES (%s, %s, %s)", (f"{stamp.strip()}{i}", "x", stamp)
            )
        results.append(run(job, file_lake, f"night-{night}"))
    for result, stamp in zip(results, stamps, strict=True):
        assert result["status"] == "SUCCESS", result["error"]
        assert result["reconciled"] == "MATCH", result["reconcile_note"]
        assert result["watermark_after"] == stamp
    assert [r["rows_loaded"] for r in results] == [3, 3, 3]
    from tests.fixtures.audit import write_audit_json

    for result in results:
        write_audit_json(
            {"run_id": result["run_id"], "destination": file_lake, "results": [result]}
        )
    rows = recent(file_lake, days=1)
    assert sorted(r["watermark_after"] for r in rows) == sorted(stamps)
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "watermark_column",
            "primary_key",
        )
        + f"\ntx,Y,postgresql,{SOURCE},{pg.name},tickets,"
        "INCREMENTAL,stamp,code\n",
        encoding="utf-8",
    )
    assert main(["history", "--destination", file_lake, "--days", "1"]) == 0
    out = tmp_path / "catalog"
    assert (
        main(["catalog", "--config", str(config), "--destination", file_lake, "--out", str(out)])
        == 0
    )
    assert any(out.iterdir())


def test_control_text_in_every_column_is_quoted(tmp_path):
    """Every field is quoted: a reader that splits on line breaks outside quotes (any CSV
    reader) sees one record per row."""
    import csv

    dest = Destination.from_url(str(tmp_path / "lake"))
    odd = "".join(chr(c) for c in range(32)) + string.punctuation
    append_audit_json(dest, [_row(1, error=odd, watermark_after="x\r")], DAY)
    path = tmp_path / "lake" / "metadata" / f"audit_{DAY:%Y%m%d}.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert len(records) == 2  # the header and one row
    assert records[1][records[0].index("error")] == odd
    assert read_audit(dest, DAY)[0]["watermark_after"] == "x\r"


def test_a_run_killed_after_its_commit_gets_its_audit_row_from_the_next_run(
    pg, file_lake, monkeypatch, tmp_path
):
    """`dlt-ingest run` is killed (SIGKILL) right after its load committed, before its audit
    step. The load is in the lake; the next run's audit step finds it in the table's commit log
    and writes its row (flagged as recovered, with the rows the load holds)."""
    import signal

    from tests.fixtures.orders import ORDERS_DDL, insert_orders
    from tests.fixtures.processes import (
        INCREMENTAL_ROW,
        Process,
        audit_rows,
        base_env,
        wait_for_file,
        write_config,
    )

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 1500)
    pg.use_as(monkeypatch, SOURCE)
    config = write_config(tmp_path, pg, [INCREMENTAL_ROW])
    args = ["run", "--config", config, "--destination", file_lake]
    pause = tmp_path / "pause"
    pause.mkdir()
    killed = Process(
        [*args, "--run-id", "killed"], base_env(INGEST_TEST_PAUSE_AT="committed"), pause_dir=pause
    )
    wait_for_file(pause / "committed", killed)
    load_id = (pause / "committed").read_text()
    killed.popen.send_signal(signal.SIGKILL)
    assert killed.finish() == -signal.SIGKILL
    assert audit_rows(file_lake) == []

    insert_orders(pg, 1501, 1600, updated_at="2030-01-01T00:00:00+00")
    following = Process([*args, "--run-id", "following"], base_env())
    assert following.finish() == 0, following.stderr
    rows = {row["run_id"]: row for row in audit_rows(file_lake)}
    assert rows["following"]["rows_loaded"] == "100"  # it continued from the killed run's load
    recovered = rows["killed"]
    assert recovered["load_id"] == load_id and recovered["rows_loaded"] == "1500"
    assert recovered["status"] == "WARN" and recovered["reconcile_note"].startswith("recovered:")
    assert "committed without an audit row" in following.stderr


def test_the_runs_own_row_replaces_a_recovered_one(tmp_path):
    from ingest.audit import RECOVERED

    dest = Destination.from_url(str(tmp_path / "lake"))
    recovered = _row(1, status="WARN", reconcile_note=RECOVERED + "run run-1 ...")
    append_audit_json(dest, [recovered], DAY)
    append_audit_json(dest, [_row(1, status="SUCCESS", reconciled="MATCH")], DAY)  # the slow run
    append_audit_json(dest, [recovered], DAY)  # recovered again: the real row stays
    (row,) = read_audit(dest, DAY)
    assert (row["status"], row["reconciled"]) == ("SUCCESS", "MATCH")
