"""The run store (a function app run's plan and results in the lake) on a local lake and on
Azurite through the blob API, as on ADLS."""

from __future__ import annotations

import pytest

from ingest.app.batching import batch_count
from ingest.app.runstore import RunStore, RunStoreError
from ingest.model.plan import Plan, Skipped
from ingest.model.result import failed_result
from ingest.model.task import Task


def tasks(count: int, run_id: str = "run-s") -> list[Task]:
    return [
        Task.from_dict(
            {
                "run_id": run_id,
                "job": {
                    "job_id": f"j-{i:03d}",
                    "source_type": "postgresql",
                    "source_name": "src",
                    "table_name": f"t{i}",
                    "load_type": "FULL",
                    "enabled": True,
                },
                "destination": "x",
            }
        )
        for i in range(count)
    ]


@pytest.fixture(params=["file", "azurite"])
def lake(request, tmp_path):
    if request.param == "file":
        return (tmp_path / "lake").as_uri()
    request.applymarker(pytest.mark.azurite)
    return request.getfixturevalue("azure_lake")


def test_plan_batches_and_results_round_trip(lake):
    store = RunStore(lake, "run-s")
    assert not store.exists() and store.result_ids() == []
    plan = Plan("run-s", lake, None, tuple(tasks(53)), (Skipped("x", "disabled"),))
    meta = store.write_plan(plan, 25, started_at="2026-03-08T07:00:00+00:00")
    assert (meta["total"], meta["batches"], meta["batch_size"]) == (53, 3, 25)
    assert "tasks" not in meta and meta["skipped"] == [{"job_id": "x", "reason": "disabled"}]
    again = RunStore(lake, "run-s")  # another process (activity) reading it back
    assert again.exists() and again.plan() == meta
    assert [len(again.batch(n)) for n in range(3)] == [25, 25, 3]
    assert again.task(2, 1) == tasks(53)[51]
    assert again.tasks() == tasks(53)
    for task in tasks(53)[::2]:
        again.write_result(failed_result(task, "first try"))
    again.write_result(failed_result(tasks(53)[0], "second try"))  # a retry overwrites
    found = store.results(t.job.job_id for t in tasks(53))
    assert sorted(found) == [f"j-{i:03d}" for i in range(0, 53, 2)]
    assert found["j-000"] == failed_result(tasks(53)[0], "second try")
    assert store.result_ids() == sorted(found)
    assert store.result("j-001") is None
    assert store.results([]) == {}


def test_missing_pieces_say_what_is_missing(lake):
    store = RunStore(lake, "run-gone")
    with pytest.raises(RunStoreError, match="run run-gone: no plan in"):
        store.plan()
    store.write_plan(Plan("run-gone", lake, None, tuple(tasks(3))), 25)
    with pytest.raises(RunStoreError, match="batch 0 has 3 task"):
        store.task(0, 5)
    with pytest.raises(RunStoreError, match="batch 4 is not in the run store"):
        store.batch(4)


def test_batch_count():
    assert [batch_count(n, 25) for n in (0, 1, 25, 26, 1000)] == [0, 1, 1, 2, 40]


def _claim(lake: str, job_id: str, snapshot: str, start, results) -> None:
    start.wait()  # every process claims at the same moment
    results.put((snapshot, RunStore(lake, "run-s").claim_snapshot(job_id, snapshot)))


def test_two_snapshot_holders_at_once_record_one_snapshot(lake):
    """Durable may run `hold_snapshot` twice at once (a duplicate delivery): each attempt
    exports a snapshot, only the first record stands, and every other attempt is told whose
    (its chunks would otherwise read two states). Real processes, released together."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(4), context.Queue()
    attempts = [
        context.Process(target=_claim, args=(lake, "j-001", f"snap-{i}", start, results))
        for i in range(4)
    ]
    for attempt in attempts:
        attempt.start()
    claims = [results.get(timeout=120) for _ in attempts]
    for attempt in attempts:
        attempt.join(timeout=60)
    winners = [snapshot for snapshot, found in claims if found is None]
    assert len(winners) == 1, claims
    recorded = RunStore(lake, "run-s").snapshot("j-001")
    assert recorded == {"snapshot": winners[0]}
    assert all(found == recorded for _, found in claims if found is not None)
