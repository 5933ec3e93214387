"""The activity bodies: each calls one step of the engine.

Durable runs activities at least once, so each is safe to run again: `run_job` is idempotent
per task (run id, job, kind) and holds the job's lease while it loads (a second attempt of the
same task waits for the first and reports its load), and `write_audit` writes each load's row
once. Payloads are small JSON (tasks, results, counts), never data or secrets.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from ingest.app.environment import resolve_config_path, settings
from ingest.settings import Settings

log = logging.getLogger(__name__)


class RetriableTableError(RuntimeError):
    """Raised by `ingest_table` for a FAILED result that another attempt may fix, so that
    Durable's retry policy runs the activity again."""


def _payload(value: Any) -> Any:
    """Activity inputs arrive decoded; accept a JSON string too (older workers, tests)."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def prepare_process(engine: bool = False) -> None:
    """Once per worker process, cheap after that: with `engine`, the engine's libraries
    (dlt etc., imported GC-paused by `ingest.runtime.warmup`); Application Insights export (a no-op
    without APPLICATIONINSIGHTS_CONNECTION_STRING) and the secret-redaction filter on every log
    handler, installed after the host's and the exporter's handlers exist."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.secrets.redaction import install_redaction
    from ingest.telemetry import configure

    if engine:
        # engine modules load when this runs, not at start-up (cold start)
        from ingest.runtime.warmup import preload_engine

        preload_engine()
    configure()
    install_redaction()


def retry_settings(current: Settings) -> dict[str, Any]:
    """What the orchestrator needs to know (it must not read the environment itself)."""
    return {
        "max_parallel": current.max_parallel,
        "retry_max_attempts": current.retry_max_attempts,
        "retry_first_interval_ms": current.retry_first_interval_s * 1000,
        "retry_backoff": current.retry_backoff,
    }


def plan_run(request: Any) -> dict[str, Any]:
    """Activity `plan_run`: read the configuration, select this run's tasks.

    `request`: {"run_id", "jobs", "sources", "full_refresh", "scheduled_weekday"} or
    {"run_id", "backfill": {"job", "from", "to"}}.
    Returns {"plan": <ingest.plan.plan output>, "settings": {...}, "started_at": ISO}.
    ConfigError / RequestError propagate: the orchestration fails, nothing is loaded.
    """
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.app.http_api import plan_request

    prepare_process(engine=True)  # planning imports dlt (lake names follow its naming)
    request = _payload(request) or {}
    current = settings()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result = plan_request(request, request["run_id"], current)
    log.info(
        "run %s planned: %d table(s), %d skipped",
        result["run_id"],
        len(result["tasks"]),
        len(result["skipped"]),
    )
    return {"plan": result, "settings": retry_settings(current), "started_at": started_at}


def ingest_table(task: Any) -> dict[str, Any]:
    """Activity `ingest_table`: load one table (one dlt pipeline).

    A FAILED result that may succeed on another attempt is raised as `RetriableTableError`
    (Durable retries it with the run's retry policy); any other result is returned.
    """
    prepare_process(engine=True)
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.job import run_job

    task = _payload(task)
    # a job another writer is loading ends as a retriable failure: Durable tries again later
    result = run_job(task, settings=settings(), on_busy="retry")
    if result.get("status") == "FAILED" and result.get("retriable"):
        raise RetriableTableError(f"job {result['job_id']}: {result.get('error') or 'failed'}")
    return result


def write_audit(run: Any) -> dict[str, Any]:
    """Activity `write_audit`: append the run's audit rows (and telemetry), then refresh the
    lake's views (a failure there is logged and reported, never fails the audit); return the
    summary."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.audit import write_audit as append

    prepare_process()
    run = _payload(run)
    summary = append(run)
    summary["views"] = refresh_views_after(run)
    return summary


def refresh_views_after(run: dict[str, Any]) -> dict[str, Any]:
    """The views step of a run (ingest.views.refresh), for the app's configuration."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.views.refresh import refresh_after_run

    config_path = resolve_config_path(settings().config_path)
    return refresh_after_run(config_path, str(run["destination"]), str(run["run_id"]))
