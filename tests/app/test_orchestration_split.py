"""Split tables (`ingest.job.split`) in the Durable orchestration, through the replay harness.

The activities are the real ones of `function_app`; `run_job` and `run_chunk` (the loads
themselves, tested against real databases in tests/test_split.py) are replaced by functions
whose outcome each test chooses. A split table's `ingest_table` returns its plan, its chunks
run as `ingest_chunk` activities in the batch's window, then its commit: one result, one audit
row with the chunk count."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import function_app
from ingest.app import activities as app_activities
from ingest.model.result import ChunkResult
from ingest.model.task import Task
from ingest.vocabulary import Status
from tests.fixtures.app import (
    Runner,
    activity,
    assert_one_row_per_table,
    batch_handle,
    failed,
    loaded,
    orchestrator_handle,
)
from tests.fixtures.jobs import SPLIT_KEY
from tests.fixtures.sheet import TABLE_JOB, sheet_header
from tests.fixtures.split import Holder, markers


def plan(chunks: int) -> dict[str, Any]:
    return {
        "load_id": "1700000000.5",
        "token": "t0k3n",
        "column": "id",
        "bounds": [str(100 * i) for i in range(1, chunks)],
        "watermark_below": None,
        "chunk": None,
    }


class SplitRunner(Runner):
    """Jobs in `split` (job id -> chunks) split; chunks fail as `chunk_outcome` says."""

    def __init__(self, tmp_path, monkeypatch, tables: int, split: dict[str, int], **settings):
        super().__init__(tmp_path, monkeypatch, tables, **settings)
        self.split = split
        self.chunk_calls: Counter[tuple[str, int]] = Counter()
        self.chunk_outcome = lambda job_id, chunk, n: "SUCCESS"
        self.commits: list[dict[str, Any]] = []
        import ingest.job.chunk

        monkeypatch.setattr(ingest.job.chunk, "run_chunk", self._run_chunk)
        self.extra_activities["ingest_chunk"] = (
            function_app.ingest_chunk.build().get_user_function()
        )
        self.extra_activities["hold_snapshot"] = self._hold
        monkeypatch.setattr(app_activities, "SNAPSHOT_WAIT_S", 0.05)
        monkeypatch.setattr(app_activities, "SNAPSHOT_POLL_S", 0.01)
        self.outcome = self._outcome
        #: job id -> calls of its snapshot holder; how a holder behaves ("instant": records
        #: its snapshot and ends; "until_commit": runs on until its table's commit ran)
        self.holds: Counter[str] = Counter()
        self.holder = "instant"
        self.snapshots_read: dict[tuple[str, int], str | None] = {}

    def _hold(self, reference: dict[str, Any]) -> Any:
        from ingest.app.runstore import RunStore
        from tests.durable_harness import Deferred

        store = RunStore(reference["destination"], reference["run_id"])
        job_id = store.task(int(reference["batch"]), int(reference["position"])).job.job_id
        self.holds[job_id] += 1
        store.write_snapshot(job_id, f"snap-{job_id}")
        result = {"job_id": job_id, "snapshot": f"snap-{job_id}", "ended": "landed", "held_s": 1}
        if self.holder == "instant":
            return result
        committed = lambda: any(t["job"]["job_id"] == job_id for t in self.commits)  # noqa: E731
        return Deferred(committed, lambda: result)

    def _outcome(self, task: dict[str, Any], n: int) -> dict[str, Any]:
        job_id = task["job"]["job_id"]
        if job_id not in self.split:
            return loaded(task)
        if task.get("split") is None:  # the start: a plan instead of a result
            return {**loaded(task, rows=0), SPLIT_KEY: plan(self.split[job_id])}
        assert task["split"]["chunk"] is None and task["split"]["token"] == "t0k3n"
        self.commits.append(task)
        chunks = self.split[job_id]
        landed = [c for c in range(chunks) if self.chunk_landed(job_id, c)]
        if len(landed) < chunks:
            return failed(task, "chunk(s) did not land", retriable=False)
        return {**loaded(task, rows=100 * chunks), "chunks": chunks}

    def chunk_landed(self, job_id: str, chunk: int) -> bool:
        return any(
            self.chunk_outcome(job_id, chunk, n) == "SUCCESS"
            for n in range(1, self.chunk_calls[(job_id, chunk)] + 1)
        )

    def _run_chunk(self, task: Task, **_: Any) -> ChunkResult:
        assert task.split is not None and task.split.chunk is not None
        job_id, chunk = task.job.job_id, task.split.chunk
        assert task.split.token == "t0k3n"
        self.chunk_calls[(job_id, chunk)] += 1
        self.snapshots_read[(job_id, chunk)] = task.split.snapshot
        status = self.chunk_outcome(job_id, chunk, self.chunk_calls[(job_id, chunk)])
        if status == "SUCCESS":
            return ChunkResult(job_id, chunk, status=Status.SUCCESS, rows=100)
        return ChunkResult.failed(job_id, chunk, "connection reset")


@pytest.mark.parametrize("order", ["fifo", "random"])
def test_a_split_table_fans_out_its_chunks_then_commits_once(tmp_path, monkeypatch, order):
    runner = SplitRunner(
        tmp_path, monkeypatch, 12, {"0003": 8, "0007": 4}, max_parallel=3, retry_max_attempts=3
    )
    # chunk 5 of 0003 fails once and is retried alone
    runner.chunk_outcome = lambda job_id, chunk, n: (
        "FAILED" if (job_id, chunk, n) == ("0003", 5, 1) else "SUCCESS"
    )
    sim = runner.run(order=order, seed=3)

    assert sim.max_tables_in_flight <= 3
    rows = assert_one_row_per_table(runner, 12)
    assert rows["0003"]["status"] == "SUCCESS" and rows["0003"]["chunks"] == "8"
    assert rows["0003"]["rows_loaded"] == "800"
    assert rows["0007"]["chunks"] == "4"
    assert rows["0001"]["chunks"] == ""
    assert runner.chunk_calls[("0003", 5)] == 2
    assert {runner.chunk_calls[("0003", c)] for c in range(8) if c != 5} == {1}
    assert sorted(t["job"]["job_id"] for t in runner.commits) == ["0003", "0007"]
    assert runner.output["jobs_failed"] == 0
    assert sim.stats.largest_payload[0] <= 16 * 1024, sim.stats.largest_payload


@pytest.mark.parametrize("order", ["fifo", "random"])
def test_a_held_snapshot_runs_beside_its_chunks_outside_the_window(tmp_path, monkeypatch, order):
    """Each split FULL table gets one `hold_snapshot`, scheduled with its chunks; the holder
    runs on until its table's commit ran (as the real one does, until every chunk landed):
    with a window of ONE slot the chunks and the commit still run (the holder takes no slot,
    and nothing waits for it), and the batch ends only after its holders."""
    runner = SplitRunner(tmp_path, monkeypatch, 6, {"0002": 4, "0005": 3}, max_parallel=1)
    runner.holder = "until_commit"
    runner.run(order=order, seed=7, deferred_wait_s=5)

    rows = assert_one_row_per_table(runner, 6)
    assert {r["status"] for r in rows.values()} == {"SUCCESS"}
    assert runner.sim.max_tables_in_flight <= 1
    assert runner.holds == {"0002": 1, "0005": 1}
    assert runner.snapshots_read == {
        **{("0002", c): "snap-0002" for c in range(4)},
        **{("0005", c): "snap-0005" for c in range(3)},
    }
    log = runner.sim.activity_log
    chunks = [c for c in log if c.name == "ingest_chunk"]
    assert chunks and all(c.input["hold"] is True for c in chunks)
    holds = [c for c in log if c.name == "hold_snapshot"]
    assert all(set(c.input) == {"run_id", "destination", "batch", "position"} for c in holds)
    # the holder was scheduled before its first chunk ran
    first_chunk = next(i for i, c in enumerate(log) if c.name == "ingest_chunk")
    assert log.index(holds[0]) < first_chunk
    assert runner.output["jobs_succeeded"] == 6


def test_chunks_that_run_before_their_holder_recorded_wait_then_retry(tmp_path, monkeypatch):
    """The holder's first attempt dies before it exported (its instance went away): the
    chunks wait for the snapshot (bounded), fail retriable without reading, and read it once
    the holder's retry recorded it: every chunk reads the one snapshot."""
    runner = SplitRunner(
        tmp_path, monkeypatch, 2, {"0001": 3}, max_parallel=2, retry_max_attempts=5
    )
    hold = runner._hold

    def dies_first(reference: dict[str, Any]) -> Any:
        if not runner.holds:
            runner.holds["died"] += 1
            raise RuntimeError("the worker process died")
        return hold(reference)

    runner.extra_activities["hold_snapshot"] = dies_first
    runner.run()

    rows = assert_one_row_per_table(runner, 2)
    assert rows["0001"]["status"] == "SUCCESS", rows["0001"]["error"]
    assert runner.holds == {"died": 1, "0001": 1}
    assert {runner.snapshots_read[("0001", c)] for c in range(3)} == {"snap-0001"}
    attempts = Counter(
        c.input["chunk"] for c in runner.sim.activity_log if c.name == "ingest_chunk"
    )
    assert sum(attempts.values()) > 3  # some waited in vain and were retried
    assert {runner.chunk_calls[("0001", c)] for c in range(3)} == {1}  # each read once


