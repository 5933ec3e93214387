"""The function app, driven as Microsoft documents it (no Functions host here):
activities via `.build().get_user_function()`, starters via `.client_function` with a real
DurableOrchestrationClient over an in-memory management API, the orchestrator through the
Durable SDK's real replay engine fed with history (tests/durable_harness.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import function_app
from ingest.app import MANUAL_INSTANCE
from ingest.model.plan import Plan
from ingest.model.result import JobResult
from ingest.model.task import Backfill, Task
from tests.conftest import read_lake_table
from tests.durable_harness import FakeDurable, NonDeterminism, ReplayHost
from tests.fixtures.app import (
    activity,
    batch_handle,
    fake_result,
    job_row,
    orchestrator_handle,
    reference,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ helpers


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A config of 6 jobs (one disabled, two sources); INGEST_CONFIG_PATH points at it."""
    rows = [job_row(f"{i:03d}", f"t{i}") for i in range(1, 5)]
    rows.append(job_row("005", "t5", enabled="N"))
    rows.append(job_row("006", "orders", source="pg_other"))
    path = write_config(tmp_path / "jobs.csv", rows)
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(path))
    monkeypatch.setenv("INGEST_DESTINATION", (tmp_path / "lake").as_uri())
    return path


@functools.cache
def indexed() -> dict[str, Any]:
    """`app.get_functions()` (the host's indexing step; it may run only once per app)."""
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def starter(name: str):
    return getattr(function_app, name).build().get_user_function().client_function


def http_request(method: str, url: str, body: bytes = b"", route_params=None):
    import azure.functions as func

    return func.HttpRequest(method, url, body=body, route_params=route_params or {}, params={})


def run(coro):
    return asyncio.run(coro)


def body_of(response) -> Any:
    return json.loads(response.get_body())


def started_host(request: dict[str, Any], instance_id="run-test") -> ReplayHost:
    host = ReplayHost(orchestrator_handle(), request, instance_id=instance_id)
    host.start()
    return host


def planned_output(request: dict[str, Any]) -> dict[str, Any]:
    """The REAL plan_run activity's output for a request (config from the environment)."""
    return activity("plan_run")(request)


# ------------------------------------------------------------------------------ indexing


def test_functions_are_indexed_with_their_triggers():
    functions = indexed()
    assert set(functions) == {
        "start_run",
        "get_run",
        "list_jobs",
        "nightly_timer",
        "ingest_run",
        "ingest_batch",
        "plan_run",
        "ingest_table",
        "ingest_chunk",
        "hold_snapshot",
        "record_failure",
        "write_audit",
        "find_active_runs",
        "get_run_report",
    }

    def trigger(name):
        bindings = json.loads(functions[name].get_function_json())["bindings"]
        triggers = [b for b in bindings if b["type"].endswith("Trigger")]
        assert len(triggers) == 1, bindings
        return triggers[0], bindings

    for name, route, method in (
        ("start_run", "runs", "POST"),
        ("get_run", "runs/{id}", "GET"),
        ("get_run_report", "runs/{id}/report", "GET"),
        ("list_jobs", "jobs", "GET"),
    ):
        http, bindings = trigger(name)
        assert http["type"] == "httpTrigger"
        assert http["route"] == route and http["methods"] == [method]
        assert http["authLevel"] == "FUNCTION"
        has_client = any(b["type"] == "durableClient" for b in bindings)
        assert has_client == (name not in ("list_jobs", "get_run_report"))
    timer, bindings = trigger("nightly_timer")
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 0 6,7 * * *"
    assert timer["runOnStartup"] is False
    assert any(b["type"] == "durableClient" for b in bindings)
    for name in ("ingest_run", "ingest_batch"):
        assert trigger(name)[0]["type"] == "orchestrationTrigger"
    for name in ("plan_run", "ingest_table", "record_failure", "write_audit", "find_active_runs"):
        activity_trigger, bindings = trigger(name)
        assert activity_trigger["type"] == "activityTrigger"
        has_client = any(b["type"] == "durableClient" for b in bindings)
        assert has_client == (name == "find_active_runs")  # the waiting run's probe


HEAVY = (
    "dlt",
    "pyarrow",
    "sqlalchemy",
    "psycopg2",
    "pymysql",
    "pyodbc",
    "oracledb",
    "openpyxl",
    "pandas",
    "fsspec",
    "adlfs",
    "azure.monitor",
    "azure.identity",
    "azure.storage",
    "opentelemetry.sdk",
    "matplotlib",
    "numpy",
)


