"""The Durable sub-orchestrator `ingest_batch`: the tables of one batch, a sliding window.

Input (from `ingest_run`): {"run_id", "destination", "batch", "size", "window", "retry"}.
At most `window` `ingest_table` activities are in flight; when one finishes, the next table
of the batch starts. Each activity gets a reference (run id, batch, position), reads its task
from the run store, writes its full result there and returns a compact one. A table that
still fails after its retries is recorded FAILED in the run store by `record_failure` (with
the reason Durable reported); the batch goes on.

Output: the batch's tally {"batch", "done", "succeeded", "failed", "rows_loaded",
"failed_jobs"} (at most `size` ids). Live progress in `custom_status`: {"run_id", "batch",
"total", "done", "failed", "running"}. Deterministic: no I/O, clock, random or environment.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ingest.app import ACTIVITY_FAILURE, ACTIVITY_TABLE
from ingest.app.orchestration import failure_text, retry_options
from ingest.app.outcomes import add_result, add_tally, empty_tally


def ingest_batch(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    spec = context.get_input()
    run_id, batch = spec["run_id"], int(spec["batch"])
    size, window = int(spec["size"]), max(1, int(spec["window"]))
    retry = retry_options(spec["retry"])
    reference = {"run_id": run_id, "destination": spec["destination"], "batch": batch}

    totals = empty_tally()
    in_flight: dict[Any, int] = {}  # durable task -> position in the batch
    next_position = 0

    def progress() -> dict[str, Any]:
        return {
            "run_id": run_id,
            "batch": batch,
            "total": size,
            "done": totals["done"],
            "failed": totals["failed"],
            "running": len(in_flight),
        }

    while next_position < size or in_flight:
        while next_position < size and len(in_flight) < window:
            task = context.call_activity_with_retry(
                ACTIVITY_TABLE, retry, {**reference, "position": next_position}
            )
            in_flight[task] = next_position
            next_position += 1
        context.set_custom_status(progress())
        finished = yield context.task_any(list(in_flight))
        position = in_flight.pop(finished)
        if not isinstance(finished.result, BaseException):
            add_result(totals, finished.result)
            continue
        failure = {
            **reference,
            "position": position,
            "error": f"failed after retries: {failure_text(finished.result)}",
        }
        try:
            recorded = yield context.call_activity_with_retry(ACTIVITY_FAILURE, retry, failure)
        except Exception:  # the audit still writes a FAILED row for a table without a result
            recorded = {"done": 1, "failed": 1, "failed_jobs": [f"batch {batch} #{position}"]}
        add_tally(totals, recorded)

    context.set_custom_status(progress())
    return {"batch": batch, **totals}
