"""HTTP endpoints and the timer starter of the function app.

- `POST /api/runs`: validate the body, refuse while a run is active (409), start (202).
- `GET /api/runs/{id}`: status, progress and a page of per-table results (`run_status`).
- `GET /api/runs/{id}/report`: the run's HTML report (`ingest.reports.report_files`).
- `GET /api/jobs`: the validated job list and what the next scheduled run will do.
- `on_timer`: the nightly start (DST-safe 02:00 New York, one run per New York date; a late
  fire on the same New York day still starts that day's run).

One run at a time, with Durable's singleton pattern: every on-demand run is started under the
fixed instance id `MANUAL_INSTANCE` (its own run id travels in the input). Durable refuses to
start an instance whose id is Pending, Running or Suspended (409, the extension's default
`overridableExistingInstanceStates: NonRunningStates`), so of two requests arriving together
one starts and the other gets 409. Before that, and before any planning, a cheap query refuses
a start while any run (also a scheduled one) is active. A scheduled run is never refused: it
waits, bounded, for the active run to end (see `orchestration.wait_for_other_runs`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from ingest.app import MANUAL_INSTANCE, ORCHESTRATOR, schedule
from ingest.app.environment import resolve_config_path, settings
from ingest.app.instances import (
    active_run_ids,
    active_runs,
    instance,
    manual_slot,
    run_id_of,
    status_text,
)
from ingest.app.run_status import BadPage, page_args, run_body

if TYPE_CHECKING:  # types only: the function app starts without the engine
    from ingest.model.plan import Plan

log = logging.getLogger(__name__)

#: a run id in a URL (the same rule as `ingest.run_request.RUN_ID`, without loading pydantic)
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: seconds between two checks of a scheduled run waiting for another run to end
WAIT_POLL_S = 300


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.configuration import load_config
    from ingest.errors import ConfigError, RequestError
    from ingest.plan import new_run_id, plan, plan_backfill
    from ingest.reports.report_files import BadReportId, report_page
    from ingest.run_request import parse_body

    return SimpleNamespace(
        BadReportId=BadReportId,
        ConfigError=ConfigError,
        RequestError=RequestError,
        load_config=load_config,
        new_run_id=new_run_id,
        parse_body=parse_body,
        plan=plan,
        plan_backfill=plan_backfill,
        report_page=report_page,
    )


class BadRequest(ValueError):
    """The request is malformed; the message says what to fix (HTTP 400)."""


# ------------------------------------------------------------------------------ responses


def _functions() -> ModuleType:
    """The Functions SDK (`azure.functions`): the one lazy import of it here."""
    # the Functions SDK: only when a response is built (tests import this module without it)
    import azure.functions

    return azure.functions


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Any:
    return _functions().HttpResponse(
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


def parse_run_request(body: bytes | str | None) -> dict[str, Any]:
    """The POST /api/runs body -> the plan request; BadRequest (400) naming the field if wrong.
    The one schema for bodies and CLI arguments is `ingest.run_request`."""
    engine = _engine()
    try:
        return engine.parse_body(body)
    except engine.RequestError as exc:
        raise BadRequest(str(exc)) from None


def plan_request(request: Mapping[str, Any], run_id: str, current: Any) -> Plan:
    """The plan of a parsed run request: a backfill of one job or a normal run. Raises
    ConfigError / RequestError (nothing runs). Used by the HTTP check and by `plan_run`."""
    config_path = resolve_config_path(current.config_path)
    backfill = request.get("backfill")
    if backfill:
        engine = _engine()
        return engine.plan_backfill(
            config_path,
            current.destination,
            backfill["job"],
            backfill["from"],
            backfill.get("to"),
            run_id=run_id,
        )
    engine = _engine()
    return engine.plan(
        config_path,
        destination=current.destination,
        run_id=run_id,
        jobs=request.get("jobs") or None,
        sources=request.get("sources") or None,
        full_refresh=bool(request.get("full_refresh", False)),
        scheduled_weekday=request.get("scheduled_weekday") or None,
    )


# ------------------------------------------------------------------------------ POST /api/runs


def _conflict(active: Any, holder_run_id: str | None = None) -> Any:
    run_id = holder_run_id or run_id_of(active) or active.instance_id
    return _error(
        409,
        f"run {run_id} is {status_text(active).lower()}; "
        "one run at a time, try again when it has finished",
        active_run_id=run_id,
        active_instance_id=active.instance_id,
    )


async def start_run(req: Any, client: Any) -> Any:
    engine = _engine()
    try:
        request = parse_run_request(req.get_body())
    except BadRequest as exc:
        return _error(400, str(exc))
    active = await active_runs(client)  # before any planning: cheap, the common refusal
    if active:
        slot = await manual_slot(client) if active[0].instance_id == MANUAL_INSTANCE else None
        return _conflict(*slot) if slot else _conflict(active[0])
    current = settings()
    run_id = engine.new_run_id()
    try:
        planned = plan_request(request, run_id, current)
    except engine.RequestError as exc:
        return _error(400, str(exc))
    except engine.ConfigError as exc:
        log.error("run request refused, the job configuration is invalid: %s", exc)
        return _error(
            500,
            "the job configuration is invalid; nothing was started",
            problems=[str(p) for p in exc.problems],
        )
    if not planned.tasks:
        skipped = [s.to_dict() for s in planned.skipped]
        return _error(400, "no enabled job matches the request", skipped=skipped)
    payload = {**request, "run_id": run_id, "trigger": "http"}
    try:
        await client.start_new(ORCHESTRATOR, MANUAL_INSTANCE, payload)
    except Exception:
        slot = await manual_slot(client)
        if slot is None:
            raise
        log.warning("run request refused: run %s started first (409 from Durable)", slot[1])
        return _conflict(*slot)
    # Durable (Azure Storage) documents that two starts racing within milliseconds may both be
    # accepted while only one instance runs: the slot says whose run it is.
    slot = await manual_slot(client)
    if slot is not None and slot[1] not in (None, run_id):
        log.warning("run request refused: run %s holds %s", slot[1], MANUAL_INSTANCE)
        return _conflict(*slot)
    log.info("run %s started on request: %d table(s)", run_id, len(planned.tasks))
    response = client.create_check_status_response(req, MANUAL_INSTANCE)
    body = json.loads(response.get_body())
    body.update(
        run_id=run_id,
        instance_id=MANUAL_INSTANCE,
        runStatusUri=f"{str(req.url).split('?', 1)[0].rstrip('/')}/{run_id}",
    )
    return json_response(202, body, headers=dict(response.headers))


# ------------------------------------------------------------------------------ GET /api/runs/{id}


async def get_run(req: Any, client: Any) -> Any:
    run_id = (req.route_params or {}).get("id", "")
    if not RUN_ID_PATTERN.fullmatch(run_id):
        return _error(400, f"{run_id!r} is not a run id")
    try:
        page, page_size = page_args(req.params or {})
    except BadPage as exc:
        return _error(400, str(exc))
    body = await run_body(client, settings().destination, run_id, page, page_size)
    if body is None:
        return _error(
            404, f"run {run_id} is not known (neither in Durable, the run store nor recent audits)"
        )
    return json_response(200, body)


# ----------------------------------------------------------------------- GET /api/runs/{id}/report

#: the report page runs no script and fetches nothing, also when served
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def get_run_report(req: Any) -> Any:
    """The run's HTML report from `<lake>/metadata/reports/<id>.html` (`latest`: the newest).
    A run without a stored report (one from before reports, or whose report failed) gets it
    built from the audit and stored; 404 when the audit does not know the run either."""
    engine = _engine()
    run_id = (req.route_params or {}).get("id", "")
    try:
        page = engine.report_page(settings().destination, run_id)
    except engine.BadReportId:
        return _error(400, f"{run_id[:200]!r} is not a run id")
    if page is None:
        return _error(404, f"run {run_id} has no report and is not in the recent audit")
    return _functions().HttpResponse(
        page, status_code=200, mimetype="text/html", charset="utf-8", headers=REPORT_HEADERS
    )


# ------------------------------------------------------------------------------ GET /api/jobs


def jobs_body(now: dt.datetime | None = None) -> dict[str, Any]:
    """The validated job list, and which jobs the next scheduled run includes.
    Raises ConfigError for a bad configuration."""
    engine = _engine()
    current = settings()
    config = engine.load_config(resolve_config_path(current.config_path))
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
    engine = _engine()
    try:
        return json_response(200, jobs_body())
    except engine.ConfigError as exc:
        return _error(
            500, "the job configuration is invalid", problems=[str(p) for p in exc.problems]
        )


# ------------------------------------------------------------------------------ timer


async def on_timer(client: Any, fire_time: dt.datetime, past_due: bool = False) -> dict[str, Any]:
    """The nightly starter: returns what it decided ({"started": bool, "reason", ...}).

    The decision is made on the scheduled time, not the time the timer happens to run: a fire
    at or after the New York day's start slot (02:00 New York) starts that day's run unless it
    exists (`schedule.due_slot`), so a late fire (host down at 06:00/07:00 UTC, past-due fire
    at 08:30) still starts the day's run, once. A run that is active then does not make the
    night skip: the new run waits for it, at most INGEST_SCHEDULE_MAX_WAIT_MIN minutes.
    """
    slot = schedule.due_slot(fire_time)
    local = schedule.new_york_time(fire_time)
    if slot is None:
        log.info(
            "timer %s UTC (%s New York): before the day's 02:00 start, nothing to do",
            schedule.slot_of(fire_time).strftime("%H:%M"),
            local.strftime("%H:%M %Z"),
        )
        return {"started": False, "reason": "before the day's 02:00 New York start"}
    instance_id = schedule.instance_id(slot)
    if await instance(client, instance_id) is not None:
        double_fire = past_due or schedule.slot_of(fire_time) == slot
        log.log(
            logging.WARNING if double_fire else logging.INFO,
            "timer: scheduled run %s already exists%s; nothing to start",
            instance_id,
            " (double or late fire)" if double_fire else "",
        )
        return {"started": False, "reason": "already started", "instance_id": instance_id}
    current = settings()
    late_s = max(0, round((schedule.utc(fire_time) - slot).total_seconds()))
    payload = {
        "run_id": instance_id,
        "trigger": "timer",
        "scheduled_weekday": schedule.weekday(slot),
        "full_refresh": False,
        "scheduled_for": slot.isoformat(),
        "wait": {"max_wait_s": current.schedule_max_wait_min * 60, "poll_s": WAIT_POLL_S},
    }
    active = await active_run_ids(client)
    try:
        await client.start_new(ORCHESTRATOR, instance_id, payload)
    except Exception:
        if await instance(client, instance_id) is None:
            raise
        log.warning("timer: scheduled run %s was started by another fire", instance_id)
        return {"started": False, "reason": "already started", "instance_id": instance_id}
    log.info(
        "timer: scheduled run %s started (%s New York%s)%s",
        instance_id,
        schedule.new_york_time(slot).strftime("%Y-%m-%d %H:%M %Z"),
        f", fired {late_s // 60} min late{' (past due)' if past_due else ''}"
        if late_s >= 60
        else "",
        f"; it waits for {', '.join(active)} to finish (at most "
        f"{current.schedule_max_wait_min} min)"
        if active
        else "",
    )
    return {"started": True, "instance_id": instance_id, "waits_for": active, "late_s": late_s}