def test_import_loads_no_heavy_library():
    code = (
        "import json, sys, time; t = time.perf_counter(); import function_app; "
        "elapsed = time.perf_counter() - t; "
        f"heavy = [m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r})]; "
        "print(json.dumps({'heavy': heavy, 'seconds': elapsed}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["seconds"] < 2.0  # measured ~0.3 s; generous for loaded CI machines


def test_opentelemetry_api_only_comes_from_the_durable_sdk():
    """azure-functions-durable itself imports the OpenTelemetry *API* (trace propagation);
    neither the SDK nor azure-monitor may be loaded by importing the app."""
    code = (
        "import sys, function_app; "
        "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules "
        "if m.startswith('opentelemetry.') and m.count('.') >= 1}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "opentelemetry.sdk" not in out.stdout


# ------------------------------------------------------------------------------ orchestrator
# Whole runs (batches, lanes, failures, retries, 1,000 tables, the scheduled run's wait) are
# replayed in tests/test_orchestration.py; here: the parent's and a batch's first steps.


def planned_batches(host: ReplayHost) -> list[dict[str, Any]]:
    """Complete the parent's plan_run with the REAL activity; the batches it then starts."""
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    return [host.input_of(i) for i in host.pending("ingest_batch")]


def test_plan_run_returns_counts_and_batches_get_references(config, monkeypatch):
    monkeypatch.setenv("INGEST_RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("INGEST_RETRY_FIRST_INTERVAL_S", "45")
    monkeypatch.setenv("INGEST_RETRY_BACKOFF", "1.5")
    monkeypatch.setenv("INGEST_BATCH_SIZE", "2")
    request = {"run_id": "run-a", "trigger": "http"}
    host = started_host(request)
    [plan_id] = host.pending("plan_run")
    assert host.input_of(plan_id) == request
    planned = planned_output(host.input_of(plan_id))
    assert (planned["total"], planned["batches"], planned["batch_size"]) == (5, 3, 2)
    assert "tasks" not in planned and "plan" not in planned  # the plan is in the run store
    host.complete((plan_id, planned))
    retry = {"firstRetryIntervalInMilliseconds": 45000, "maxNumberOfAttempts": 4}
    batches = host.pending("ingest_batch")
    assert [host.sub_instance_id(i) for i in batches] == ["run-a:batch-0000", "run-a:batch-0001"]
    for task_id in batches:  # two lanes of 4 (INGEST_MAX_PARALLEL 8), the third batch waits
        action = host.open[task_id]["action"]
        assert action["actionType"] == 3  # CallSubOrchestratorWithRetry
        assert action["retryOptions"] == {**retry, "backoffCoefficient": 1.5}
    first = host.input_of(batches[0])
    assert first == {
        "run_id": "run-a",
        "destination": planned["destination"],
        "batch": 0,
        "size": 2,
        "window": 4,
        "retry": {
            "retry_first_interval_ms": 45000,
            "retry_max_attempts": 4,
            "retry_backoff": 1.5,
        },
    }
    assert host.custom_status == {
        "run_id": "run-a",
        "phase": "loading",
        "total": 5,
        "done": 0,
        "failed": 0,
        "batches": 3,
        "batches_done": 0,
        "batches_running": [0, 1],
    }
    batch = ReplayHost(batch_handle(), first, instance_id="run-a:batch-0000", name="ingest_batch")
    batch.start()
    tables = batch.pending("ingest_table")
    assert [batch.input_of(i) for i in tables] == [
        {"run_id": "run-a", "destination": planned["destination"], "batch": 0, "position": p}
        for p in (0, 1)
    ]
    for task_id in tables:
        action = batch.open[task_id]["action"]
        assert action["actionType"] == 1  # CallActivityWithRetry
        assert action["retryOptions"] == {**retry, "backoffCoefficient": 1.5}
    assert batch.custom_status == {
        "run_id": "run-a",
        "batch": 0,
        "total": 2,
        "done": 0,
        "failed": 0,
        "running": 2,
    }


@pytest.mark.parametrize(
    ("request_filters", "expected"),
    [
        ({"jobs": ["002", "006"]}, ["002", "006"]),
        ({"sources": ["pg_other"]}, ["006"]),
        ({"sources": ["pg_src"], "full_refresh": True}, ["001", "002", "003", "004"]),
    ],
)
def test_filters_are_honoured(config, request_filters, expected):
    from ingest.app.runstore import RunStore

    host = started_host({"run_id": "run-f", **request_filters})
    [first] = planned_batches(host)
    tasks = RunStore(first["destination"], "run-f").tasks()
    assert [t.job.job_id for t in tasks] == expected
    assert {t.full_refresh for t in tasks} == {bool(request_filters.get("full_refresh"))}
    assert first["size"] == len(expected)


def test_replaying_the_same_history_gives_the_same_actions(tmp_path, monkeypatch):
    spec = {
        "run_id": "run-r",
        "destination": (tmp_path / "lake").as_uri(),
        "batch": 0,
        "size": 6,
        "window": 2,
        "retry": {"retry_first_interval_ms": 1000, "retry_max_attempts": 2, "retry_backoff": 1},
    }
    host = ReplayHost(batch_handle(), spec, instance_id="run-r:batch-0000", name="ingest_batch")
    host.start()
    a, b = host.pending("ingest_table")
    host.complete((b, {"job_id": "002", "status": "SUCCESS", "rows_loaded": 1}))
    host.fail(a, "Activity function 'ingest_table' failed: boom")
    first = host.raw_state
    again = [host.handle(host.context_json()) for _ in range(2)]
    assert again == [first, first]
    # a different history (another completion) gives other actions: the check can fail
    c = host.pending("ingest_table")[-1]
    host.complete((c, {"job_id": "003", "status": "SUCCESS", "rows_loaded": 1}))
    assert host.raw_state != first


def test_nondeterministic_orchestrator_is_caught_by_the_harness(tmp_path, monkeypatch):
    """The harness's determinism check works: an orchestrator whose actions change between
    replays (here: it reads the environment) is reported."""
    import azure.durable_functions as df

    calls = {"n": 0}

    def flaky(context):
        calls["n"] += 1
        yield context.call_activity("plan_run", {"n": calls["n"]})

    handle = df.Orchestrator.create(flaky)
    host = ReplayHost(handle, {})
    host.start()
    with pytest.raises(NonDeterminism):
        host.complete()


def test_plan_failure_fails_the_run_with_the_reason(config):
    host = started_host({"run_id": "run-p"})
    [plan_id] = host.pending("plan_run")
    host.fail(plan_id, "Activity function 'plan_run' failed: RequestError: unknown job id(s): 999")
    assert host.state["isDone"] is False
    assert host.error and "could not be planned: RequestError: unknown job id(s): 999" in host.error
    assert host.custom_status["phase"] == "failed"
    assert host.pending() == []


# ------------------------------------------------------------------------------ activities


@pytest.mark.postgres
@pytest.mark.azurite
def test_ingest_table_and_write_audit_for_real(pg, azure_lake, monkeypatch, tmp_path):
    from ingest.app.runstore import RunStore

    pg.execute("CREATE TABLE customers (id int primary key, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 30) g")
    pg.use_as(monkeypatch, "pg_src")
    rows = [
        job_row("001", "customers", schema_name=pg.name),
        job_row("002", "missing_table", schema_name=pg.name),
    ]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "c.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", azure_lake)
    planned = activity("plan_run")({"run_id": "run-real"})
    assert planned["settings"]["max_parallel"] == 8 and planned["total"] == 2
    store = RunStore(azure_lake, "run-real")
    assert [t.job.job_id for t in store.batch(0)] == ["001", "002"]
    result = activity("ingest_table")(reference(planned, 0, 0))
    assert result == {"job_id": "001", "status": "SUCCESS", "rows_loaded": 30, "files_written": 1}
    stored = store.result("001")
    again = activity("ingest_table")(reference(planned, 0, 0))  # at-least-once: no second load
    assert again == result and store.result("001").load_id == stored.load_id
    lake = read_lake_table(azure_lake, "pg_src", "customers")
    assert sorted(lake.column("id").to_pylist()) == list(range(1, 31))
    missing = activity("ingest_table")(reference(planned, 0, 1))  # not retriable: returned
    assert missing["status"] == "FAILED" and store.result("002").retriable is False
    run = {"run_id": "run-real", "destination": azure_lake, "started_at": planned["started_at"]}
    summary = activity("write_audit")(run)
    assert summary["jobs_total"] == 2 and summary["jobs_failed"] == 1
    assert summary["rows_loaded"] == 30 and summary["audit_rows_added"] == 2
    assert activity("write_audit")(run)["audit_rows_added"] == 0  # retried: no duplicates
    from ingest.reports.history import run_results

    audit = run_results(azure_lake, "run-real")
    assert [(r["job_id"], r["status"], r["rows_loaded"]) for r in audit] == [
        ("001", "SUCCESS", "30"),
        ("002", "FAILED", "0"),
    ]
    assert audit[0]["load_id"] == stored.load_id
    assert "does not exist" in audit[1]["error"] or "missing_table" in audit[1]["error"]
    # after the audit: the run's report in the lake (Azurite), served by the report route
    assert summary["report"]["path"].endswith("/metadata/reports/run-real.html")
    assert summary["report"]["latest"].endswith("/metadata/reports/latest.html")
    from ingest.lake.destination import Destination

    blobs = Destination.from_url(azure_lake).container_client()
    stored_report = blobs.get_blob_client("metadata/reports/run-real.html")
    assert stored_report.get_blob_properties().content_settings.content_type.startswith("text/html")
    response = report_call("run-real")
    assert response.status_code == 200
    assert response.get_body() == stored_report.download_blob().readall()
    assert b"missing_table" in response.get_body()


@pytest.mark.postgres
def test_ingest_table_raises_for_retriable_failures(pg, file_lake, monkeypatch, tmp_path):
    from ingest.app.activities import RetriableTableError
    from ingest.app.runstore import RunStore

    monkeypatch.setenv("SOURCES__PG_DOWN__HOST", "127.0.0.1")
    monkeypatch.setenv("SOURCES__PG_DOWN__PORT", "1")  # nothing listens: connection refused
    monkeypatch.setenv("SOURCES__PG_DOWN__DATABASE", "test")
    monkeypatch.setenv("SOURCES__PG_DOWN__USERNAME", "postgres")
    rows = [job_row("001", "t", source="pg_down")]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "d.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", file_lake)
    planned = activity("plan_run")({"run_id": "run-down"})
    with pytest.raises(RetriableTableError, match="job 001"):
        activity("ingest_table")(reference(planned, 0, 0))
    stored = RunStore(file_lake, "run-down").result("001")  # the attempt's result is kept
    assert stored.status == "FAILED" and stored.retriable is True
    # after the retries, record_failure gives the table the reason Durable reported
    recorded = activity("record_failure")(
        {**reference(planned, 0, 0), "error": "failed after retries: job 001: unreachable"}
    )
    assert recorded == {
        "done": 1,
        "succeeded": 0,
        "failed": 1,
        "rows_loaded": 0,
        "failed_jobs": ["001"],
    }
    final = RunStore(file_lake, "run-down").result("001")
    assert final.error == "failed after retries: job 001: unreachable"


def test_record_failure_never_replaces_a_loaded_table(tmp_path, monkeypatch):
    from ingest.app.runstore import RunStore

    rows = [job_row("001", "t1"), job_row("002", "t2"), job_row("003", "t3")]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "r.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", (tmp_path / "lake").as_uri())
    planned = activity("plan_run")({"run_id": "run-rf"})
    store = RunStore(planned["destination"], "run-rf")
    [t1, t2, _t3] = store.batch(0)
    store.write_result(JobResult.from_dict(fake_result(t1.to_dict())))
    store.write_result(JobResult.from_dict(fake_result(t2.to_dict(), status="FAILED")))
    outcome = activity("record_failure")(
        {"run_id": "run-rf", "destination": planned["destination"], "batch": 0, "error": "boom"}
    )
    assert outcome["done"] == 3 and outcome["failed_jobs"] == ["002", "003"]
    assert store.result("001").status == "SUCCESS"
    assert store.result("002").error == "boom" and store.result("003").error == "boom"
    # one table (a retry-exhausted activity): a loaded one keeps its result too
    one = activity("record_failure")({**reference(planned, 0, 0), "error": "late failure"})
    assert one["failed"] == 0 and store.result("001").status == "SUCCESS"


