"""The Durable orchestrator `ingest_run`: plan -> tables in a sliding window -> audit.

Deterministic, as Durable replay requires: no I/O, no clock, no random, no environment. The
configuration and the settings are read by the `plan_run` activity and arrive in its output.

1. `plan_run` (activity): the tasks of this run, the retry policy, the window size.
2. At most `max_parallel` `ingest_table` activities in flight; when one finishes, the next task
   starts (a sliding window, not batches). Each uses `call_activity_with_retry`; a table that
   still fails after its retries becomes a FAILED result and the run goes on.
3. `write_audit` (activity, retried): the audit rows of every table, and the run summary.

Live progress is in `custom_status`: {"run_id", "phase", "done", "total", "failed", "running"}.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Generator
from typing import Any

from ingest.app import ACTIVITY_AUDIT, ACTIVITY_PLAN, ACTIVITY_TABLE
from ingest.results import failed_result, short_error

#: longest error text an orchestrator payload carries for one table
MAX_TABLE_ERROR_CHARS = 500

_ACTIVITY_PREFIX = re.compile(r"^(Activity function '[^']*' failed:\s*)+")
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
    """The short reason of a failed activity, without the host's prefix or the stack trace.

    Durable hands the orchestrator `Exception("<reason> \\n <details>")`.
    """
    text = str(error)
    reason, _, details = text.partition(" \n ")
    reason = reason.strip()
    if not reason or reason == "None":
        lines = [line.strip() for line in details.splitlines() if line.strip()]
        reason = lines[-1] if lines else type(error).__name__
    reason = _EXCEPTION_PREFIX.sub("", _ACTIVITY_PREFIX.sub("", reason))
    return short_error(reason)[:MAX_TABLE_ERROR_CHARS]


def table_outcome(task: dict[str, Any], finished: Any) -> dict[str, Any]:
    """The job result of a finished `ingest_table` task: its output, or a FAILED result."""
    if isinstance(finished.result, BaseException):
        return failed_result(task, f"failed after retries: {failure_text(finished.result)}")
    return finished.result


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """What the run's output keeps of one table (the audit has the rest)."""
    keep = ("job_id", "source_name", "table_name", "status", "rows_loaded", "files_written")
    row = {key: result.get(key) for key in keep}
    if result.get("error"):
        row["error"] = str(result["error"])[:MAX_TABLE_ERROR_CHARS]
    return row


def ingest_run(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    """The orchestrator body (a generator driven by Durable's replay engine)."""
    request = context.get_input() or {}
    run_id = request.get("run_id") or context.instance_id
    request = {**request, "run_id": run_id}
    context.set_custom_status({"run_id": run_id, "phase": "planning"})
    try:
        planned = yield context.call_activity(ACTIVITY_PLAN, request)
    except Exception as exc:  # bad config / unknown job: nothing runs, the run fails
        message = failure_text(exc)
        context.set_custom_status({"run_id": run_id, "phase": "failed", "error": message})
        raise RuntimeError(f"run {run_id} could not be planned: {message}") from None

    plan = planned["plan"]
    settings = planned["settings"]
    tasks: list[dict[str, Any]] = plan["tasks"]
    window = max(1, int(settings["max_parallel"]))
    retry = retry_options(settings)

    results: list[dict[str, Any] | None] = [None] * len(tasks)
    in_flight: dict[Any, int] = {}  # durable task -> index in `tasks` (insertion-ordered)
    next_index = done = failed = 0

    def progress(phase: str) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "phase": phase,
            "done": done,
            "total": len(tasks),
            "failed": failed,
            "running": len(in_flight),
        }

    while next_index < len(tasks) or in_flight:
        while next_index < len(tasks) and len(in_flight) < window:
            started = context.call_activity_with_retry(ACTIVITY_TABLE, retry, tasks[next_index])
            in_flight[started] = next_index
            next_index += 1
        context.set_custom_status(progress("loading"))
        finished = yield context.task_any(list(in_flight))
        index = in_flight.pop(finished)
        outcome = table_outcome(tasks[index], finished)
        results[index] = outcome
        done += 1
        if outcome.get("status") == "FAILED":
            failed += 1

    context.set_custom_status(progress("auditing"))
    summary = yield context.call_activity_with_retry(
        ACTIVITY_AUDIT,
        retry,
        {
            "run_id": run_id,
            "destination": plan["destination"],
            "results": results,
            "started_at": planned["started_at"],
            "trigger": request.get("trigger", "http"),
        },
    )
    context.set_custom_status(progress("finished"))
    return {
        **summary,
        "run_id": run_id,
        "started_at": planned["started_at"],
        "full_refresh": plan.get("full_refresh", False),
        "tables": [compact(r) for r in results if r is not None],
        "skipped": plan.get("skipped", []),
        "warnings": plan.get("warnings", []),
    }
