"""The run's orchestration at scale, replayed through the Durable SDK's real replay engine.

`DurableSim` (tests/durable_harness.py) plays the extension: the parent `ingest_run`, every
`ingest_batch` sub-orchestration it creates (own history each), retry timers, durable timers.
The activities are the REAL ones of `function_app` (plan_run writes the run store into a
file:// lake, ingest_table reads its task from it and writes its result, record_failure,
write_audit appends the real audit CSV); only `run_job`, the dlt load itself, is replaced by a
function whose outcome each test chooses (loading real tables is what tests/app/test_function_app
and the engine tests do). Every test reads the audit back and checks one row per table
(`Runner`, `assert_one_row_per_table`: tests/fixtures/app.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import function_app
from ingest.app import MANUAL_INSTANCE
from ingest.app.batching import MIN_LANE_WIDTH, batch_instance_id, lane_widths
from tests.durable_harness import ActivityFailure, DurableSim
from tests.fixtures.app import (
    Runner,
    assert_one_row_per_table,
    failed,
    job_row,
    loaded,
    write_config,
)

# ------------------------------------------------------------------------------ the split


def test_lanes_share_the_parallel_slots():
    for max_parallel in range(1, 40):
        for tables in (1, 24, 25, 26, 100, 1000):
            widths = lane_widths(tables, 25, max_parallel)
            assert sum(widths) == max_parallel
            assert len(widths) <= -(-tables // 25)
            assert max(widths) - min(widths) <= 1
            if max_parallel >= MIN_LANE_WIDTH:
                assert min(widths) >= MIN_LANE_WIDTH
    assert lane_widths(1000, 25, 8) == [4, 4]
    assert lane_widths(20, 25, 8) == [8]  # one batch: one lane, the whole window


def test_run_is_split_into_batches_exchanging_references(tmp_path, monkeypatch):
    runner = Runner(tmp_path, monkeypatch, 60, batch_size=25, max_parallel=8)
    running: list[int] = []
    sim_step = DurableSim.step

    def step(sim: DurableSim) -> bool:
        running.append(
            sum(1 for h in sim.hosts.values() if h.name == "ingest_batch" and not h.done)
        )
        return sim_step(sim)

    monkeypatch.setattr(DurableSim, "step", step)
    sim = runner.run(order="random", seed=3)
    batches = [h for h in sim.all_hosts if h.name == "ingest_batch"]
    assert [h.instance_id for h in batches] == [batch_instance_id("run-t", n) for n in range(3)]
    assert [(h.input["size"], h.input["window"]) for h in batches] == [(25, 4), (25, 4), (10, 4)]
    assert max(running) == 2  # two lanes of 4 tables: at most two batches at once
    for host in batches:  # each batch's own history: its tables only
        assert host.parent_instance_id == "run-t"
        assert sum(1 for e in host.history if e["EventType"] == 4) == host.input["size"]
    inputs = runner.table_inputs()
    assert len(inputs) == 60
    assert all(set(i) == {"run_id", "destination", "batch", "position"} for i in inputs)
    assert sorted((i["batch"], i["position"]) for i in inputs) == [
        (b, p) for b, size in enumerate((25, 25, 10)) for p in range(size)
    ]
    retry = {r["retry"]["maxNumberOfAttempts"] for h in batches for r in h.scheduled_log}
    assert retry == {3}
    rows = assert_one_row_per_table(runner, 60)
    assert {row["status"] for row in rows.values()} == {"SUCCESS"}
    out = runner.output
    assert (out["jobs_total"], out["jobs_succeeded"], out["rows_loaded"]) == (60, 60, 600)
    assert out["batches"] == 3 and out["failed_jobs"] == []
    assert runner.parent.custom_status["phase"] == "finished"
    assert runner.parent.custom_status["done"] == 60


@pytest.mark.parametrize("max_parallel", [1, 3, 8, 10])
def test_tables_in_flight_never_exceed_max_parallel(tmp_path, monkeypatch, max_parallel):
    runner = Runner(tmp_path, monkeypatch, 70, batch_size=20, max_parallel=max_parallel)
    sim = runner.run(order="random", seed=max_parallel)
    assert sim.max_tables_in_flight == max_parallel  # reached, never exceeded
    assert_one_row_per_table(runner, 70)


def test_empty_plan_still_audits(tmp_path, monkeypatch):
    runner = Runner(tmp_path, monkeypatch, 1)
    rows = [job_row("0001", "t1", schedule="WEEKLY:TUE")]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "w.csv", rows)))
    runner.run({"run_id": "nightly-2026-06-01", "trigger": "timer", "scheduled_weekday": "MON"})
    assert [h.name for h in runner.sim.all_hosts] == ["ingest_run"]
    assert runner.output["jobs_total"] == 0 and runner.output["skipped"] == 1


# ------------------------------------------------------------------------------ failures


def test_partial_failures_and_retries(tmp_path, monkeypatch):
    runner = Runner(tmp_path, monkeypatch, 30, retry_max_attempts=3, max_parallel=4)

    def outcome(task: dict[str, Any], n: int) -> dict[str, Any]:
        job_id = task["job"]["job_id"]
        if job_id == "0002" and n < 3:  # flaky: the third attempt loads
            return failed(task, "source 'src_2' unreachable", retriable=True)
        if job_id == "0005":  # down for the whole run
            return failed(task, "source 'src_2' unreachable", retriable=True)
        if job_id == "0007":  # permanent: not retried
            return failed(task, "table public.t7 does not exist", retriable=False)
        return loaded(task)

    runner.outcome = outcome
    runner.run(order="random", seed=7)
    assert runner.calls["0002"] == 3 and runner.calls["0005"] == 3 and runner.calls["0007"] == 1
    assert {runner.calls[f"{i:04d}"] for i in range(1, 31)} - {3} == {1}
    rows = assert_one_row_per_table(runner, 30)
    assert rows["0002"]["status"] == "SUCCESS"
    assert rows["0005"]["status"] == "FAILED"
    assert rows["0005"]["error"] == ("failed after retries: job 0005: source 'src_2' unreachable")
    assert rows["0007"]["status"] == "FAILED"
    assert rows["0007"]["error"] == "table public.t7 does not exist"
    assert Counter(r["status"] for r in rows.values()) == {"SUCCESS": 28, "FAILED": 2}
    out = runner.output
    assert out["jobs_failed"] == 2 and sorted(out["failed_jobs"]) == ["0005", "0007"]
    assert runner.parent.custom_status["failed"] == 2


def test_a_table_whose_activity_crashes_gets_a_failed_row(tmp_path, monkeypatch):
    """The activity dies without writing a result (worker killed, timeout): the reason Durable
    reports becomes the table's FAILED row."""
    runner = Runner(tmp_path, monkeypatch, 10, retry_max_attempts=2)
    table = runner.activities["ingest_table"]

    def crashing(reference: dict[str, Any]) -> Any:
        if (reference["batch"], reference["position"]) == (0, 4):
            raise ActivityFailure("Timeout value of 02:00:00 was exceeded by function")
        return table(reference)

    runner.extra_activities["ingest_table"] = crashing
    runner.run()
    rows = assert_one_row_per_table(runner, 10)
    assert rows["0005"]["status"] == "FAILED"
    assert rows["0005"]["error"] == (
        "failed after retries: Timeout value of 02:00:00 was exceeded by function"
    )
    assert runner.output["failed_jobs"] == ["0005"]