def test_work_dir_defaults_to_the_temp_dir(monkeypatch):
    import tempfile

    from ingest.app.environment import settings

    monkeypatch.delenv("INGEST_WORK_DIR")
    assert str(settings().work_dir).startswith(tempfile.gettempdir())
    monkeypatch.setenv("INGEST_WORK_DIR", "/home/site/wwwroot/work")
    assert not str(settings().work_dir).startswith("/home/site/wwwroot")


@pytest.mark.postgres
@pytest.mark.azurite
def test_whole_run_through_replay_with_real_activities(pg, azure_lake, monkeypatch, tmp_path):
    """The extension's part played by DurableSim, every activity executed for real (dlt
    loads from PostgreSQL into Azurite), two batches."""
    from tests.durable_harness import ActivityFailure, DurableSim

    for name in ("a", "b", "c"):
        pg.execute(f"CREATE TABLE {name} (id int primary key)")
        pg.execute(f"INSERT INTO {name} SELECT generate_series(1, 5)")
    pg.use_as(monkeypatch, "pg_src")
    rows = [job_row(f"00{i}", n, schema_name=pg.name) for i, n in enumerate("abc", 1)]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "e.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", azure_lake)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    monkeypatch.setenv("INGEST_BATCH_SIZE", "2")

    def run_activity(call):
        try:
            return activity(call.name)(call.input)
        except Exception as exc:
            raise ActivityFailure(f"{type(exc).__name__}: {exc}") from exc

    handles = {"ingest_run": orchestrator_handle(), "ingest_batch": batch_handle()}
    sim = DurableSim(handles, run_activity)
    sim.start("ingest_run", "run-e2e", {"run_id": "run-e2e", "trigger": "http"})
    sim.run()
    output = sim.hosts["run-e2e"].state["output"]
    assert output["jobs_succeeded"] == 3 and output["rows_loaded"] == 15
    assert output["batches"] == 2 and sim.max_tables_in_flight == 2
    for table in "abc":
        assert read_lake_table(azure_lake, "pg_src", table).num_rows == 5


