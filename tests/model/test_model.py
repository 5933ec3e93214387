"""The run's values as types: the audit row is JobResult's fields, every projection names
fields only, and one rule counts a run's results everywhere."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.app.outcomes import add_result, empty_tally
from ingest.audit import _audit_rows
from ingest.model.result import AUDIT_COLUMNS, JobResult, check_projection
from ingest.model.summary import Tally, summarize
from ingest.reports.history import run_summaries
from ingest.vocabulary import Status


def result(job_id: str, status: Status, rows: int = 0, **extra) -> dict:
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
    ).to_dict()


def test_audit_columns_are_the_result_fields_but_the_marked_ones():
    names = [f.name for f in dataclasses.fields(JobResult)]
    assert list(AUDIT_COLUMNS) == [n for n in names if n != "retriable"]
    assert "run_note" in AUDIT_COLUMNS  # a field, not a key slipped into the result dict
    row = JobResult.from_dict(result("1", Status.SUCCESS, 5, run_note="waited")).audit_row()
    assert list(row) == list(AUDIT_COLUMNS) and row["run_note"] == "waited"


def test_no_back_door_into_the_audit():
    smuggled = {**result("1", Status.SUCCESS, 5), "password": "hunter2", "_private": 1}
    (row,) = _audit_rows([smuggled])
    assert set(row) == set(AUDIT_COLUMNS)


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
    summary = summarize(results)
    assert (summary["jobs_succeeded"], summary["jobs_warned"], summary["jobs_failed"]) == (3, 2, 1)
    outcome = empty_tally()
    for r in results:
        add_result(outcome, r)
    assert (outcome["done"], outcome["succeeded"], outcome["failed"]) == (5, 3, 1)
    assert outcome["failed_jobs"] == ["3"] == summary["failed_jobs"]
    rows = [JobResult.from_dict(r).audit_row() for r in results]
    (history,) = run_summaries(rows)
    assert (history["succeeded"], history["warned"], history["failed"], history["skipped"]) == (
        3,
        2,
        1,
        1,
    )
    assert history["rows_loaded"] == summary["rows_loaded"] == outcome["rows_loaded"] == 18
