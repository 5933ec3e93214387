"""A CDC job in the function app's activities: one `ingest_table` activity per run (the real
`run_job`, under the job's lease), its result in the run store, the audit row written by
`write_audit` with the change counts; the current view equals the source after each run."""

from __future__ import annotations

from ingest.app import activities
from tests.conftest import set_source_env
from tests.fixtures.cdc import ITEMS, SOURCE, config, equal_both_ways
from tests.fixtures.processes import audit_rows


def durable_run(run_id: str, lake: str) -> dict:
    plan = activities.plan_run({"run_id": run_id, "trigger": "http"})
    assert plan["total"] == 1 and plan["batches"] == 1
    compact = activities.ingest_table(
        {"run_id": run_id, "destination": lake, "batch": 0, "position": 0}
    )
    assert compact["status"] == "SUCCESS", compact
    summary = activities.write_audit(
        {"run_id": run_id, "destination": lake, "started_at": plan["started_at"]}
    )
    assert summary["jobs_succeeded"] == 1
    (row,) = [r for r in audit_rows(lake) if r["run_id"] == run_id]
    return row


def test_a_cdc_job_is_one_activity_with_its_audit_row(source, file_lake, tmp_path, monkeypatch):
    set_source_env(monkeypatch, SOURCE, **source.secrets())
    source.execute(ITEMS)
    source.execute("INSERT INTO items SELECT x, 'i', x, now(), NULL FROM generate_series(1, 30) x")
    monkeypatch.setenv("INGEST_CONFIG_PATH", config(tmp_path))
    monkeypatch.setenv("INGEST_DESTINATION", file_lake)
    first = durable_run("d1", file_lake)
    assert first["load_type"] == "CDC" and first["rows_loaded"] == "30"
    equal_both_ways(source, file_lake)
    source.execute("UPDATE items SET name = 'u' WHERE id <= 3")
    source.execute("DELETE FROM items WHERE id = 30")
    source.execute("INSERT INTO items VALUES (31, 'n', 1, now(), NULL)")
    second = durable_run("d2", file_lake)
    assert (second["rows_inserted"], second["rows_updated"], second["rows_deleted"]) == (
        "1",
        "3",
        "1",
    )
    equal_both_ways(source, file_lake)
