"""Step 1, planning: configuration + filters -> the run's tasks, skipped jobs and warnings."""

from __future__ import annotations

import pytest

from ingest.errors import RequestError
from ingest.model.task import Task
from ingest.plan import new_run_id, plan
from tests.fixtures.sheet import sheet_header

ROWS = [
    "a1,Y,sqlite,shop,items,FULL,",
    "a2,N,sqlite,shop,carts,FULL,",
    "b1,Y,sqlite,crm,people,FULL,WEEKLY:MON",
    "b2,Y,sqlite,crm,notes,FULL,DAILY",
]


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "jobs.csv"
    header = sheet_header(
        "job_id", "enabled", "source_type", "source_name", "table_name", "load_type", "schedule"
    )
    path.write_text(header + "\n" + "\n".join(ROWS) + "\n", encoding="utf-8")
    return str(path)


def test_every_enabled_job_is_a_task_that_round_trips(config, file_lake):
    the_plan = plan(config, destination=file_lake, run_id="r-1").to_dict()
    assert [t["job"]["job_id"] for t in the_plan["tasks"]] == ["a1", "b1", "b2"]
    assert the_plan["skipped"] == [] and the_plan["run_id"] == "r-1"
    for data in the_plan["tasks"]:
        task = Task.from_dict(data)
        assert task.to_dict() == data and task.run_id == "r-1" and task.destination == file_lake


def test_filters_by_job_and_source_and_lists_disabled_jobs_asked_for(config, file_lake):
    by_job = plan(config, destination=file_lake, jobs=["a1", "a2"]).to_dict()
    assert [t["job"]["job_id"] for t in by_job["tasks"]] == ["a1"]
    assert by_job["skipped"] == [{"job_id": "a2", "reason": "disabled (enabled = N)"}]
    by_source = plan(config, destination=file_lake, sources=["crm"]).to_dict()
    assert [t["job"]["job_id"] for t in by_source["tasks"]] == ["b1", "b2"]


def test_unknown_names_are_refused_listing_the_known_ones(config, file_lake):
    with pytest.raises(RequestError, match=r"unknown job id\(s\): zz; known: a1, a2, b1, b2"):
        plan(config, destination=file_lake, jobs=["zz"])
    with pytest.raises(RequestError, match=r"unknown source\(s\): erp; known: crm, shop"):
        plan(config, destination=file_lake, sources=["erp"])
    with pytest.raises(RequestError, match="weekday"):
        plan(config, destination=file_lake, scheduled_weekday="FUNDAY")


def test_a_scheduled_run_skips_weekly_jobs_of_other_days(config, file_lake):
    tuesday = plan(config, destination=file_lake, scheduled_weekday="TUE").to_dict()
    assert [t["job"]["job_id"] for t in tuesday["tasks"]] == ["a1", "b2"]
    assert tuesday["skipped"] == [{"job_id": "b1", "reason": "scheduled WEEKLY:MON"}]
    monday = plan(config, destination=file_lake, scheduled_weekday="MON").to_dict()
    assert [t["job"]["job_id"] for t in monday["tasks"]] == ["a1", "b1", "b2"]


def test_run_ids_sort_by_time_and_differ():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("run-") for i in ids)


def test_the_plan_is_a_type_whose_json_round_trips(config, file_lake):
    from ingest.model.plan import Plan, Skipped

    the_plan = plan(config, destination=file_lake, jobs=["a1", "a2"], run_id="r-1")
    assert isinstance(the_plan, Plan) and all(isinstance(t, Task) for t in the_plan.tasks)
    assert the_plan.skipped == (Skipped("a2", "disabled (enabled = N)"),)
    assert Plan.from_dict(the_plan.to_dict()) == the_plan
