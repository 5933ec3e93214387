"""The function app, driven as Microsoft documents it (no Functions host here):
activities via `.build().get_user_function()`, starters via `.client_function` with a real
DurableOrchestrationClient over an in-memory management API, the orchestrator through the
Durable SDK's real replay engine fed with history (tests/durable_harness.py)."""

from __future__ import annotations

import asyncio
import csv
import functools
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import function_app
from tests.conftest import read_lake_table
from tests.durable_harness import FakeDurable, NonDeterminism, ReplayHost

REPO = Path(__file__).resolve().parents[2]
CONFIG_COLUMNS = (
    "job_id,enabled,source_type,source_name,schema_name,table_name,load_type,"
    "watermark_column,primary_key,initial_watermark,schedule"
).split(",")


# ------------------------------------------------------------------------------ helpers


def write_config(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CONFIG_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in CONFIG_COLUMNS})
    return path


def job_row(job_id: str, table: str, source: str = "pg_src", **extra: str) -> dict[str, str]:
    return {
        "job_id": job_id,
        "enabled": "Y",
        "source_type": "postgresql",
        "source_name": source,
        "schema_name": "public",
        "table_name": table,
        "load_type": "FULL",
        **extra,
    }


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


def activity(name: str):
    return getattr(function_app, name).build().get_user_function()


def starter(name: str):
    return getattr(function_app, name).build().get_user_function().client_function


def orchestrator_handle():
    return function_app.ingest_run.build().get_user_function()


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


def fake_result(task: dict[str, Any], status: str = "SUCCESS", rows: int = 10) -> dict[str, Any]:
    job = task["job"]
    return {
        "run_id": task["run_id"],
        "job_id": job["job_id"],
        "source_type": job["source_type"],
        "source_name": job["source_name"],
        "table_name": job["table_name"],
        "load_type": job["load_type"],
        "status": status,
        "rows_loaded": rows if status == "SUCCESS" else 0,
        "files_written": 1 if status == "SUCCESS" else 0,
        "error": "" if status == "SUCCESS" else "table is missing",
        "retriable": False,
    }


# ------------------------------------------------------------------------------ indexing


def test_functions_are_indexed_with_their_triggers():
    functions = indexed()
    assert set(functions) == {
        "start_run",
        "get_run",
        "list_jobs",
        "nightly_timer",
        "ingest_run",
        "plan_run",
        "ingest_table",
        "write_audit",
    }

    def trigger(name):
        bindings = json.loads(functions[name].get_function_json())["bindings"]
        triggers = [b for b in bindings if b["type"].endswith("Trigger")]
        assert len(triggers) == 1, bindings
        return triggers[0], bindings

    for name, route, method in (
        ("start_run", "runs", "POST"),
        ("get_run", "runs/{id}", "GET"),
        ("list_jobs", "jobs", "GET"),
    ):
        http, bindings = trigger(name)
        assert http["type"] == "httpTrigger"
        assert http["route"] == route and http["methods"] == [method]
        assert http["authLevel"] == "FUNCTION"
        has_client = any(b["type"] == "durableClient" for b in bindings)
        assert has_client == (name != "list_jobs")
    timer, bindings = trigger("nightly_timer")
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 0 6,7 * * *"
    assert timer["runOnStartup"] is False
    assert any(b["type"] == "durableClient" for b in bindings)
    assert trigger("ingest_run")[0]["type"] == "orchestrationTrigger"
    for name in ("plan_run", "ingest_table", "write_audit"):
        assert trigger(name)[0]["type"] == "activityTrigger"


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


