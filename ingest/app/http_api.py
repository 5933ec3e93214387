"""HTTP endpoints and the timer starter of the function app.

- `POST /api/runs`: validate the body, refuse while a run is active (409), start (202).
- `GET /api/runs/{id}`: Durable status and per-table results; the audit when Durable forgot.
- `GET /api/jobs`: the validated job list and what the next scheduled run will do.
- `on_timer`: the nightly start (DST-safe 02:00 New York, one run per New York date).

One run at a time: a start is refused while any `ingest_run` instance is Pending, Running or
Suspended. (Two requests in the same instant can both pass the check; the engine's per-job
state and audit dedup keep such a pair consistent, and it cannot happen for the timer, whose
instance id is fixed per date.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from ingest.app import ORCHESTRATOR, schedule
from ingest.app.environment import resolve_config_path, settings

log = logging.getLogger(__name__)

RUN_REQUEST_KEYS = {
    "jobs": "list of job ids",
    "sources": "list of source names",
    "full_refresh": "true or false",
    "backfill": 'object {"job": id, "from": watermark, "to": watermark (optional)}',
}
BACKFILL_KEYS = ("job", "from", "to")
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
ACTIVE_STATUSES = ("Pending", "Running", "Suspended")
MAX_BODY_BYTES = 64 * 1024


class BadRequest(ValueError):
    """The request is malformed; the message says what to fix (HTTP 400)."""


# ------------------------------------------------------------------------------ responses


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    # the Functions SDK: only when a response is built (tests import this module without it)
    import azure.functions as func

    return func.HttpResponse(
        json.dumps(body, default=_json_default, indent=2),
        status_code=status,
        mimetype="application/json",
        headers=dict(headers or {}),
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


def _error(status: int, message: str, **extra: Any) -> Any:
    return json_response(status, {"error": message, **extra})


# ------------------------------------------------------------------------------ validation


def _string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest(f"'{key}' must be a list of strings, got {type(value).__name__}")
    bad = [item for item in value if not isinstance(item, str) or not item.strip()]
    if bad:
        raise BadRequest(f"'{key}' must hold non-empty strings only, got {bad[0]!r}")
    return [item.strip() for item in value]


def parse_run_request(body: bytes | str | None) -> dict[str, Any]:
    """The POST /api/runs body -> {"jobs", "sources", "full_refresh"}; BadRequest if wrong.

    An empty body means: every enabled job.
    """
    if isinstance(body, bytes):
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("body is not UTF-8 text") from None
    if body is None or not body.strip():
        data: Any = {}
    else:
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(RUN_REQUEST_KEYS))
    if unknown:
        allowed = ", ".join(f"'{k}' ({v})" for k, v in RUN_REQUEST_KEYS.items())
        raise BadRequest(f"unknown key(s): {', '.join(unknown)}; allowed: {allowed}")
    if data.get("backfill") is not None:
        return {"backfill": _backfill_request(data)}
    request: dict[str, Any] = {"jobs": [], "sources": [], "full_refresh": False}
    for key in ("jobs", "sources"):
        if data.get(key) is not None:
            request[key] = _string_list(key, data[key])
    if "full_refresh" in data:
        if not isinstance(data["full_refresh"], bool):
            raise BadRequest(
                f"'full_refresh' must be true or false, got {json.dumps(data['full_refresh'])}"
            )
        request["full_refresh"] = data["full_refresh"]
    return request


def _backfill_request(data: Mapping[str, Any]) -> dict[str, Any]:
    """{"backfill": {"job", "from", "to"}}: re-extract a watermark range of one job."""
    others = sorted(k for k in data if k != "backfill" and data[k] not in (None, [], False))
    if others:
        raise BadRequest(f"'backfill' cannot be combined with {', '.join(others)}")
    backfill = data["backfill"]
    if not isinstance(backfill, dict):
        raise BadRequest(f"'backfill' must be an object, got {type(backfill).__name__}")
    unknown = sorted(set(backfill) - set(BACKFILL_KEYS))
    if unknown:
        raise BadRequest(
            f"unknown backfill key(s): {', '.join(unknown)}; allowed: {', '.join(BACKFILL_KEYS)}"
        )
    job = backfill.get("job")
    if not isinstance(job, str) or not job.strip():
        raise BadRequest("'backfill.job' must be a job id (string)")
    for key in ("from", "to"):
        value = backfill.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise BadRequest(f"'backfill.{key}' must be a watermark string or integer")
    if backfill.get("from") in (None, ""):
        raise BadRequest("'backfill.from' is required")
    return {"job": job.strip(), "from": backfill["from"], "to": backfill.get("to")}


def plan_request(request: Mapping[str, Any], run_id: str, current: Any) -> dict[str, Any]:
    """The plan of a parsed run request: a backfill of one job or a normal run. Raises
    ConfigError / RequestError (nothing runs). Used by the HTTP check and by `plan_run`."""
    config_path = resolve_config_path(current.config_path)
    backfill = request.get("backfill")
    if backfill:
        # engine modules load when this runs, not at start-up (cold start)
        from ingest.checks.backfill import plan_backfill

        return plan_backfill(
            config_path,
            current.destination,
            backfill["job"],
            backfill["from"],
            backfill.get("to"),
            run_id=run_id,
        )
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.plan import plan

    return plan(
        config_path,
        destination=current.destination,
        run_id=run_id,
        jobs=request.get("jobs") or None,
        sources=request.get("sources") or None,
        full_refresh=bool(request.get("full_refresh", False)),
        scheduled_weekday=request.get("scheduled_weekday") or None,
    )


# ------------------------------------------------------------------------------ durable queries


async def active_runs(client: Any) -> list[Any]:
    """`ingest_run` instances that are Pending, Running or Suspended."""
    # the Durable SDK: only when the client is queried
    from azure.durable_functions import OrchestrationRuntimeStatus

    wanted = [OrchestrationRuntimeStatus(s) for s in ACTIVE_STATUSES]
    statuses = await client.get_status_by(runtime_status=wanted)
    return [
        s
        for s in statuses
        if s
        and (s.name in (None, ORCHESTRATOR))
        and getattr(s.runtime_status, "value", s.runtime_status) in ACTIVE_STATUSES
    ]


async def _instance(client: Any, instance_id: str) -> Any | None:
    status = await client.get_status(instance_id)
    return status if status else None


def _status_text(status: Any) -> str:
    return str(getattr(status.runtime_status, "value", status.runtime_status))


# ------------------------------------------------------------------------------ POST /api/runs


async def start_run(req: Any, client: Any) -> Any:
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.errors import ConfigError, RequestError
    from ingest.plan import new_run_id

    try:
        request = parse_run_request(req.get_body())
    except BadRequest as exc:
        return _error(400, str(exc))
    current = settings()
    run_id = new_run_id()
    try:
        planned = plan_request(request, run_id, current)
    except RequestError as exc:
        return _error(400, str(exc))
    except ConfigError as exc:
        log.error("run request refused, the job configuration is invalid: %s", exc)
        return _error(
            500,
            "the job configuration is invalid; nothing was started",
            problems=[str(p) for p in exc.problems],
        )
    if not planned["tasks"]:
        return _error(400, "no enabled job matches the request", skipped=planned["skipped"])
    active = await active_runs(client)
    if active:
        current_run = active[0]
        return _error(
            409,
            f"run {current_run.instance_id} is {_status_text(current_run).lower()}; "
            "one run at a time, try again when it has finished",
            active_run_id=current_run.instance_id,
        )
    payload = {**request, "run_id": run_id, "trigger": "http"}
    await client.start_new(ORCHESTRATOR, run_id, payload)
    log.info("run %s started on request: %d table(s)", run_id, len(planned["tasks"]))
    return client.create_check_status_response(req, run_id)


# ------------------------------------------------------------------------------ GET /api/runs/{id}


def audit_results(destination: str, run_id: str) -> list[dict[str, str]]:
    """The audit rows of a run Durable no longer knows (purged history)."""
    from ingest.reports.history import run_results  # the engine: not at cold start

    return run_results(destination, run_id)


def run_status_body(status: Any) -> dict[str, Any]:
    runtime = _status_text(status)
    body: dict[str, Any] = {
        "run_id": status.instance_id,
        "status": runtime,
        "source": "durable",
        "created_time": status.created_time,
        "last_updated_time": status.last_updated_time,
        "progress": status.custom_status,
    }
    output = status.output
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            pass
    if isinstance(output, dict):
        body["summary"] = {k: v for k, v in output.items() if k != "tables"}
        body["tables"] = output.get("tables", [])
    elif output is not None:
        body["error" if runtime == "Failed" else "output"] = output
    return body


def audit_status_body(run_id: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    from ingest.results import summarize  # the same counts as the run's own summary

    return {
        "run_id": run_id,
        "status": "Completed",
        "source": "audit",
        "summary": summarize(rows),
        "tables": rows,
    }


async def get_run(req: Any, client: Any) -> Any:
    run_id = (req.route_params or {}).get("id", "")
    if not RUN_ID_PATTERN.match(run_id):
        return _error(400, f"{run_id!r} is not a run id")
    status = await _instance(client, run_id)
    if status is not None:
        return json_response(200, run_status_body(status))
    rows = audit_results(settings().destination, run_id)
    if rows:
        return json_response(200, audit_status_body(run_id, rows))
    return _error(404, f"run {run_id} is not known (neither in Durable nor in recent audit files)")


# ------------------------------------------------------------------------------ GET /api/jobs


def jobs_body(now: dt.datetime | None = None) -> dict[str, Any]:
    """The validated job list, and which jobs the next scheduled run includes.
    Raises ConfigError for a bad configuration."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.config import load_config

    current = settings()
    config = load_config(resolve_config_path(current.config_path))
    now = now or dt.datetime.now(dt.UTC)
    next_start = schedule.next_start(now)
    day = schedule.weekday(next_start)
    fields = (
        "job_id",
        "enabled",
        "source_type",
        "source_name",
        "schema_name",
        "table_name",
        "load_type",
        "watermark_column",
        "primary_key",
        "schedule",
        "owner",
    )
    jobs = []
    for job in config.jobs:
        data = job.to_dict()
        row = {key: data.get(key) for key in fields}
        row["in_next_scheduled_run"] = job.enabled and job.runs_on(day)
        jobs.append(row)
    return {
        "config_path": config.path,
        "destination": current.destination,
        "jobs_total": len(jobs),
        "jobs_enabled": sum(1 for j in jobs if j["enabled"]),
        "next_scheduled_run": {
            "utc": next_start.isoformat(),
            "new_york": schedule.new_york_time(next_start).isoformat(),
            "weekday": day,
            "instance_id": schedule.instance_id(next_start),
            "jobs": [j["job_id"] for j in jobs if j["in_next_scheduled_run"]],
        },
        "warnings": list(config.warnings),
        "jobs": jobs,
    }