# ------------------------------------------------------------------------------ HTTP


def test_start_run_returns_202_with_status_urls(config):
    durable = FakeDurable()
    req = http_request(
        "POST",
        "https://app.example/api/runs",
        json.dumps({"jobs": ["001"], "full_refresh": True}).encode(),
    )
    response = run(starter("start_run")(req, client=durable.client()))
    assert response.status_code == 202
    body = body_of(response)
    [(name, instance_id, payload)] = durable.started
    assert name == "ingest_run" and instance_id == MANUAL_INSTANCE == body["instance_id"]
    run_id = payload["run_id"]
    assert run_id.startswith("run-") and body["run_id"] == run_id
    assert payload == {
        "jobs": ["001"],
        "sources": [],
        "full_refresh": True,
        "run_id": run_id,
        "trigger": "http",
    }
    assert body["runStatusUri"] == f"https://app.example/api/runs/{run_id}"
    assert body["statusQueryGetUri"].startswith(
        f"https://app.example/runtime/webhooks/durabletask/instances/{MANUAL_INSTANCE}"
    )
    assert response.headers["Location"] == body["statusQueryGetUri"]


@pytest.mark.parametrize("active_status", ["Running", "Pending", "Suspended"])
def test_start_run_refuses_while_a_run_is_active(config, active_status):
    durable = FakeDurable()
    durable.add("nightly-2026-05-01", active_status)
    durable.add("run-old", "Completed")
    durable.add("other-orchestration", "Running", name="something_else")
    response = run(
        starter("start_run")(http_request("POST", "https://a/api/runs"), client=durable.client())
    )
    assert response.status_code == 409
    assert body_of(response)["active_run_id"] == "nightly-2026-05-01"
    assert durable.started == []
    assert any("runtimeStatus=Pending,Running,Suspended" in q for q in durable.queries)
    durable.set_status("nightly-2026-05-01", "Completed")
    response = run(
        starter("start_run")(http_request("POST", "https://a/api/runs"), client=durable.client())
    )
    assert response.status_code == 202 and len(durable.started) == 1
    # the on-demand run now holds the slot: the next request is refused, naming that run
    [(_, _, first)] = durable.started
    response = run(
        starter("start_run")(http_request("POST", "https://a/api/runs"), client=durable.client())
    )
    assert response.status_code == 409
    assert body_of(response)["active_run_id"] == first["run_id"]
    assert body_of(response)["active_instance_id"] == MANUAL_INSTANCE


def test_start_run_refuses_before_planning(config, monkeypatch):
    """The one-run-at-a-time check comes before any planning."""
    import ingest.app.http_api as http_api

    def plan_request(*args, **kwargs):
        raise AssertionError("planned while another run was active")

    monkeypatch.setattr(http_api, "plan_request", plan_request)
    durable = FakeDurable()
    durable.add("nightly-2026-05-01", "Running")
    response = run(
        starter("start_run")(http_request("POST", "https://a/api/runs"), client=durable.client())
    )
    assert response.status_code == 409


def post_twice_at_once(durable: FakeDurable) -> list[Any]:
    async def both():
        start = starter("start_run")
        return await asyncio.gather(
            start(
                http_request("POST", "https://a/api/runs", b'{"jobs": ["001"]}'),
                client=durable.client(),
            ),
            start(
                http_request("POST", "https://a/api/runs", b'{"jobs": ["002"]}'),
                client=durable.client(),
            ),
        )

    return run(both())