def test_one_ingest_table_per_enabled_job_with_retry_options(config, monkeypatch):
    monkeypatch.setenv("INGEST_RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("INGEST_RETRY_FIRST_INTERVAL_S", "45")
    monkeypatch.setenv("INGEST_RETRY_BACKOFF", "1.5")
    request = {"run_id": "run-a", "trigger": "http"}
    host = started_host(request)
    [plan_id] = host.pending("plan_run")
    assert host.input_of(plan_id) == request
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    tables = host.pending("ingest_table")
    jobs = sorted(host.input_of(i)["job"]["job_id"] for i in tables)
    assert jobs == ["001", "002", "003", "004", "006"]  # 005 is disabled
    for task_id in tables:
        assert host.input_of(task_id)["run_id"] == "run-a"
        action = host.open[task_id]["action"]
        assert action["actionType"] == 1  # CallActivityWithRetry
        assert action["retryOptions"] == {
            "firstRetryIntervalInMilliseconds": 45000,
            "maxNumberOfAttempts": 4,
            "backoffCoefficient": 1.5,
        }
    assert host.custom_status == {
        "run_id": "run-a",
        "phase": "loading",
        "done": 0,
        "total": 5,
        "failed": 0,
        "running": 5,
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
    host = started_host({"run_id": "run-f", **request_filters})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    inputs = [host.input_of(i) for i in host.pending("ingest_table")]
    assert sorted(t["job"]["job_id"] for t in inputs) == expected
    assert {t["full_refresh"] for t in inputs} == {bool(request_filters.get("full_refresh"))}


def big_config(tmp_path, monkeypatch, count: int) -> None:
    rows = [job_row(f"{i:03d}", f"t{i}") for i in range(1, count + 1)]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "big.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", (tmp_path / "lake").as_uri())


@pytest.mark.parametrize("window", [1, 3, 8])
def test_sliding_window_never_exceeds_max_parallel(tmp_path, monkeypatch, window):
    big_config(tmp_path, monkeypatch, 20)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", str(window))
    host = started_host({"run_id": "run-w"})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    rng = random.Random(window)
    finished_order = []
    while host.pending("ingest_table"):
        in_flight = host.pending("ingest_table")
        remaining = 20 - len(finished_order) - len(in_flight)
        assert len(in_flight) == (window if remaining > 0 else len(in_flight))
        assert len(in_flight) <= window
        assert host.custom_status["running"] == len(in_flight)
        # out of order: any in-flight table may finish first; sometimes two in one episode
        chosen = rng.sample(in_flight, k=min(len(in_flight), rng.choice([1, 1, 2])))
        finished_order += [host.input_of(i)["job"]["job_id"] for i in chosen]
        host.complete(*[(i, fake_result(host.input_of(i))) for i in chosen])
        assert host.custom_status["done"] == len(finished_order)
    assert host.max_tables_in_flight == window
    assert finished_order != sorted(finished_order) or window == 1
    [audit_id] = host.pending("write_audit")
    audit_input = host.input_of(audit_id)
    # results in plan order whatever the completion order
    assert [r["job_id"] for r in audit_input["results"]] == [f"{i:03d}" for i in range(1, 21)]
    summary = {
        "jobs_total": 20,
        "jobs_succeeded": 20,
        "jobs_failed": 0,
        "jobs_skipped": 0,
        "rows_loaded": 200,
        "failed_jobs": [],
        "run_id": "run-w",
        "audit_path": "x",
        "audit_rows_added": 20,
    }
    state = host.complete((audit_id, summary))
    assert state["isDone"] is True
    assert state["output"]["jobs_total"] == 20 and len(state["output"]["tables"]) == 20
    assert host.custom_status["phase"] == "finished"


def test_a_failing_table_still_yields_a_complete_audited_run(tmp_path, monkeypatch):
    big_config(tmp_path, monkeypatch, 5)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    monkeypatch.setenv("INGEST_RETRY_MAX_ATTEMPTS", "3")
    host = started_host({"run_id": "run-x"})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    attempts = 0
    while host.pending("ingest_table") or host.timers:
        if host.timers:
            host.fire_timers()
            continue
        ids = host.pending("ingest_table")
        flaky = [i for i in ids if host.input_of(i)["job"]["job_id"] == "002"]
        if flaky:
            attempts += 1
            assert host.tables_in_flight() <= 2
            host.fail(
                flaky[0],
                "Activity function 'ingest_table' failed: RetriableTableError: "
                "job 002: source 'pg_src' unreachable",
                "Traceback (most recent call last)",
            )
        else:
            host.complete((ids[-1], fake_result(host.input_of(ids[-1]))))
    assert attempts == 3  # maxNumberOfAttempts, first try included
    assert host.max_tables_in_flight <= 2
    [audit_id] = host.pending("write_audit")
    results = host.input_of(audit_id)["results"]
    assert [r["job_id"] for r in results] == ["001", "002", "003", "004", "005"]
    failed = results[1]
    assert failed["status"] == "FAILED" and failed["run_id"] == "run-x"
    assert failed["error"] == "failed after retries: job 002: source 'pg_src' unreachable"
    assert "Traceback" not in failed["error"]
    assert [r["status"] for r in results].count("SUCCESS") == 4
    assert host.custom_status["failed"] == 1 and host.custom_status["done"] == 5
    state = host.complete((audit_id, activity("write_audit")(host.input_of(audit_id))))
    assert state["isDone"] and state["output"]["jobs_failed"] == 1
    assert state["output"]["failed_jobs"] == ["002"]


def test_non_retriable_failed_result_is_kept_as_returned(tmp_path, monkeypatch):
    big_config(tmp_path, monkeypatch, 2)
    host = started_host({"run_id": "run-n"})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    first, second = host.pending("ingest_table")
    host.complete(
        (first, fake_result(host.input_of(first), status="FAILED")),
        (second, fake_result(host.input_of(second))),
    )
    [audit_id] = host.pending("write_audit")
    results = host.input_of(audit_id)["results"]
    assert results[0]["status"] == "FAILED" and results[0]["error"] == "table is missing"
    assert host.custom_status["failed"] == 1


def test_replaying_the_same_history_gives_the_same_actions(tmp_path, monkeypatch):
    big_config(tmp_path, monkeypatch, 6)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    host = started_host({"run_id": "run-r"})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    a, b = host.pending("ingest_table")
    host.complete((b, fake_result(host.input_of(b))))
    host.fail(a, "Activity function 'ingest_table' failed: boom")
    first = host.raw_state
    again = [host.handle(host.context_json()) for _ in range(2)]
    assert again == [first, first]
    # a different history (another completion) gives other actions: the check can fail
    c = host.pending("ingest_table")[-1]
    host.complete((c, fake_result(host.input_of(c))))
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


def test_empty_plan_still_audits(tmp_path, monkeypatch):
    rows = [job_row("001", "t1", schedule="WEEKLY:TUE")]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "w.csv", rows)))
    host = started_host({"run_id": "nightly-2026-06-01", "scheduled_weekday": "MON"})
    [plan_id] = host.pending("plan_run")
    host.complete((plan_id, planned_output(host.input_of(plan_id))))
    [audit_id] = host.pending()
    assert host.open[audit_id]["name"] == "write_audit"
    assert host.input_of(audit_id)["results"] == []