def test_with_snapshots_off_no_holder_runs(tmp_path, monkeypatch):
    runner = SplitRunner(tmp_path, monkeypatch, 3, {"0002": 4}, split_snapshot="off")
    runner.run()

    rows = assert_one_row_per_table(runner, 3)
    assert rows["0002"]["status"] == "SUCCESS"
    assert not runner.holds
    assert not any(c.name == "hold_snapshot" for c in runner.sim.activity_log)
    chunks = [c for c in runner.sim.activity_log if c.name == "ingest_chunk"]
    assert len(chunks) == 4 and not any("hold" in c.input for c in chunks)
    assert {runner.snapshots_read[("0002", c)] for c in range(4)} == {None}


def test_a_chunk_that_keeps_failing_fails_its_table_only(tmp_path, monkeypatch):
    runner = SplitRunner(
        tmp_path, monkeypatch, 5, {"0002": 3}, max_parallel=2, retry_max_attempts=2
    )
    runner.chunk_outcome = lambda job_id, chunk, n: "FAILED" if chunk == 1 else "SUCCESS"
    runner.run()

    rows = assert_one_row_per_table(runner, 5)
    assert rows["0002"]["status"] == "FAILED"
    assert "did not land" in rows["0002"]["error"]
    assert runner.chunk_calls[("0002", 1)] == 2  # its retries, then the commit
    assert len(runner.commits) == 1
    assert Counter(r["status"] for r in rows.values()) == {"SUCCESS": 4, "FAILED": 1}