def test_two_requests_at_once_start_one_run(config):
    """Both requests pass the quick check (nothing is active yet) and both ask Durable to start
    the on-demand instance. The stand-in answers as the Durable extension documents: the second
    start of an instance id that is Pending/Running gets 409 Conflict
    (OrchestrationAlreadyExistsException; overridableExistingInstanceStates = NonRunningStates)."""
    durable = FakeDurable(interleave=True)
    responses = post_twice_at_once(durable)
    checks = [i for i, q in enumerate(durable.queries) if "runtimeStatus=" in q]
    starts = [i for i, q in enumerate(durable.queries) if "/orchestrators/" in q]
    assert len(checks) == 2 and len(starts) == 2 and max(checks) < min(starts)  # a real race
    assert sorted(r.status_code for r in responses) == [202, 409]
    [(_, instance_id, winner)] = durable.started
    assert instance_id == MANUAL_INSTANCE and len(durable.refused) == 1
    accepted = next(r for r in responses if r.status_code == 202)
    refused = next(r for r in responses if r.status_code == 409)
    assert body_of(accepted)["run_id"] == winner["run_id"]
    assert body_of(refused)["active_run_id"] == winner["run_id"]


def test_racing_starts_that_durable_both_accepts_still_start_one_run(config):
    """Microsoft documents for the singleton pattern that two starts racing within
    milliseconds may both be accepted while only one instance runs. The stand-in models that
    (a start of a still-Pending instance is accepted, the first input stays): the starter reads
    back which run holds the instance and answers 409 to the other request."""
    durable = FakeDurable(interleave=True, racing_starts_accepted=True)
    responses = post_twice_at_once(durable)
    assert len(durable.started) == 1 and len(durable.accepted_not_started) == 1
    assert sorted(r.status_code for r in responses) == [202, 409]
    accepted = next(r for r in responses if r.status_code == 202)
    assert body_of(accepted)["run_id"] == durable.started[0][2]["run_id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body: must be a JSON object, got list"),
        (b'{"jobs": "001"}', "'jobs': must be a list of strings, got '001'"),
        (b'{"jobs": [1]}', "'jobs[0]': must be a string, got int"),
        (b'{"sources": [""]}', "'sources': '' is not a source name"),
        (b'{"full_refresh": "yes"}', "'full_refresh': must be true or false, got 'yes'"),
        (b'{"job": ["001"]}', "'job': unknown key; allowed: 'jobs', 'sources', 'full_refresh'"),
        (b'{"jobs": [], "full_refresh": true}', "'jobs': an empty selection is not allowed"),
        (b'{"jobs": null}', "'jobs': an empty selection is not allowed"),
        (b'{"sources": []}', "'sources': an empty selection is not allowed"),
        (b"[" * 5000 + b"]" * 5000, "body is not valid JSON: recursion limit exceeded"),
        (b'{"jobs": [' + b"9" * 5000 + b"]}", "body is not valid JSON: number out of range"),
        (b'{"jobs": ["001", "999"]}', "unknown job id(s): 999; known: 001, 002"),
        (b'{"sources": ["nope"]}', "unknown source(s): nope; known: pg_other, pg_src"),
        (b'{"jobs": ["005"]}', "no enabled job matches the request"),
        (b"\xff\xfe", "body is not UTF-8 text"),
    ],
)
def test_start_run_rejects_bad_bodies_with_400(config, body, message):
    durable = FakeDurable()
    response = run(
        starter("start_run")(
            http_request("POST", "https://a/api/runs", body), client=durable.client()
        )
    )
    assert response.status_code == 400
    assert message in body_of(response)["error"]
    assert durable.started == []


def test_start_run_with_a_broken_config_is_a_server_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.csv"
    bad.write_text("job_id,enabled\n001,Y\n")
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(bad))
    durable = FakeDurable()
    response = run(
        starter("start_run")(http_request("POST", "https://a/api/runs"), client=durable.client())
    )
    assert response.status_code == 500
    assert any("source_type" in p for p in body_of(response)["problems"])
    assert durable.started == []


def get_run_call(durable: FakeDurable, run_id: str, **params: str):
    import azure.functions as func

    req = func.HttpRequest(
        "GET",
        f"https://a/api/runs/{run_id}",
        body=b"",
        route_params={"id": run_id},
        params=params,
    )
    return run(starter("get_run")(req, client=durable.client()))


def stored_run(lake: str, run_id: str, tables: int, done: int) -> list[dict[str, Any]]:
    """A run store with a plan of `tables` tables and results for the first `done`."""
    from ingest.app.runstore import RunStore

    tasks = [
        {
            "run_id": run_id,
            "job": {**job_row(f"{i:03d}", f"t{i}"), "job_id": f"{i:03d}"},
            "destination": lake,
        }
        for i in range(1, tables + 1)
    ]
    store = RunStore(lake, run_id)
    store.write_plan(Plan(run_id, lake, None, tuple(Task.from_dict(t) for t in tasks)), 25)
    for task in tasks[:done]:
        status = "FAILED" if task["job"]["job_id"] == "003" else "SUCCESS"
        store.write_result(JobResult.from_dict(fake_result(task, status=status)))
    return tasks


