"""Application Insights telemetry, checked against a local capture endpoint with the real
exporter (azure-monitor-opentelemetry), and the `history` reader/command.

`configure_azure_monitor` sets process-global providers, so every run with telemetry on happens
in a subprocess; the test process itself never turns telemetry on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from ingest import telemetry
from ingest.audit import read_audit
from ingest.cli import main
from ingest.lake.destination import Destination
from ingest.model.run import Run
from ingest.reports.history import failure_summary, recent, run_results, run_summaries
from tests.appinsights_capture import CaptureServer
from tests.conftest import read_lake_table, set_source_env
from tests.fixtures.audit import append_audit_json, write_audit_json
from tests.fixtures.sheet import TABLE_JOB, sheet_header

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = sheet_header(
    *TABLE_JOB,
    "watermark_column",
    "primary_key",
)

#: runs the CLI the way a deployment does: telemetry configured first, then the command
DRIVER = (
    "import sys\n"
    "from ingest import telemetry\n"
    "telemetry.configure()\n"
    "from ingest.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('otel-imported=%s\\n' % ('azure.monitor.opentelemetry' in sys.modules))\n"
    "sys.exit(code)\n"
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def capture():
    with CaptureServer() as server:
        yield server


@pytest.fixture
def jobs(pg, monkeypatch, tmp_path):
    """Two PostgreSQL tables that load (one incremental) and one source that is down, all
    with the same sentinel password (trust auth ignores it on the good source)."""
    pg.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
    pg.execute("INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 40) g")
    pg.execute("CREATE TABLE events (id int PRIMARY KEY, at timestamptz)")
    pg.execute(
        "INSERT INTO events SELECT g, timestamptz '2024-01-01' + (g || ' hours')::interval "
        "FROM generate_series(1, 30) g"
    )
    sentinel = f"S3ntinel-{uuid.uuid4().hex}"
    pg.use_as(monkeypatch, "tel_pg")
    set_source_env(monkeypatch, "tel_pg", password=sentinel)
    set_source_env(
        monkeypatch,
        "tel_down",
        host="127.0.0.1",
        port=closed_port(),
        database="test",
        username="postgres",
        password=sentinel,
    )
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        f"t1,Y,postgresql,tel_pg,{pg.name},customers,FULL,,id\n"
        f"t2,Y,postgresql,tel_pg,{pg.name},events,INCREMENTAL,at,id\n"
        f"t3,Y,postgresql,tel_down,{pg.name},customers,FULL,,id\n",
        encoding="utf-8",
    )
    return config, sentinel


def run_cli(args: list[str], connection_string: str | None, timeout: float = 240):
    env = dict(os.environ)
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    if connection_string:
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection_string
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc, time.monotonic() - started


def today_audit(lake: str) -> list[dict[str, str]]:
    return read_audit(Destination.from_url(lake), dt.datetime.now(dt.UTC).date())


# ------------------------------------------------------------------------------------------
# telemetry through the real exporter


def test_run_sends_events_metrics_exceptions_and_traces(jobs, file_lake, capture):
    config, sentinel = jobs
    run_id = f"tel-{uuid.uuid4().hex[:8]}"

    proc, _ = run_cli(
        ["run", "--config", str(config), "--destination", file_lake, "--run-id", run_id],
        capture.connection_string,
    )

    assert proc.returncode == 1, proc.stderr  # one job failed
    assert "otel-imported=True" in proc.stderr
    audit = {r["job_id"]: r for r in today_audit(file_lake)}
    assert {k: v["status"] for k, v in audit.items()} == {
        "t1": "SUCCESS",
        "t2": "SUCCESS",
        "t3": "FAILED",
    }
    landed = {
        "customers": read_lake_table(file_lake, "tel_pg", "customers").num_rows,
        "events": read_lake_table(file_lake, "tel_pg", "events").num_rows,
    }
    assert landed == {"customers": 40, "events": 30}

    # one IngestionTableCompleted per table, with the documented properties
    tables = {
        e["properties"]["job_id"]: e["properties"] for e in capture.events(telemetry.TABLE_EVENT)
    }
    assert set(tables) == {"t1", "t2", "t3"}
    for job_id, props in tables.items():
        assert set(telemetry.TABLE_EVENT_PROPERTIES) <= set(props), props
        row = audit[job_id]
        for name in (
            "run_id",
            "job_id",
            "source_type",
            "source_name",
            "table_name",
            "load_type",
            "status",
            "rows_loaded",
            "files_written",
            "duration_s",
            "load_id",
            "watermark_after",
            "error",
        ):
            assert props[name] == row[name], (job_id, name)
    assert tables["t1"]["rows_loaded"] == "40" and tables["t1"]["status"] == "SUCCESS"
    assert tables["t2"]["rows_loaded"] == "30"
    assert tables["t2"]["watermark_after"].startswith("2024-01-02T06:00:00")
    assert tables["t1"]["load_id"] and int(tables["t1"]["files_written"]) >= 1
    assert tables["t3"]["status"] == "FAILED" and tables["t3"]["rows_loaded"] == "0"
    assert "tel_down" in tables["t3"]["error"]
    assert all(p["run_id"] == run_id for p in tables.values())
    table_events = capture.events(telemetry.TABLE_EVENT)
    measured = {e["properties"]["job_id"]: e.get("measurements") or {} for e in table_events}
    assert measured["t1"]["rows_loaded"] == 40

    # one IngestionRunCompleted with the totals
    (run_event,) = capture.events(telemetry.RUN_EVENT)
    props = run_event["properties"]
    assert set(telemetry.RUN_EVENT_PROPERTIES) <= set(props)
    assert props["run_id"] == run_id and props["trigger"] == "cli"
    assert (props["jobs_total"], props["jobs_succeeded"], props["jobs_failed"]) == ("3", "2", "1")
    assert props["jobs_skipped"] == "0" and props["failed_jobs"] == "t3"
    assert props["rows_loaded"] == "70" and float(props["duration_s"]) > 0

    # metrics: the rows counted are the rows that landed, per table and status
    rows_by_table: dict[tuple[str, str], float] = defaultdict(float)
    for point, dims in capture.metric_points(telemetry.METRIC_ROWS):
        assert set(dims) >= {"source_name", "table_name", "status"}
        rows_by_table[(dims["source_name"], dims["table_name"])] += point["value"]
    assert rows_by_table[("tel_pg", "customers")] == landed["customers"]
    assert rows_by_table[("tel_pg", "events")] == landed["events"]
    assert rows_by_table[("tel_down", "customers")] == 0
    durations = {
        (d["source_name"], d["table_name"], d["status"]): p
        for p, d in capture.metric_points(telemetry.METRIC_DURATION)
    }
    assert set(durations) == {
        ("tel_pg", "customers", "SUCCESS"),
        ("tel_pg", "events", "SUCCESS"),
        ("tel_down", "customers", "FAILED"),
    }
    assert durations[("tel_pg", "customers", "SUCCESS")]["count"] == 1
    assert durations[("tel_pg", "customers", "SUCCESS")]["value"] == pytest.approx(
        float(audit["t1"]["duration_s"]), abs=0.01
    )

    # the failed job as an exception record carrying its job id
    (exception,) = capture.exceptions()
    assert exception["properties"]["job_id"] == "t3"
    assert exception["properties"]["run_id"] == run_id
    assert exception["exceptions"][0]["typeName"] == telemetry.JOB_EXCEPTION_TYPE
    assert "tel_down" in exception["exceptions"][0]["message"]

    # traces: the job start/finish lines carry run_id and job_id as custom dimensions
    traces = [m for m in capture.messages() if m["properties"].get("run_id") == run_id]
    by_job = defaultdict(list)
    for message in traces:
        by_job[message["properties"].get("job_id")].append(message["message"])
    assert any(m.startswith("job t1 started") for m in by_job["t1"])
    assert any(m.startswith("job t1 finished") for m in by_job["t1"])
    assert any(m.startswith("job t3 failed") for m in by_job["t3"])

    # nothing secret anywhere, nothing but the project's own telemetry
    assert sentinel not in capture.raw_text()
    assert sentinel not in proc.stdout + proc.stderr
    assert all(path.startswith("/v2.1/track") for path in capture.requests)
    names = {e["name"] for e in capture.snapshot()}
    assert "Microsoft.ApplicationInsights.RemoteDependency" not in names  # no auto-instrumenting


def test_telemetry_off_sends_nothing_and_run_succeeds(
    pg, monkeypatch, tmp_path, file_lake, capture
):
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pg.execute("INSERT INTO items SELECT generate_series(1, 5)")
    pg.use_as(monkeypatch, "off_pg")
    config = tmp_path / "jobs.csv"
    config.write_text(COLUMNS + f"\no1,Y,postgresql,off_pg,{pg.name},items,FULL,,id\n")

    proc, _ = run_cli(["run", "--config", str(config), "--destination", file_lake], None)

    assert proc.returncode == 0, proc.stderr
    assert "otel-imported=False" in proc.stderr  # not even imported
    assert [r["status"] for r in today_audit(file_lake)] == ["SUCCESS"]
    # the process has ended without importing OpenTelemetry: nothing can be in flight
    assert capture.requests == [] and capture.snapshot() == []


def test_telemetry_off_in_process_is_a_no_op(file_lake):
    assert telemetry.emit_run_telemetry(Run("r-off", file_lake)) is False
    assert not telemetry.is_enabled()


def test_endpoint_down_does_not_fail_the_run(pg, monkeypatch, tmp_path, file_lake):
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pg.execute("INSERT INTO items SELECT generate_series(1, 7)")
    pg.use_as(monkeypatch, "down_ai_pg")
    config = tmp_path / "jobs.csv"
    config.write_text(COLUMNS + f"\nd1,Y,postgresql,down_ai_pg,{pg.name},items,FULL,,id\n")
    dead = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint=http://127.0.0.1:{closed_port()}/"
    )

    proc, seconds = run_cli(["run", "--config", str(config), "--destination", file_lake], dead)

    assert proc.returncode == 0, proc.stderr
    assert "otel-imported=True" in proc.stderr
    rows = today_audit(file_lake)
    assert [(r["job_id"], r["status"], r["rows_loaded"]) for r in rows] == [("d1", "SUCCESS", "7")]
    assert seconds < 90, f"run took {seconds:.0f} s with the telemetry endpoint down"


def test_endpoint_that_never_answers_is_bounded(pg, monkeypatch, tmp_path, file_lake):
    """A black hole (accepts connections, never replies) holds the run up at most for the
    flush bound plus one network timeout at exit, never indefinitely."""
    pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pg.execute("INSERT INTO items SELECT generate_series(1, 3)")
    pg.use_as(monkeypatch, "hole_pg")
    config = tmp_path / "jobs.csv"
    config.write_text(COLUMNS + f"\nb1,Y,postgresql,hole_pg,{pg.name},items,FULL,,id\n")
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        conn = (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint=http://127.0.0.1:{hole.getsockname()[1]}/"
        )

        proc, seconds = run_cli(["run", "--config", str(config), "--destination", file_lake], conn)

    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in today_audit(file_lake)] == ["SUCCESS"]
    assert "kept for retry" in proc.stderr
    bound = telemetry.FLUSH_TIMEOUT_S + 2 * telemetry.READ_TIMEOUT_S + 30
    assert seconds < bound, f"{seconds:.0f} s with a telemetry endpoint that never answers"


def test_telemetry_failure_never_fails_the_audit(file_lake, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(telemetry, "emit_run_telemetry", broken)
    caplog.set_level(logging.WARNING)
    result = {
        "run_id": "r-broken",
        "job_id": "j1",
        "source_type": "postgresql",
        "source_name": "s",
        "table_name": "t",
        "load_type": "FULL",
        "status": "SUCCESS",
        "rows_loaded": 3,
    }

    summary = write_audit_json(
        {"run_id": "r-broken", "destination": file_lake, "results": [result]}
    )

    assert summary["audit_rows_added"] == 1 and summary["jobs_succeeded"] == 1
    assert [r["run_id"] for r in today_audit(file_lake)] == ["r-broken"]
    assert "not sent to Application Insights" in caplog.text


def test_event_properties_are_text_and_complete():
    result = {
        "run_id": "r",
        "job_id": "j",
        "source_type": "mysql",
        "source_name": "s",
        "table_name": "t",
        "load_type": "INCREMENTAL",
        "status": "SUCCESS",
        "rows_loaded": 12,
        "files_written": 1,
        "duration_s": 1.23456,
        "load_id": "1700000000.1",
        "watermark_after": None,
        "error": "",
        "watermark_before": "not sent",
    }
    props = telemetry.table_event_properties(result)
    assert list(props) == list(telemetry.TABLE_EVENT_PROPERTIES)
    assert props["duration_s"] == "1.235" and props["watermark_after"] == ""
    run = {"run_id": "r", "trigger": "schedule", "duration_s": 5}
    summary = {
        "jobs_total": 2,
        "jobs_succeeded": 1,
        "jobs_failed": 1,
        "jobs_skipped": 0,
        "rows_loaded": 12,
        "failed_jobs": ["j2"],
    }
    run_props = telemetry.run_event_properties(run, [result], summary)
    assert list(run_props) == list(telemetry.RUN_EVENT_PROPERTIES)
    assert run_props["trigger"] == "schedule" and run_props["failed_jobs"] == "j2"
    assert telemetry.run_event_properties({"run_id": "r"}, [result], summary)["trigger"] == "cli"
    timer = telemetry.run_event_properties({"run_id": "r", "trigger": "timer"}, [], summary)
    assert timer["trigger"] == "schedule"  # the function app's timer runs


def test_alert_rules_use_the_emitted_names():
    """infra/modules/alerts.bicep queries must name what the code emits."""
    bicep = (ROOT / "infra" / "modules" / "alerts.bicep").read_text(encoding="utf-8")
    assert f'name == "{telemetry.TABLE_EVENT}"' in bicep
    assert f'name == "{telemetry.RUN_EVENT}"' in bicep
    import re

    assert f'name == "{telemetry.CDC_SLOT_EVENT}"' in bicep
    used = set(re.findall(r"customDimensions\.(\w+)", bicep))
    assert used <= set(telemetry.TABLE_EVENT_PROPERTIES) | set(
        telemetry.RUN_EVENT_PROPERTIES
    ) | set(telemetry.CDC_SLOT_EVENT_PROPERTIES)


def test_monitoring_doc_uses_the_emitted_names():
    doc = (ROOT / "docs" / "MONITORING.md").read_text(encoding="utf-8")
    for name in (
        telemetry.TABLE_EVENT,
        telemetry.RUN_EVENT,
        telemetry.METRIC_ROWS,
        telemetry.METRIC_DURATION,
        telemetry.JOB_EXCEPTION_TYPE,
        *telemetry.TABLE_EVENT_PROPERTIES,
        *telemetry.RUN_EVENT_PROPERTIES,
    ):
        assert name in doc, name
    import re

    for prop in re.findall(r"customDimensions\.(\w+)|Properties\.(\w+)", doc):
        name = prop[0] or prop[1]
        assert name in (
            set(telemetry.TABLE_EVENT_PROPERTIES)
            | set(telemetry.RUN_EVENT_PROPERTIES)
            | set(telemetry.METRIC_DIMENSIONS)
        ), name


# ------------------------------------------------------------------------------------------
# history


@pytest.fixture
def two_runs(pg, monkeypatch, tmp_path, file_lake):
    """Run 1: both tables load. Run 2: `orders` was dropped and fails."""
    from ingest.commands.core import execute_run
    from ingest.settings import Settings

    pg.execute("CREATE TABLE customers (id int PRIMARY KEY)")
    pg.execute("INSERT INTO customers SELECT generate_series(1, 10)")
    pg.execute("CREATE TABLE orders (id int PRIMARY KEY, at timestamptz)")
    pg.execute(
        "INSERT INTO orders SELECT g, timestamptz '2024-03-01' + g * interval '1 day' FROM generate_series(1, 6) g"
    )
    pg.use_as(monkeypatch, "hist_pg")
    config = tmp_path / "jobs.csv"
    config.write_text(
        COLUMNS + "\n"
        f"h1,Y,postgresql,hist_pg,{pg.name},customers,FULL,,id\n"
        f"h2,Y,postgresql,hist_pg,{pg.name},orders,INCREMENTAL,at,id\n"
    )
    settings = Settings.from_env()
    first, _ = execute_run(
        settings, config_path=str(config), destination=file_lake, run_id="hist-1"
    )
    pg.execute("DROP TABLE orders")
    second, _ = execute_run(
        settings, config_path=str(config), destination=file_lake, run_id="hist-2"
    )
    assert (first.jobs_failed, second.jobs_failed) == (0, 1)
    return file_lake


def test_history_reader(two_runs):
    lake = two_runs
    rows = recent(lake, 7)
    assert [(r["run_id"], r["job_id"]) for r in rows][:2] in (
        [("hist-2", "h2"), ("hist-2", "h1")],
        [("hist-2", "h1"), ("hist-2", "h2")],
    )
    assert len(rows) == 4
    assert [r["status"] for r in recent(lake, 7, job="h2")] == ["FAILED", "SUCCESS"]

    results = run_results(lake, "hist-1")
    assert [(r["job_id"], r["status"], r["rows_loaded"]) for r in results] == [
        ("h1", "SUCCESS", "10"),
        ("h2", "SUCCESS", "6"),
    ]
    assert results[1]["watermark_after"].startswith("2024-03-07")
    assert run_results(lake, "no-such-run") == []

    (failed,) = failure_summary(rows)
    assert (failed["job_id"], failed["failures"], failed["runs"]) == ("h2", 1, 2)
    assert failed["latest_status"] == "FAILED" and failed["last_failed_run_id"] == "hist-2"
    assert "orders" in failed["last_error"]

    runs = run_summaries(rows)
    assert [(r["run_id"], r["succeeded"], r["failed"], r["rows_loaded"]) for r in runs] == [
        ("hist-2", 1, 1, 10),
        ("hist-1", 2, 0, 16),
    ]


def test_history_reads_only_the_last_n_days(file_lake):
    dest = Destination.from_url(file_lake)
    today = dt.datetime.now(dt.UTC).date()
    old = {
        "run_id": "old-run",
        "job_id": "x1",
        "source_type": "postgresql",
        "source_name": "s",
        "table_name": "t",
        "load_type": "FULL",
        "status": "FAILED",
        "error": "old failure",
    }
    append_audit_json(dest, [old], today - dt.timedelta(days=3))
    append_audit_json(dest, [{**old, "run_id": "new-run", "status": "SUCCESS", "error": ""}], today)

    assert [r["run_id"] for r in recent(file_lake, 3)] == ["new-run"]
    assert {r["run_id"] for r in recent(file_lake, 4)} == {"new-run", "old-run"}
    assert run_results(file_lake, "old-run", days=3) == []
    assert [r["error"] for r in run_results(file_lake, "old-run", days=4)] == ["old failure"]
    with pytest.raises(Exception, match="days"):
        recent(file_lake, 0)


def test_history_command(two_runs, capsys):
    code = main(["history", "--destination", two_runs, "--days", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "hist-1" in out and "hist-2" in out
    assert "Failures:" in out and "h2" in out
    failures = out.split("Failures:")[1]
    assert "orders" in failures and "h1" not in failures
    lines = [line for line in out.splitlines() if line.startswith("h1 ")]
    assert len(lines) == 2 and all("SUCCESS" in line and " 10 " in f"{line} " for line in lines)

    code = main(["history", "--destination", two_runs, "--job", "h1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {r["job_id"] for r in data["rows"]} == {"h1"} and data["failures"] == []
    assert [r["run_id"] for r in data["runs"]] == ["hist-2", "hist-1"]


def test_history_command_empty_lake_and_bad_days(file_lake, capsys):
    assert main(["history", "--destination", file_lake]) == 0
    assert "no audit rows" in capsys.readouterr().out
    assert main(["history", "--destination", file_lake, "--days", "0"]) == 2