def test_a_failing_batch_sub_orchestration(tmp_path, monkeypatch):
    """Batch 1 crashes after some of its tables loaded, on every attempt: the run goes on, the
    tables it loaded keep their results, the others get FAILED rows naming the batch."""
    runner = Runner(tmp_path, monkeypatch, 60, batch_size=20, retry_max_attempts=2)
    attempts: Counter[str] = Counter()

    def crash(host) -> str | None:
        if host.instance_id.endswith("batch-0001") and host.episodes == 6:
            attempts[host.instance_id] += 1
            return "Exception: the worker running the orchestrator died"
        return None

    runner.run(crash=crash, order="fifo")
    assert attempts == {"run-t:batch-0001": 2}  # first try + one retry, then recorded
    rows = assert_one_row_per_table(runner, 60)
    batch1 = [rows[f"{i:04d}"] for i in range(21, 41)]
    done = [r for r in batch1 if r["status"] == "SUCCESS"]
    lost = [r for r in batch1 if r["status"] == "FAILED"]
    assert done and lost and len(done) + len(lost) == 20
    assert {r["error"] for r in lost} == {
        "batch 1 failed: Exception: the worker running the orchestrator died"
    }
    others = [rows[f"{i:04d}"] for i in [*range(1, 21), *range(41, 61)]]
    assert {r["status"] for r in others} == {"SUCCESS"}
    out = runner.output
    assert out["jobs_failed"] == len(lost) and out["jobs_succeeded"] == 40 + len(done)