def test_get_run_adds_up_progress_and_pages_the_tables(config):
    from ingest.app.environment import settings

    lake = settings().destination
    stored_run(lake, "nightly-2026-05-01", 60, 38)
    durable = FakeDurable()
    durable.add(
        "nightly-2026-05-01",
        "Running",
        customStatus={
            "run_id": "nightly-2026-05-01",
            "phase": "loading",
            "total": 60,
            "done": 25,
            "failed": 1,
            "batches": 3,
            "batches_done": 1,
            "batches_running": [1, 2],
        },
    )
    for batch, done, failed in ((1, 10, 0), (2, 3, 0)):
        durable.add(
            f"nightly-2026-05-01:batch-000{batch}",
            "Running",
            name="ingest_batch",
            customStatus={
                "batch": batch,
                "total": 25,
                "done": done,
                "failed": failed,
                "running": 4,
            },
        )
    body = body_of(get_run_call(durable, "nightly-2026-05-01", page="2", page_size="10"))
    assert body["status"] == "Running" and body["source"] == "durable"
    assert body["progress"] == {
        "run_id": "nightly-2026-05-01",
        "phase": "loading",
        "total": 60,
        "done": 38,
        "failed": 1,
        "running": 8,
        "batches": 3,
        "batches_done": 1,
    }
    assert [t["job_id"] for t in body["tables"]] == [f"{i:03d}" for i in range(11, 21)]
    assert body["tables_page"] == {
        "page": 2,
        "page_size": 10,
        "tables_reported": 38,
        "pages": 4,
        "tables_planned": 60,
        "source": "run store",
    }
    first = body_of(get_run_call(durable, "nightly-2026-05-01"))["tables"]
    assert len(first) == 38 and first[2]["status"] == "FAILED"
    # the run store holds whole results (JobResult's JSON): a table shows TABLE_FIELDS
    assert set(first[0]) == {
        "job_id",
        "source_name",
        "table_name",
        "load_type",
        "status",
        "rows_loaded",
        "files_written",
        "duration_s",
        "error",
    }


def test_get_run_of_an_on_demand_run_and_finished_runs(config):
    durable = FakeDurable()
    durable.add(MANUAL_INSTANCE, "Running", input=json.dumps({"run_id": "run-x"}))
    durable.add(
        "nightly-2026-05-02",
        "Completed",
        output={"jobs_total": 1, "jobs_failed": 0, "rows_loaded": 3, "batches": 1},
    )
    durable.add("nightly-2026-05-03", "Failed", output="run could not be planned: bad config")
    running = body_of(get_run_call(durable, "run-x"))
    assert running["status"] == "Running" and running["instance_id"] == MANUAL_INSTANCE
    done = body_of(get_run_call(durable, "nightly-2026-05-02"))
    assert done["status"] == "Completed"
    assert done["summary"] == {"jobs_total": 1, "jobs_failed": 0, "rows_loaded": 3, "batches": 1}
    failed = body_of(get_run_call(durable, "nightly-2026-05-03"))
    assert failed["status"] == "Failed" and "bad config" in failed["error"]
    # a run id the on-demand instance does not hold (it holds run-x) is not mixed up with it
    missing = get_run_call(durable, "run-y")
    assert missing.status_code == 404 and "run-y" in body_of(missing)["error"]
    assert get_run_call(durable, "bad id!").status_code == 400
    bad_page = get_run_call(durable, "run-x", page="0")
    assert bad_page.status_code == 400 and "'page' must be at least 1" in body_of(bad_page)["error"]
    too_big = get_run_call(durable, "run-x", page_size="5000")
    assert too_big.status_code == 400 and "between 1 and 1000" in body_of(too_big)["error"]


def test_get_run_falls_back_to_the_audit_when_durable_forgot(config, monkeypatch, tmp_path):
    from tests.fixtures.audit import write_audit_json

    lake = (tmp_path / "lake").as_uri()
    monkeypatch.setenv("INGEST_DESTINATION", lake)
    results = [
        {
            "run_id": "run-purged",
            "job_id": f"{i:03d}",
            "source_type": "postgresql",
            "source_name": "pg_src",
            "table_name": f"t{i}",
            "load_type": "FULL",
            "status": "SUCCESS",
            "rows_loaded": 7,
        }
        for i in range(1, 6)
    ]
    write_audit_json({"run_id": "run-purged", "destination": lake, "results": results})
    body = body_of(get_run_call(FakeDurable(), "run-purged", page_size="2", page="3"))
    assert body["source"] == "audit" and body["summary"]["rows_loaded"] == 35
    assert [r["job_id"] for r in body["tables"]] == ["005"]
    assert body["tables_page"]["pages"] == 3 and body["tables_page"]["source"] == "audit"


def test_get_run_of_an_earlier_on_demand_run(config):
    """The on-demand instance now holds a later run: the earlier one is answered from its
    audit rows (summary) and its run store (tables); a run store without audit is Unknown."""
    from ingest.app.environment import settings
    from ingest.app.runstore import RunStore
    from tests.fixtures.audit import write_audit_json

    lake = settings().destination
    tasks = stored_run(lake, "run-old", 3, 3)
    store = RunStore(lake, "run-old")
    results = [r.to_dict() for r in store.results(t["job"]["job_id"] for t in tasks).values()]
    write_audit_json({"run_id": "run-old", "destination": lake, "results": results})
    stored_run(lake, "run-crashed", 4, 1)
    durable = FakeDurable()
    durable.add(MANUAL_INSTANCE, "Running", input=json.dumps({"run_id": "run-new"}))
    old = body_of(get_run_call(durable, "run-old"))
    assert (old["status"], old["source"]) == ("Completed", "audit")
    assert old["summary"]["jobs_total"] == 3 and old["summary"]["jobs_failed"] == 1
    assert [t["job_id"] for t in old["tables"]] == ["001", "002", "003"]
    assert old["tables_page"]["source"] == "run store"
    crashed = body_of(get_run_call(durable, "run-crashed"))
    assert (crashed["status"], crashed["source"]) == ("Unknown", "run store")
    assert crashed["tables_page"]["tables_reported"] == 1
    assert crashed["tables_page"]["tables_planned"] == 4