# ------------------------------------------------------------------------------ activities


@pytest.mark.postgres
@pytest.mark.azurite
def test_ingest_table_and_write_audit_for_real(pg, azure_lake, monkeypatch, tmp_path):
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
    assert planned["settings"]["max_parallel"] == 8
    ok_task, missing_task = planned["plan"]["tasks"]
    result = activity("ingest_table")(ok_task)
    assert result["status"] == "SUCCESS" and result["rows_loaded"] == 30
    again = activity("ingest_table")(ok_task)  # at-least-once: no second load
    assert again["status"] == "SUCCESS" and again["load_id"] == result["load_id"]
    lake = read_lake_table(azure_lake, "pg_src", "customers")
    assert sorted(lake.column("id").to_pylist()) == list(range(1, 31))
    missing = activity("ingest_table")(missing_task)  # not retriable: returned, not raised
    assert missing["status"] == "FAILED" and missing["retriable"] is False
    run = {
        "run_id": "run-real",
        "destination": azure_lake,
        "results": [result, missing],
        "started_at": planned["started_at"],
    }
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


@pytest.mark.postgres
def test_ingest_table_raises_for_retriable_failures(pg, file_lake, monkeypatch, tmp_path):
    from ingest.app.activities import RetriableTableError

    monkeypatch.setenv("SOURCES__PG_DOWN__HOST", "127.0.0.1")
    monkeypatch.setenv("SOURCES__PG_DOWN__PORT", "1")  # nothing listens: connection refused
    monkeypatch.setenv("SOURCES__PG_DOWN__DATABASE", "test")
    monkeypatch.setenv("SOURCES__PG_DOWN__USERNAME", "postgres")
    rows = [job_row("001", "t", source="pg_down")]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "d.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", file_lake)
    [task] = activity("plan_run")({"run_id": "run-down"})["plan"]["tasks"]
    with pytest.raises(RetriableTableError, match="job 001"):
        activity("ingest_table")(task)


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
    """The host's part played by the harness, every activity executed for real."""
    for name in ("a", "b", "c"):
        pg.execute(f"CREATE TABLE {name} (id int primary key)")
        pg.execute(f"INSERT INTO {name} SELECT generate_series(1, 5)")
    pg.use_as(monkeypatch, "pg_src")
    rows = [job_row(f"00{i}", n, schema_name=pg.name) for i, n in enumerate("abc", 1)]
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(write_config(tmp_path / "e.csv", rows)))
    monkeypatch.setenv("INGEST_DESTINATION", azure_lake)
    monkeypatch.setenv("INGEST_MAX_PARALLEL", "2")
    host = started_host({"run_id": "run-e2e", "trigger": "http"}, instance_id="run-e2e")
    while not host.state.get("isDone"):
        pending = host.pending()
        assert pending, host.state
        task_id = pending[-1]
        name = host.open[task_id]["name"]
        host.complete((task_id, activity(name)(host.input_of(task_id))))
    output = host.state["output"]
    assert output["jobs_succeeded"] == 3 and output["rows_loaded"] == 15
    assert host.max_tables_in_flight == 2
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
    assert name == "ingest_run" and body["id"] == instance_id == payload["run_id"]
    assert instance_id.startswith("run-")
    assert payload == {
        "jobs": ["001"],
        "sources": [],
        "full_refresh": True,
        "run_id": instance_id,
        "trigger": "http",
    }
    assert body["statusQueryGetUri"].startswith(
        f"https://app.example/runtime/webhooks/durabletask/instances/{instance_id}"
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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body must be a JSON object, got list"),
        (b'{"jobs": "001"}', "'jobs' must be a list of strings, got str"),
        (b'{"jobs": [1]}', "'jobs' must hold non-empty strings only, got 1"),
        (b'{"sources": [""]}', "'sources' must hold non-empty strings only"),
        (b'{"full_refresh": "yes"}', "'full_refresh' must be true or false, got \"yes\""),
        (b'{"job": ["001"]}', "unknown key(s): job; allowed: 'jobs'"),
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


def test_get_run_reports_progress_and_results(config):
    durable = FakeDurable()
    durable.add(
        "run-1",
        "Running",
        customStatus={"phase": "loading", "done": 2, "total": 5, "failed": 0, "running": 3},
    )
    durable.add(
        "run-2",
        "Completed",
        output={
            "jobs_total": 1,
            "jobs_failed": 0,
            "tables": [{"job_id": "001", "status": "SUCCESS", "rows_loaded": 3}],
        },
    )
    durable.add("run-3", "Failed", output="run run-3 could not be planned: bad config")
    get = starter("get_run")

    def call(run_id):
        req = http_request("GET", f"https://a/api/runs/{run_id}", route_params={"id": run_id})
        return run(get(req, client=durable.client()))

    running = body_of(call("run-1"))
    assert running["status"] == "Running" and running["progress"]["done"] == 2
    done = body_of(call("run-2"))
    assert done["status"] == "Completed" and done["tables"][0]["rows_loaded"] == 3
    assert done["summary"] == {"jobs_total": 1, "jobs_failed": 0}
    failed = body_of(call("run-3"))
    assert failed["status"] == "Failed" and "bad config" in failed["error"]
    assert call("bad id!").status_code == 400
    missing = call("run-unknown")
    assert missing.status_code == 404 and "run-unknown" in body_of(missing)["error"]


def test_get_run_falls_back_to_the_audit_when_durable_forgot(config, monkeypatch, tmp_path):
    pytest.importorskip(
        "ingest.reports.history", reason="ingest/reports/history.py (run history) not merged yet"
    )
    from ingest.audit import write_audit

    lake = (tmp_path / "lake").as_uri()
    monkeypatch.setenv("INGEST_DESTINATION", lake)
    results = [
        {
            "run_id": "run-purged",
            "job_id": "001",
            "source_type": "postgresql",
            "source_name": "pg_src",
            "table_name": "t1",
            "load_type": "FULL",
            "status": "SUCCESS",
            "rows_loaded": 7,
        }
    ]
    write_audit({"run_id": "run-purged", "destination": lake, "results": results})
    req = http_request("GET", "https://a/api/runs/run-purged", route_params={"id": "run-purged"})
    response = run(starter("get_run")(req, client=FakeDurable().client()))
    assert response.status_code == 200
    body = body_of(response)
    assert body["source"] == "audit" and body["summary"]["rows_loaded"] == 7
    assert [r["job_id"] for r in body["tables"]] == ["001"]


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
    expected = (
        ["001"]
        + (["003"] if nxt["weekday"] == "MON" else [])
        + (["004"] if nxt["weekday"] == "TUE" else [])
    )
    assert nxt["jobs"] == expected
    assert nxt["new_york"][11:16] in ("02:00", "03:00")
    import datetime as dt

    from ingest.app.http_api import jobs_body

    monday = jobs_body(now=dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.UTC))  # Mon 01:00 EDT
    assert monday["next_scheduled_run"]["instance_id"] == "nightly-2026-06-01"
    assert monday["next_scheduled_run"]["jobs"] == ["001", "003"]