def test_a_batch_that_fails_once_is_retried_whole(tmp_path, monkeypatch):
    runner = Runner(tmp_path, monkeypatch, 40, batch_size=20, retry_max_attempts=3)
    crashed: list[str] = []

    def crash(host) -> str | None:
        if host.instance_id.endswith("batch-0000") and host.episodes == 8 and not crashed:
            crashed.append(host.instance_id)
            return "Exception: orchestrator crashed"
        return None

    runner.run(crash=crash)
    assert crashed == ["run-t:batch-0000"]
    rows = assert_one_row_per_table(runner, 40)
    assert {r["status"] for r in rows.values()} == {"SUCCESS"}
    # the retried batch ran its tables again: run_job is idempotent per run id (it reports
    # the earlier load), and each table still has exactly one audit row
    assert max(runner.calls.values()) == 2


def test_1000_tables_with_a_small_window_every_table_has_exactly_one_result(tmp_path, monkeypatch):
    runner = Runner(tmp_path, monkeypatch, 1000, max_parallel=3, retry_max_attempts=2)

    def outcome(task: dict[str, Any], n: int) -> dict[str, Any]:
        number = int(task["job"]["job_id"])
        if number % 37 == 0 and n == 1:  # flaky once
            return failed(task, "deadlock detected", retriable=True)
        if number % 101 == 0:
            return failed(task, "permission denied for table", retriable=False)
        return loaded(task, rows=number)

    runner.outcome = outcome
    sim = runner.run(order="random", seed=1000)
    assert sim.max_tables_in_flight == 3
    rows = assert_one_row_per_table(runner, 1000)
    failed_ids = sorted(k for k, r in rows.items() if r["status"] == "FAILED")
    assert failed_ids == [f"{i:04d}" for i in range(101, 1001, 101)]
    from ingest.app.runstore import RunStore

    assert len(RunStore(runner.lake, "run-t").result_ids()) == 1000
    out = runner.output
    assert out["jobs_total"] == 1000 and out["jobs_failed"] == 9
    expected_rows = sum(i for i in range(1, 1001) if i % 101)
    assert out["rows_loaded"] == expected_rows
    assert sum(int(r["rows_loaded"]) for r in rows.values()) == expected_rows
    # small payloads and short histories, whatever the run's size
    assert sim.stats.largest_payload[0] <= 16 * 1024, sim.stats.largest_payload
    assert sim.stats.largest_history[1] <= 512 * 1024, sim.stats.largest_history
    assert sim.stats.orchestrations == 1 + 40


# ------------------------------------------------------------------------------ waiting


def waiting_runner(tmp_path, monkeypatch, probes: Callable[[int], Any]) -> Runner:
    runner = Runner(tmp_path, monkeypatch, 5)
    calls = Counter()

    def find_active_runs(request: dict[str, Any]) -> Any:
        calls["probe"] += 1
        assert request == {"exclude": ["nightly-2026-01-15"]}
        return probes(calls["probe"])

    runner.extra_activities["find_active_runs"] = find_active_runs
    runner.probes = calls
    return runner


NIGHTLY = {
    "run_id": "nightly-2026-01-15",
    "trigger": "timer",
    "scheduled_weekday": "THU",
    "full_refresh": False,
    "scheduled_for": "2026-01-15T07:00:00+00:00",
    "wait": {"max_wait_s": 3600, "poll_s": 300},
}