def test_list_jobs_shows_the_validated_jobs_and_the_next_run(tmp_path, monkeypatch):
    rows = [
        job_row("001", "t1"),
        job_row("002", "t2", enabled="N"),
        job_row("003", "t3", schedule="WEEKLY:MON"),
        job_row("004", "t4", schedule="WEEKLY:TUE"),
    ]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "j.csv", rows)))
    response = activity("list_jobs")(http_request("GET", "https://a/api/jobs"))
    assert response.status_code == 200
    body = body_of(response)
    assert [j["job_id"] for j in body["jobs"]] == ["001", "002", "003", "004"]
    assert body["jobs_enabled"] == 3
    nxt = body["next_scheduled_run"]
    assert nxt["new_york"][11:16] in ("02:00", "03:00")  # (the live clock decides the day)
    import datetime as dt

    from ingest.app.http_api import jobs_body

    # fixed clocks: which jobs the next night runs follows from the config alone
    for now, night, jobs in (
        (dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.UTC), "2026-06-01", ["001", "003"]),  # Mon
        (dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC), "2026-06-02", ["001", "004"]),  # Tue
        (dt.datetime(2026, 6, 2, 7, 0, tzinfo=dt.UTC), "2026-06-03", ["001"]),  # Wed
    ):
        following = jobs_body(now=now)["next_scheduled_run"]
        assert following["instance_id"] == f"nightly-{night}"
        assert following["jobs"] == jobs


def test_list_jobs_reports_config_problems(tmp_path, monkeypatch):
    bad = write_config(tmp_path / "bad.csv", [job_row("001", "t1", load_type="SOMETIMES")])
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(bad))
    response = activity("list_jobs")(http_request("GET", "https://a/api/jobs"))
    assert response.status_code == 500
    assert any("load_type" in p for p in body_of(response)["problems"])


# ------------------------------------------------------------------------------ GET /api/runs/{id}/report


def report_call(run_id: str):
    req = http_request("GET", f"https://a/api/runs/{run_id}/report", route_params={"id": run_id})
    return activity("get_run_report")(req)


@pytest.fixture
def report_lake(tmp_path, monkeypatch):
    """A lake with three nights of audit and the last run's stored report; files that no
    report id may reach sit next to and above the reports folder."""
    from ingest.reports import report_files, run_report
    from tests.reports.audit_factory import tables, write_nights

    lake = tmp_path / "lake"
    lake.mkdir()
    monkeypatch.setenv("INGEST_DESTINATION", lake.as_uri())
    run_ids = write_nights(lake.as_uri(), run_report.window(3), tables(4), seed=2)
    report_files.write_report(lake.as_uri(), run_ids[-1])
    (lake / "metadata" / "secret.html").write_text("SECRET-NEXT-TO-REPORTS")
    (lake / "secret.html").write_text("SECRET-AT-LAKE-ROOT")
    (tmp_path / "secret.html").write_text("SECRET-OUTSIDE-THE-LAKE")
    return lake, run_ids


def test_get_run_report_serves_the_stored_report(report_lake):
    lake, run_ids = report_lake
    response = report_call(run_ids[-1])
    assert response.status_code == 200
    assert response.mimetype == "text/html" and response.charset == "utf-8"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    stored = (lake / "metadata" / "reports" / f"{run_ids[-1]}.html").read_bytes()
    assert response.get_body() == stored and run_ids[-1].encode() in stored
    latest = report_call("latest")
    assert latest.status_code == 200 and latest.get_body() == stored
    # a run from before reports existed: built from the audit, stored, latest left alone
    older = report_call(run_ids[0])
    assert older.status_code == 200 and f"run {run_ids[0]}".encode() in older.get_body()
    assert (lake / "metadata" / "reports" / f"{run_ids[0]}.html").exists()
    assert (lake / "metadata" / "reports" / "latest.html").read_bytes() == stored


def test_get_run_report_of_an_unknown_run_is_404(report_lake):
    response = report_call("nightly-1999-01-01")
    assert response.status_code == 404
    assert "has no report" in body_of(response)["error"]


@pytest.mark.parametrize(
    "run_id",
    [
        "..",
        "../secret",
        "..%2fsecret",
        "%2e%2e",
        "%2e%2e%2fsecret",
        "../../secret",
        "reports/../../secret",
        "a/b",
        "/etc/passwd",
        str(REPO / "README"),
        "..\\secret",
        "a\\b",
        "secret\x00",
        "latest\x00.html",
        "x" * 129,
        "x" * 5000,
        "ｓｅｃｒｅｔ",
        "séc",
        "\u202esecret",
        "",
        " secret",
    ],
    ids=repr,
)
def test_get_run_report_reaches_nothing_outside_the_reports_folder(report_lake, run_id):
    response = report_call(run_id)
    assert response.status_code in (400, 404), response.status_code
    body = response.get_body()
    assert b"SECRET" not in body and b"<html" not in body
    assert response.mimetype == "application/json"


def test_no_run_id_reaches_a_file_outside_the_reports_folder(report_lake):
    """Whatever id a caller sends, only files directly in metadata/reports/ can be served:
    every id of the run-id alphabet that names a secret file gets no secret."""
    for run_id in ("secret", "metadata", "...", "a..b", "..a", "secret.html", "latest.html"):
        response = report_call(run_id)
        assert b"SECRET" not in response.get_body(), run_id


# ------------------------------------------------------------------------------ project files


