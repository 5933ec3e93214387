"""Operating CDC: `cdc status` lists the slots with their lag and retained WAL, `cdc drop`
removes a job's slot and publication, the next run says the slot is gone and a full refresh
copies the table again (deletes made meanwhile applied); `validate --check-connections` says
what a table lacks (a key its deletes carry, wal_level)."""

from __future__ import annotations

import json

from ingest.cli import main
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways, view
from tests.fixtures.processes import audit_rows
from tests.fixtures.sheet import sheet_header


def test_status_drop_and_a_full_refresh(source, file_lake, tmp_path, monkeypatch, capsys):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute("INSERT INTO items SELECT x, 'i', x, now(), NULL FROM generate_series(1, 50) x")
    source.execute("SELECT pg_create_logical_replication_slot('forgotten', 'pgoutput')")
    path = config(tmp_path)
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r1"]) == 0
    source.execute("UPDATE items SET name = 'x' WHERE id < 10")
    capsys.readouterr()
    assert main(["cdc", "status", "--config", path, "--json"]) == 0
    slots = {s["slot_name"]: s for s in json.loads(capsys.readouterr().out)}
    assert set(slots) == {"ingest_pg_cdc__items", "forgotten"}
    assert slots["ingest_pg_cdc__items"]["job_id"] == "c1"
    assert slots["forgotten"]["job_id"] == ""
    assert slots["ingest_pg_cdc__items"]["lag_bytes"] > 0  # the update is not read yet
    assert slots["forgotten"]["retained_bytes"] > 0
    assert main(["cdc", "status", "--config", path]) == 0
    assert "(no job)" in capsys.readouterr().out

    assert main(["cdc", "drop", "--config", path, "--job", "c1"]) == 0
    said = capsys.readouterr().out
    assert "slot ingest_pg_cdc__items" in said and "publication ingest_pg_cdc__items" in said
    assert source.query("SELECT slot_name FROM pg_replication_slots") == [("forgotten",)]

    source.execute("DELETE FROM items WHERE id > 40")  # while the slot is gone
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r2"]) == 1
    failed = next(r for r in audit_rows(file_lake) if r["run_id"] == "r2")
    assert "is gone" in failed["error"] and "--full-refresh" in failed["error"]
    args = ["run", "--config", path, "--destination", file_lake, "--run-id", "r3"]
    assert main([*args, "--full-refresh"]) == 0
    equal_both_ways(source, file_lake)
    assert view(file_lake, f"SELECT count(*) FROM {SOURCE}.items") == [(40,)]
    source.execute("UPDATE items SET name = 'after' WHERE id = 1")
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r4"]) == 0
    equal_both_ways(source, file_lake)
    assert main(["cdc", "drop", "--config", path, "--job", "nope"]) == 2


def test_validate_says_what_the_table_lacks(source, tmp_path, monkeypatch, capsys):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute("CREATE TABLE nokey (a int, b text)")
    source.execute("CREATE TABLE otherkey (a int PRIMARY KEY, b text)")
    source.execute("CREATE TABLE full_identity (a int, b text)")
    source.execute("ALTER TABLE full_identity REPLICA IDENTITY FULL")
    source.execute(
        "CREATE TABLE computed (a int PRIMARY KEY, b int GENERATED ALWAYS AS (a * 2) STORED)"
    )
    path = tmp_path / "jobs.csv"
    path.write_text(
        sheet_header(
            "job_id",
            "enabled",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "primary_key",
        )
        + "\n"
        f"n,Y,postgresql,{SOURCE},nokey,CDC,\n"
        f"o,Y,postgresql,{SOURCE},otherkey,CDC,b\n"
        f"f,Y,postgresql,{SOURCE},full_identity,CDC,a\n"
        f"g,Y,postgresql,{SOURCE},computed,CDC,\n",
        encoding="utf-8",
    )
    code = main(["validate", "--config", str(path), "--check-connections"])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code != 0
    assert "has no primary key" in text and "REPLICA IDENTITY FULL" in text
    assert "carry its primary key (a), not the job's key (b)" in text
    assert "full_identity  OK" in text
    assert "generated column(s) b" in text


def test_a_cdc_result_carries_its_slot_into_telemetry(source, file_lake, tmp_path, monkeypatch):
    from ingest import telemetry

    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    path = config(tmp_path)
    assert main(["run", "--config", path, "--destination", file_lake, "--run-id", "r1"]) == 0
    from ingest.configuration import load_config
    from tests.fixtures.jobs import run_task

    (job,) = load_config(path).jobs
    source.execute("INSERT INTO items VALUES (1, 'a', 1, now(), NULL)")
    result = run_task({"run_id": "r2", "job": job.to_dict(), "destination": file_lake})
    assert result["status"] == "SUCCESS" and result["cdc_slot"] == "ingest_pg_cdc__items"
    props = telemetry.cdc_slot_event_properties(result)
    assert list(props) == list(telemetry.CDC_SLOT_EVENT_PROPERTIES)
    assert int(props["retained_bytes"]) >= 0 and props["slot_name"] == "ingest_pg_cdc__items"
    assert telemetry.cdc_slot_event_properties({"cdc_slot": ""}) is None
