"""The run's values as types: the audit row is JobResult's fields, every projection names
fields only, and one rule counts a run's results everywhere."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ingest.app.outcomes import add_result, compact_result, empty_tally
from ingest.model.result import AUDIT_COLUMNS, JobResult, check_projection
from ingest.model.run import Run, Waited
from ingest.model.split import SplitPlan
from ingest.model.summary import RunSummary, Tally, summarize
from ingest.reports.history import run_summaries
from ingest.vocabulary import Status


def result(job_id: str, status: Status, rows: int = 0, **extra) -> JobResult:
    return JobResult(
        run_id="r1",
        job_id=job_id,
        source_type="postgresql",
        source_name="erp",
        table_name=f"t{job_id}",
        load_type="FULL",
        status=status,
        rows_loaded=rows,
        **extra,
    )


def test_audit_columns_are_the_result_fields_but_the_marked_ones():
    names = [f.name for f in dataclasses.fields(JobResult)]
    assert list(AUDIT_COLUMNS) == [n for n in names if n not in ("retriable", "split")]
    assert "run_note" in AUDIT_COLUMNS  # a field, not a key slipped into the result dict
    row = result("1", Status.SUCCESS, 5, run_note="waited").audit_row()
    assert list(row) == list(AUDIT_COLUMNS) and row["run_note"] == "waited"


def test_no_back_door_into_the_audit():
    """A key that is not a field never reaches the audit: the JSON of a result is read back
    through its fields only, and the audit writes `JobResult`s, not dicts."""
    smuggled = {**result("1", Status.SUCCESS, 5).to_dict(), "password": "hunter2", "_private": 1}
    read = JobResult.from_dict(smuggled)
    assert read == result("1", Status.SUCCESS, 5)
    assert set(read.audit_row()) == set(AUDIT_COLUMNS)


def test_every_value_between_the_steps_round_trips_through_its_json():
    one = result("1", Status.WARN, 5, source_rows=6, rows_deleted=None)
    assert JobResult.from_dict(one.to_dict()) == one
    plan = SplitPlan("1700000000.1", "token", "id", ("10", "20"), watermark_below="5")
    split = result("2", Status.SUCCESS, split=plan)
    assert JobResult.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    run = Run("r1", "file:///lake", (one,), "2026-01-15T07:00:00+00:00", "timer", Waited(900))
    assert Run.from_dict(run.to_dict()).results == run.results
    summary = RunSummary.of("r1", [one, result("2", Status.FAILED)])
    assert RunSummary.from_dict(summary.to_dict()) == summary
    assert summary.failed_run and summary.to_dict()["failed_jobs"] == ["2"]


def test_a_split_load_returns_a_result_that_has_not_ended_and_has_no_audit_row():
    """`run_job` returns a `JobResult` for every job; one that split its load carries the plan
    and is not an ending: the audit refuses it (its commit's result is the job's row)."""
    plan = SplitPlan("1700000000.1", "token", "id", ("10",))
    pending = result("1", Status.SUCCESS, split=plan)
    assert not pending.ended and result("1", Status.SUCCESS).ended
    with pytest.raises(ValueError, match="split its load"):
        pending.audit_row()


def test_the_wait_of_a_scheduled_run_is_a_field_of_its_rows():
    waited = Waited(900, ("run-manual",), "finished")
    assert waited.note == "scheduled run started 15 min late: waited for run-manual (finished)"


def test_a_projection_naming_something_else_is_refused():
    assert check_projection(("job_id", "status"), "x") == ("job_id", "status")
    with pytest.raises(ValueError, match="jobs_ok"):
        check_projection(("job_id", "jobs_ok"), "x")


def test_one_rule_for_warn_in_every_tally():
    results = [
        result("1", Status.SUCCESS, 10),
        result("2", Status.WARN, 7),
        result("3", Status.FAILED),
        result("4", Status.SKIPPED),
        result("5", Status.WARN, 1),
    ]
    tally = Tally.of(results)
    assert (tally.total, tally.succeeded, tally.warned, tally.failed, tally.skipped) == (
        5,
        3,
        2,
        1,
        1,
    )
    summary = RunSummary.of("r1", results)
    assert (summary.jobs_succeeded, summary.jobs_warned, summary.jobs_failed) == (3, 2, 1)
    outcome = empty_tally()
    for r in results:
        add_result(outcome, compact_result(r))
    assert (outcome["done"], outcome["succeeded"], outcome["failed"]) == (5, 3, 1)
    assert outcome["failed_jobs"] == ["3"] == list(summary.failed_jobs)
    rows = [r.audit_row() for r in results]
    assert summarize(rows) == {k: v for k, v in summary.to_dict().items() if k != "run_id"}
    (history,) = run_summaries(rows)
    assert (history["succeeded"], history["warned"], history["failed"], history["skipped"]) == (
        3,
        2,
        1,
        1,
    )
    assert history["rows_loaded"] == summary.rows_loaded == outcome["rows_loaded"] == 18