def test_host_json_and_local_settings_sample():
    from ingest.settings import CATALOGUE

    host = json.loads((REPO / "host.json").read_text())
    assert host["version"] == "2.0" and host["functionTimeout"] == "02:00:00"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    durable = host["extensions"]["durableTask"]
    assert durable["hubName"] and durable["maxConcurrentActivityFunctions"] >= 1
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    assert sample["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert sample["FUNCTIONS_WORKER_RUNTIME"] == "python"
    missing = [s.name for s in CATALOGUE if s.name.startswith("INGEST_") and s.name not in sample]
    assert missing == []
    for spec in CATALOGUE:
        if spec.name.startswith("INGEST_") and spec.default is not None:
            assert sample[spec.name] == spec.default, spec.name
    ignored = (REPO / ".funcignore").read_text().split()
    for entry in (
        ".venv",
        "tests",
        "infra",
        "node_modules",
        "lake",
        ".git*",
        "local.settings.json",
    ):
        assert entry in ignored


def test_activity_concurrency_fits_the_instance_memory():
    """host.json's activities per instance and the Bicep instance memory follow the sizing rule
    of docs/FUNCTIONS.md with the numbers measured by bench/activity_memory.py."""
    import re

    doc = (REPO / "docs" / "FUNCTIONS.md").read_text()
    numbers = dict(re.findall(r"(\w+)=([\d.]+)", doc.split("<!-- sizing:", 1)[1].split("-->")[0]))
    base, per, host_mb, share = (
        float(numbers[k]) for k in ("base_mb", "per_activity_mb", "host_mb", "max_share")
    )
    durable = json.loads((REPO / "host.json").read_text())["extensions"]["durableTask"]
    activities = durable["maxConcurrentActivityFunctions"]
    bicep = (REPO / "infra" / "main.bicep").read_text()
    memory = int(re.search(r"param instanceMemoryMB int = (\d+)", bicep).group(1))

    def fits(n: int, mb: int) -> bool:
        return base + n * per + host_mb <= share * mb

    assert fits(activities, memory)
    assert not fits(activities + 1, memory)  # the largest count that fits: no slack wasted
    assert f"`maxConcurrentActivityFunctions` {activities}" in doc
    assert f"{activities} activities per instance on {memory:,} MB instances" in doc


def test_functions_doc_lists_every_setting_and_function():
    from ingest.settings import CATALOGUE

    doc = (REPO / "docs" / "FUNCTIONS.md").read_text()
    assert [s.name for s in CATALOGUE if f"`{s.name}`" not in doc] == []
    names = list(indexed())
    assert [n for n in names if f"`{n}`" not in doc] == []
    for needle in (
        "func start",
        "func azure functionapp publish",
        "AzureWebJobsStorage__credential",
        "x-functions-key",
        "409",
        "nightly-2026-11-27",
    ):
        assert needle in doc


# ------------------------------------------------------------------------------ backfill over HTTP


@pytest.fixture
def incremental_config(tmp_path, monkeypatch):
    rows = [
        job_row("001", "t1"),
        job_row("007", "events", load_type="INCREMENTAL", watermark_column="updated_at"),
    ]
    path = write_config(tmp_path / "jobs.csv", rows)
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(path))
    monkeypatch.setenv("INGEST_DESTINATION", (tmp_path / "lake").as_uri())
    return path


def test_start_run_accepts_a_backfill_and_plan_run_plans_it(incremental_config):
    durable = FakeDurable()
    body = b'{"backfill": {"job": "007", "from": "2024-01-01", "to": "2024-02-01"}}'
    response = run(
        starter("start_run")(
            http_request("POST", "https://a/api/runs", body), client=durable.client()
        )
    )
    assert response.status_code == 202, body_of(response)
    [(_, instance_id, payload)] = durable.started
    run_id = body_of(response)["run_id"]
    assert instance_id == MANUAL_INSTANCE
    assert payload == {
        "backfill": {"job": "007", "from": "2024-01-01", "to": "2024-02-01"},
        "run_id": run_id,
        "trigger": "http",
    }
    from ingest.app.runstore import RunStore

    planned = activity("plan_run")(payload)
    [task] = RunStore(planned["destination"], run_id).tasks()
    assert task.job.job_id == "007" and task.run_id == run_id
    assert task.backfill == Backfill("2024-01-01", "2024-02-01")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"backfill": {"job": "001", "from": "2024-01-01"}}', "001"),
        (b'{"backfill": {"job": "999", "from": "1"}}', "unknown job id: 999"),
        (b'{"backfill": {"job": "007"}}', "'backfill.from': is required"),
        (
            b'{"backfill": {"job": "007", "from": "1", "until": "2"}}',
            "'backfill.until': unknown key; allowed: 'job', 'from', 'to'",
        ),
        (b'{"backfill": ["007"]}', "'backfill': must be a JSON object"),
        (b'{"backfill": {"job": "007", "from": "1"}, "jobs": ["001"]}', "cannot be combined"),
        (b'{"backfill": {"job": "007", "from": true}}', "'from' must be a watermark"),
        # the ranges: refused before anything is planned
        (b'{"backfill": {"job": "007", "from": "NaN"}}', "'from' 'NaN' is not a watermark"),
        (b'{"backfill": {"job": "007", "from": "yesterday"}}', "is not a watermark"),
        (
            b'{"backfill": {"job": "007", "from": "20240201", "to": "2024-01-01"}}',
            "'from' '20240201' is a number and 'to' '2024-01-01' is a date/time",
        ),
        (
            b'{"backfill": {"job": "007", "from": "2024-02-01", "to": "2024-01-01"}}',
            "backfill range is empty",
        ),
        (b'{"backfill": {"job": "007", "from": "' + b"9" * 5000 + b'"}}', "(5,000 characters)"),
    ],
)
def test_bad_backfill_bodies_are_400(incremental_config, body, message):
    durable = FakeDurable()
    response = run(
        starter("start_run")(
            http_request("POST", "https://a/api/runs", body), client=durable.client()
        )
    )
    assert response.status_code == 400, body_of(response)
    assert message in body_of(response)["error"]
    assert durable.started == []