def test_the_batch_status_shows_a_split_tables_chunks(tmp_path, monkeypatch):
    runner = SplitRunner(tmp_path, monkeypatch, 1, {"0001": 4}, max_parallel=2)
    statuses: list[Any] = []
    original = runner.run_activity

    def watching(call: Any) -> Any:
        for host in runner.sim.hosts.values():
            if host.name == "ingest_batch" and host.custom_status:
                statuses.append(host.custom_status)
        return original(call)

    runner.run_activity = watching
    runner.run()
    seen = [s["splits"]["0001"] for s in statuses if "splits" in s]
    assert seen and seen[0]["chunks"] == 4
    assert max(s["done"] for s in seen) >= 2
    assert max(s["rows"] for s in seen) >= 200


def test_a_split_table_through_replay_with_real_activities(pg, azure_lake, monkeypatch, tmp_path):
    """Every activity for real (dlt loads from PostgreSQL into Azurite): a table split in 4
    chunks next to two ordinary tables; every row once, one completion marker, MATCH."""
    from ingest.reports.history import run_results
    from tests.durable_harness import ActivityFailure, DurableSim
    from tests.fixtures.orders import ORDERS_DDL, insert_orders, lake_rows, source_rows

    pg.execute(ORDERS_DDL)
    insert_orders(pg, 1, 4000)
    for name in ("a", "b"):
        pg.execute(f"CREATE TABLE {name} (id int primary key)")
        pg.execute(f"INSERT INTO {name} SELECT generate_series(1, 5)")
    pg.use_as(monkeypatch, "pg_erp")
    config = tmp_path / "jobs.csv"
    config.write_text(
        sheet_header(
            *TABLE_JOB,
            "split",
        )
        + "\n"
        f"001,Y,postgresql,pg_erp,{pg.name},a,FULL,\n"
        f"002,Y,postgresql,pg_erp,{pg.name},orders,FULL,4\n"
        f"003,Y,postgresql,pg_erp,{pg.name},b,FULL,\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(config))
    monkeypatch.setenv("INGEST_DESTINATION", azure_lake)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    monkeypatch.setenv("INGEST_RETRY_MAX_ATTEMPTS", "5")
    # the sim runs one activity at a time: a chunk it picks before the snapshot's holder waits
    # this long for the snapshot, fails retriable without reading, and runs again later
    monkeypatch.setattr(app_activities, "SNAPSHOT_WAIT_S", 20.0)

    from tests.durable_harness import Deferred

    def run_activity(call):
        if call.name == "hold_snapshot":  # runs beside the chunks: a process of its own
            holder = Holder(call.input, tmp_path)
            return Deferred(holder.ready, holder.outcome)
        try:
            return activity(call.name)(call.input)
        except Exception as exc:
            raise ActivityFailure(f"{type(exc).__name__}: {exc}") from exc

    handles = {"ingest_run": orchestrator_handle(), "ingest_batch": batch_handle()}
    sim = DurableSim(handles, run_activity, order="random", seed=29, deferred_wait_s=120)
    sim.start("ingest_run", "run-split", {"run_id": "run-split", "trigger": "http"})
    sim.run()
    output = sim.hosts["run-split"].state["output"]
    assert output["jobs_succeeded"] == 3, output
    assert output["rows_loaded"] == 4010
    assert sim.max_tables_in_flight <= 2
    chunks = [c.input["chunk"] for c in sim.activity_log if c.name == "ingest_chunk"]
    assert sorted(set(chunks)) == [0, 1, 2, 3]  # (one picked before the holder ran: again)
    assert lake_rows(azure_lake) == source_rows(pg)
    from ingest.config import JobConfig

    job = JobConfig("002", True, "postgresql", "pg_erp", "orders", "FULL", schema_name=pg.name)
    assert len(markers(azure_lake, job)) == 1
    rows = {row["job_id"]: row for row in run_results(azure_lake, "run-split")}
    assert rows["002"]["chunks"] == "4" and rows["002"]["reconciled"] == "MATCH"
    assert "4 chunks read one exported snapshot" in rows["002"]["reconcile_note"]
    assert sum(1 for c in sim.activity_log if c.name == "hold_snapshot") == 1
    assert rows["001"]["chunks"] == ""


def test_run_status_shows_the_chunks_of_split_tables():
    import asyncio
    from types import SimpleNamespace

    from ingest.app.batching import batch_instance_id
    from ingest.app.run_status import live_progress

    batches = {
        batch_instance_id("run-s", 0): {"done": 3, "failed": 0, "running": 2},
        batch_instance_id("run-s", 1): {
            "done": 1,
            "failed": 1,
            "running": 1,
            "splits": {"0042": {"chunks": 16, "done": 9, "failed": 0, "rows": 450_000_000}},
        },
    }

    class Client:
        async def get_status(self, instance_id):
            return SimpleNamespace(custom_status=batches.get(instance_id))

    custom = {"run_id": "run-s", "done": 20, "failed": 0, "batches_running": [0, 1]}
    progress = asyncio.run(live_progress(Client(), "run-s", custom))
    assert progress["done"] == 24 and progress["failed"] == 1 and progress["running"] == 3
    assert progress["splits"] == {
        "0042": {"chunks": 16, "done": 9, "failed": 0, "rows": 450_000_000}
    }


def test_1000_tables_with_10_split_in_16_chunks_stay_within_the_limits(tmp_path, monkeypatch):
    split = {f"{i:04d}": 16 for i in range(100, 1001, 100)}
    runner = SplitRunner(tmp_path, monkeypatch, 1000, split, max_parallel=8)
    sim = runner.run(order="random", seed=29)

    assert sim.max_tables_in_flight <= 8
    rows = assert_one_row_per_table(runner, 1000)
    assert {k for k, r in rows.items() if r["chunks"]} == set(split)
    # each chunk read once; in random order some ran before their table's snapshot holder
    # had recorded its snapshot: they waited, failed retriable without reading, ran again
    assert sum(runner.chunk_calls.values()) == 160
    assert sum(1 for c in sim.activity_log if c.name == "ingest_chunk") >= 160
    assert sum(1 for c in sim.activity_log if c.name == "hold_snapshot") == 10
    assert runner.output["jobs_succeeded"] == 1000
    assert sim.stats.largest_payload[0] <= 16 * 1024, sim.stats.largest_payload
    assert sim.stats.largest_history[1] <= 512 * 1024, sim.stats.largest_history