def test_a_scheduled_run_waits_for_the_active_run_then_runs(tmp_path, monkeypatch):
    captured: list[dict[str, Any]] = []
    import ingest.telemetry

    def capture(run, summary=None, **_):
        results = [r.to_dict() for r in run.results]
        props = ingest.telemetry.run_event_properties(run.to_dict(), results, summary.to_dict())
        captured.append(props)
        return True

    monkeypatch.setattr(ingest.telemetry, "emit_run_telemetry", capture)
    runner = waiting_runner(tmp_path, monkeypatch, lambda n: ["run-manual"] if n <= 3 else [])
    runner.run(dict(NIGHTLY))
    parent = runner.parent
    timers = [e for e in parent.history if e["EventType"] == 10]
    assert len(timers) == 3 and runner.probes["probe"] == 4
    fire_times = [e["FireAt"] for e in timers]
    assert fire_times == sorted(fire_times) and len(set(fire_times)) == 3
    out = runner.output
    waited = out["waited"]
    assert waited["waited_for"] == ["run-manual"] and waited["outcome"] == "finished"
    assert 900 <= waited["waited_s"] < 960  # three 5-minute timers (+1 s per harness episode)
    rows = assert_one_row_per_table(runner, 5)
    assert {r["run_note"] for r in rows.values()} == {
        "scheduled run started 15 min late: waited for run-manual (finished)"
    }
    [props] = captured
    assert props["trigger"] == "schedule"
    assert props["waited_s"] == str(waited["waited_s"]) and props["waited_for"] == "run-manual"
    # planning happened after the wait, not before
    names = [e.get("Name") for e in parent.history if e["EventType"] == 4]
    assert names[:4] == ["find_active_runs"] * 4 and names[4] == "plan_run"


def test_the_wait_is_bounded(tmp_path, monkeypatch):
    runner = waiting_runner(tmp_path, monkeypatch, lambda n: ["manual-run"])
    request = {**NIGHTLY, "wait": {"max_wait_s": 900, "poll_s": 300}}
    runner.run(request)
    assert runner.probes["probe"] == 4  # at 0, 5, 10 and 15 minutes
    assert runner.output["waited"]["outcome"] == "gave up waiting"
    assert runner.output["jobs_succeeded"] == 5


def test_a_failing_probe_does_not_cost_the_night(tmp_path, monkeypatch):
    def probe(n: int) -> Any:
        raise ActivityFailure("HTTPError: 503 from the Durable management API")

    runner = waiting_runner(tmp_path, monkeypatch, probe)
    runner.run(dict(NIGHTLY))
    assert runner.probes["probe"] == 3  # its retries
    assert runner.output["jobs_succeeded"] == 5 and "waited" not in runner.output


def test_nothing_active_means_no_wait(tmp_path, monkeypatch):
    runner = waiting_runner(tmp_path, monkeypatch, lambda n: [])
    runner.run(dict(NIGHTLY))
    assert runner.probes["probe"] == 1
    assert "waited" not in runner.output
    assert not any(r.get("run_note") for r in runner.audit())  # the column is there, empty


def test_find_active_runs_names_the_runs(tmp_path):
    """The real probe activity against the management API stand-in: the on-demand instance is
    named by the run id it holds; the caller itself is left out."""
    import asyncio

    from tests.durable_harness import FakeDurable

    durable = FakeDurable()
    durable.add(MANUAL_INSTANCE, "Running", input=json.dumps({"run_id": "run-20260115T0650Z-abc"}))
    durable.add("nightly-2026-01-15", "Running")
    durable.add("nightly-2026-01-14", "Completed")
    durable.add("run-t:batch-0000", "Running", name="ingest_batch")
    probe = function_app.find_active_runs.build().get_user_function().client_function
    request = {"exclude": ["nightly-2026-01-15"]}
    assert asyncio.run(probe(request, client=durable.client())) == ["run-20260115T0650Z-abc"]
    durable.set_status(MANUAL_INSTANCE, "Completed")
    assert asyncio.run(probe(request, client=durable.client())) == []