def test_list_jobs_reports_config_problems(tmp_path, monkeypatch):
    bad = write_config(tmp_path / "bad.csv", [job_row("001", "t1", load_type="SOMETIMES")])
    monkeypatch.setenv("INGEST_CONFIG_PATH", str(bad))
    response = activity("list_jobs")(http_request("GET", "https://a/api/jobs"))
    assert response.status_code == 500
    assert any("load_type" in p for p in body_of(response)["problems"])


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
    assert payload == {
        "backfill": {"job": "007", "from": "2024-01-01", "to": "2024-02-01"},
        "run_id": instance_id,
        "trigger": "http",
    }
    planned = activity("plan_run")(payload)["plan"]
    [task] = planned["tasks"]
    assert task["job"]["job_id"] == "007" and task["run_id"] == instance_id
    assert task["backfill"] == {"from": "2024-01-01", "to": "2024-02-01"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"backfill": {"job": "001", "from": "2024-01-01"}}', "001"),
        (b'{"backfill": {"job": "999", "from": "1"}}', "unknown job id: 999"),
        (b'{"backfill": {"job": "007"}}', "'backfill.from' is required"),
        (b'{"backfill": {"job": "007", "from": "1", "until": "2"}}', "unknown backfill key(s)"),
        (b'{"backfill": ["007"]}', "'backfill' must be an object"),
        (b'{"backfill": {"job": "007", "from": "1"}, "jobs": ["001"]}', "cannot be combined"),
        (b'{"backfill": {"job": "007", "from": true}}', "'backfill.from' must be a watermark"),
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
