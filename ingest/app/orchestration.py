"""The Durable orchestrator `ingest_run`: (wait) -> plan -> batches -> audit.

Deterministic, as Durable replay requires: no I/O, no clock, no random, no environment. The
configuration and the settings are read by the `plan_run` activity and arrive in its output.

0. A scheduled run (its input holds `wait`) first waits, bounded, while another run is active
   (`find_active_runs` every `poll_s`, durable timers in between); past `max_wait_s` it runs
   anyway. The wait is reported in the run's output, audit and telemetry.
1. `plan_run` (activity) stores the plan in the run store (`ingest.app.runstore`) and returns
   counts only: tables, batch size, retry policy, window.
2. The tables run in sub-orchestrations `ingest_batch` of at most `batch_size` tables each
   (`ingest.app.batch_orchestration`), in lanes (`ingest.app.batching`): at most one batch per
   lane at a time, a new batch when one finishes. Payloads are references and counts. A batch
   that fails as a whole (after its retries) gets its tables' FAILED results recorded.
3. `write_audit` (activity, retried) reads every result from the run store and appends the
   audit rows; its compact summary is the run's output.

Live progress is in `custom_status`: {"run_id", "phase", "total", "done", "failed",
"batches", "batches_done", "batches_running"}; a running batch's own progress is in its
custom status (`GET /api/runs/{id}` adds them up).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Generator
from typing import Any

from ingest.app import (
    ACTIVITY_ACTIVE_RUNS,
    ACTIVITY_AUDIT,
    ACTIVITY_FAILURE,
    ACTIVITY_PLAN,
    ORCHESTRATOR_BATCH,
)
from ingest.app.batching import batch_count, batch_instance_id, batch_size_of, lane_widths
from ingest.app.outcomes import add_tally, empty_tally
from ingest.model.result import short_error

#: longest error text an orchestrator payload carries for one table or batch
MAX_TABLE_ERROR_CHARS = 500
#: retry policy of the `find_active_runs` probe of a waiting scheduled run
PROBE_RETRY = {"retry_first_interval_ms": 10_000, "retry_max_attempts": 3, "retry_backoff": 2.0}

_ACTIVITY_PREFIX = re.compile(r"^((Activity|Orchestrator) function '[^']*' failed:\s*)+")
_EXCEPTION_PREFIX = re.compile(r"^(ingest\.app\.activities\.)?RetriableTableError:\s*")


@functools.cache
def _backoff_retry_options_class() -> type:
    """RetryOptions plus the backoff coefficient. The Python SDK's RetryOptions has none; the
    extension reads `backoffCoefficient` from the action JSON (as the JavaScript SDK sends it)."""
    # the Durable SDK: the orchestrator module stays importable without it (tests, CLI)
    from azure.durable_functions import RetryOptions

    class BackoffRetryOptions(RetryOptions):
        def __init__(self, first_ms: int, attempts: int, backoff: float):
            super().__init__(first_ms, attempts)
            self.backoff_coefficient = backoff

        def to_json(self) -> dict[str, Any]:
            data = super().to_json()
            data["backoffCoefficient"] = self.backoff_coefficient
            return data

    return BackoffRetryOptions


def retry_options(settings: dict[str, Any]) -> Any:
    """Durable RetryOptions from the settings `plan_run` returned."""
    return _backoff_retry_options_class()(
        max(1, int(settings["retry_first_interval_ms"])),
        max(1, int(settings["retry_max_attempts"])),
        float(settings.get("retry_backoff") or 1.0),
    )


def failure_text(error: BaseException) -> str:
    """The short reason of a failed activity or sub-orchestration, without the host's prefix or
    the stack trace. Durable hands the orchestrator `Exception("<reason> \\n <details>")`."""
    text = str(error)
    reason, _, details = text.partition(" \n ")
    reason = reason.strip()
    if not reason or reason == "None":
        lines = [line.strip() for line in details.splitlines() if line.strip()]
        reason = lines[-1] if lines else type(error).__name__
    reason = _EXCEPTION_PREFIX.sub("", _ACTIVITY_PREFIX.sub("", reason))
    return short_error(reason)[:MAX_TABLE_ERROR_CHARS]


def wait_for_other_runs(
    context: Any, wait: dict[str, Any]
) -> Generator[Any, Any, dict[str, Any] | None]:
    """Wait while another run is active, at most `wait["max_wait_s"]`, probing every
    `wait["poll_s"]`. Returns None when nothing was active, else what the wait was."""
    started = context.current_utc_datetime
    deadline = started + dt.timedelta(seconds=max(0, int(wait.get("max_wait_s") or 0)))
    poll = dt.timedelta(seconds=max(1, int(wait.get("poll_s") or 300)))
    retry = retry_options(PROBE_RETRY)
    waited_for: list[str] = []
    outcome = "finished"
    while True:
        try:
            active = yield context.call_activity_with_retry(
                ACTIVITY_ACTIVE_RUNS, retry, {"exclude": [context.instance_id]}
            )
        except Exception as exc:  # the probe failing must not cost the night: run
            outcome = f"could not check for other runs ({failure_text(exc)})"
            break
        if not active:
            break
        for run_id in active:
            if run_id not in waited_for:
                waited_for.append(run_id)
        now = context.current_utc_datetime
        if now >= deadline:
            outcome = "gave up waiting"
            break
        context.set_custom_status(
            {
                "run_id": wait.get("run_id"),
                "phase": "waiting",
                "waiting_for": active[:5],
                "since": started.isoformat(),
                "until": deadline.isoformat(),
            }
        )
        yield context.create_timer(min(now + poll, deadline))
    if not waited_for:
        return None
    seconds = (context.current_utc_datetime - started).total_seconds()
    return {"waited_s": round(seconds), "waited_for": waited_for[:5], "outcome": outcome}


def ingest_run(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    """The orchestrator body (a generator driven by Durable's replay engine)."""
    request = dict(context.get_input() or {})
    wait = request.pop("wait", None)  # a scheduled run's bound on waiting for other runs
    run_id = request.get("run_id") or context.instance_id
    request["run_id"] = run_id
    trigger = request.get("trigger", "http")

    waited = None
    if wait:
        waited = yield from wait_for_other_runs(context, {**wait, "run_id": run_id})

    context.set_custom_status({"run_id": run_id, "phase": "planning"})
    try:
        planned = yield context.call_activity(ACTIVITY_PLAN, request)
    except Exception as exc:  # bad config / unknown job: nothing runs, the run fails
        message = failure_text(exc)
        context.set_custom_status({"run_id": run_id, "phase": "failed", "error": message})
        raise RuntimeError(f"run {run_id} could not be planned: {message}") from None

    settings = planned["settings"]
    destination = planned["destination"]
    total = int(planned["total"])
    size = int(planned["batch_size"])
    batches = batch_count(total, size)
    widths = lane_widths(total, size, settings["max_parallel"])
    retry = retry_options(settings)
    retry_spec = {k: settings[k] for k in PROBE_RETRY}

    totals = empty_tally()
    free_lanes = list(range(len(widths)))
    in_flight: dict[Any, tuple[int, int]] = {}  # durable task -> (batch, lane)
    next_batch = batches_done = 0

    def progress(phase: str) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "phase": phase,
            "total": total,
            "done": totals["done"],
            "failed": totals["failed"],
            "batches": batches,
            "batches_done": batches_done,
            "batches_running": sorted(batch for batch, _ in in_flight.values()),
        }

    while next_batch < batches or in_flight:
        while next_batch < batches and free_lanes:
            lane = free_lanes.pop(0)
            spec = {
                "run_id": run_id,
                "destination": destination,
                "batch": next_batch,
                "size": batch_size_of(next_batch, total, size),
                "window": widths[lane],
                "retry": retry_spec,
            }
            started = context.call_sub_orchestrator_with_retry(
                ORCHESTRATOR_BATCH, retry, spec, batch_instance_id(run_id, next_batch)
            )
            in_flight[started] = (next_batch, lane)
            next_batch += 1
        context.set_custom_status(progress("loading"))
        finished = yield context.task_any(list(in_flight))
        batch, lane = in_flight.pop(finished)
        free_lanes.append(lane)
        if isinstance(finished.result, BaseException):
            # the batch failed as a whole: its tables without a result are recorded FAILED
            outcome = yield context.call_activity_with_retry(
                ACTIVITY_FAILURE,
                retry,
                {
                    "run_id": run_id,
                    "destination": destination,
                    "batch": batch,
                    "error": f"batch {batch} failed: {failure_text(finished.result)}",
                },
            )
        else:
            outcome = finished.result
        add_tally(totals, outcome, keep_jobs=False)
        batches_done += 1

    context.set_custom_status(progress("auditing"))
    audit_request: dict[str, Any] = {
        "run_id": run_id,
        "destination": destination,
        "started_at": planned["started_at"],
        "trigger": trigger,
    }
    if waited:
        audit_request["waited"] = waited
    summary = yield context.call_activity_with_retry(ACTIVITY_AUDIT, retry, audit_request)
    context.set_custom_status(progress("finished"))
    output = {
        **summary,
        "run_id": run_id,
        "trigger": trigger,
        "started_at": planned["started_at"],
        "full_refresh": planned.get("full_refresh", False),
        "batches": batches,
        "skipped": planned.get("skipped", 0),
        "warnings": planned.get("warnings", []),
    }
    if waited:
        output["waited"] = waited
    return output