def list_jobs(req: Any = None) -> Any:
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.errors import ConfigError

    try:
        return json_response(200, jobs_body())
    except ConfigError as exc:
        return _error(
            500, "the job configuration is invalid", problems=[str(p) for p in exc.problems]
        )


# ------------------------------------------------------------------------------ timer


async def on_timer(client: Any, fire_time: dt.datetime, past_due: bool = False) -> dict[str, Any]:
    """The nightly starter: returns what it decided ({"started": bool, "reason", ...})."""
    slot = schedule.slot_of(fire_time)
    local = schedule.new_york_time(slot)
    if not schedule.should_start(slot):
        log.info(
            "timer %s UTC (%s New York): not the 02:00 slot, nothing to do",
            slot.strftime("%H:%M"),
            local.strftime("%H:%M %Z"),
        )
        return {"started": False, "reason": "not the first slot at or after 02:00 New York"}
    instance_id = schedule.instance_id(slot)
    if await _instance(client, instance_id) is not None:
        log.warning("timer: scheduled run %s already exists (double fire); skipped", instance_id)
        return {"started": False, "reason": "already started", "instance_id": instance_id}
    active = await active_runs(client)
    if active:
        busy = active[0].instance_id
        log.warning(
            "timer: scheduled run %s skipped, run %s is still %s (one run at a time)",
            instance_id,
            busy,
            _status_text(active[0]).lower(),
        )
        return {"started": False, "reason": f"run {busy} is active", "instance_id": instance_id}
    payload = {
        "run_id": instance_id,
        "trigger": "timer",
        "scheduled_weekday": schedule.weekday(slot),
        "full_refresh": False,
    }
    await client.start_new(ORCHESTRATOR, instance_id, payload)
    log.info(
        "timer: scheduled run %s started (%s New York%s)",
        instance_id,
        local.strftime("%Y-%m-%d %H:%M %Z"),
        ", past due" if past_due else "",
    )
    return {"started": True, "instance_id": instance_id}
