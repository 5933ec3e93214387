"""The Durable sub-orchestrator `ingest_batch`: the tables of one batch, a sliding window.

Input (from `ingest_run`): {"run_id", "destination", "batch", "size", "window", "retry"}.
At most `window` `ingest_table` activities are in flight; when one finishes, the next table
of the batch starts. Each activity gets a reference (run id, batch, position), reads its task
from the run store, writes its full result there and returns a compact one. A table that
still fails after its retries is recorded FAILED in the run store by `record_failure` (with
the reason Durable reported); the batch goes on.

A table whose load is split (`ingest.job.split`; its `ingest_table` returns status SPLIT and
a chunk count) gets its chunks as `ingest_chunk` activities in the same window (each retried
alone), then, when every chunk landed or gave up, `ingest_table` again with `commit`: its
result is the table's. Chunks and commits waiting for a slot go before new tables.

A split table whose start also returned `hold` (a FULL load of a source that exports
snapshots, `ingest.job.split_snapshot`) gets a `hold_snapshot` activity at once, before its
chunks: it exports the snapshot the chunks read and holds it until they have landed. It does
not take a slot of the window (it waits on the chunks: counted in the window, a window of one
would never run them), and nothing here waits for it before scheduling anything: the chunks
and the commit are scheduled as always, in the same `task_any` as the holder (the SDK
schedules a task when it is first yielded, alone or inside `task_any`). The batch ends only
when its holders have ended too (each ends within seconds of its table's commit).

Output: the batch's tally {"batch", "done", "succeeded", "failed", "rows_loaded",
"failed_jobs"} (at most `size` ids). Live progress in `custom_status`: {"run_id", "batch",
"total", "done", "failed", "running", "splits" (while a split table loads: job id ->
{"chunks", "done", "failed", "rows"})}. Deterministic: no I/O, clock, random or environment.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ingest.app import ACTIVITY_CHUNK, ACTIVITY_FAILURE, ACTIVITY_HOLD, ACTIVITY_TABLE
from ingest.app.orchestration import failure_text, retry_options
from ingest.app.outcomes import SPLIT, add_result, add_tally, empty_tally


def ingest_batch(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    spec = context.get_input()
    run_id, batch = spec["run_id"], int(spec["batch"])
    size, window = int(spec["size"]), max(1, int(spec["window"]))
    retry = retry_options(spec["retry"])
    reference = {"run_id": run_id, "destination": spec["destination"], "batch": batch}

    totals = empty_tally()
    #: durable task -> (step, position in the batch, chunk): "table", "chunk", "commit" or
    #: "hold" (a split table's snapshot holder: outside the window)
    in_flight: dict[Any, tuple[str, int, int]] = {}
    #: split tables (position -> progress) and the chunk/commit calls waiting for a slot
    splits: dict[int, dict[str, Any]] = {}
    waiting: list[tuple[str, int, int]] = []
    next_position = 0

    def progress() -> dict[str, Any]:
        status: dict[str, Any] = {
            "run_id": run_id,
            "batch": batch,
            "total": size,
            "done": totals["done"],
            "failed": totals["failed"],
            "running": sum(1 for step, _, _ in in_flight.values() if step in ("table", "commit")),
        }
        if splits:  # bounded: the split tables of this batch still loading
            status["splits"] = {
                split["job_id"]: {k: split[k] for k in ("chunks", "done", "failed", "rows")}
                for split in splits.values()
            }
        return status

    def call(step: str, position: int, chunk: int) -> Any:
        if step == "chunk":
            payload = {**reference, "position": position, "chunk": chunk}
            if splits[position]["hold"]:
                payload["hold"] = True
            return context.call_activity_with_retry(ACTIVITY_CHUNK, retry, payload)
        if step == "hold":
            payload = {**reference, "position": position}
            return context.call_activity_with_retry(ACTIVITY_HOLD, retry, payload)
        payload = {**reference, "position": position}
        if step == "commit":
            payload["commit"] = True
        return context.call_activity_with_retry(ACTIVITY_TABLE, retry, payload)

    def busy() -> int:  # the window's slots in use (holders take none)
        return sum(1 for step, _, _ in in_flight.values() if step != "hold")

    while next_position < size or in_flight or waiting:
        # a split table's chunks and commit first (they hold a table's lease), then new tables
        while waiting and busy() < window:
            item = waiting.pop(0)
            in_flight[call(*item)] = item
        while not waiting and next_position < size and busy() < window:
            item = ("table", next_position, -1)
            in_flight[call(*item)] = item
            next_position += 1
        context.set_custom_status(progress())
        finished = yield context.task_any(list(in_flight))
        step, position, chunk = in_flight.pop(finished)
        failed = isinstance(finished.result, BaseException)
        if step == "hold":  # the snapshot's holder ended; the chunks and commit go on as they are
            continue
        if step == "chunk":
            split = splits[position]
            if failed:
                split["failed"] += 1
            else:
                split["done"] += 1
                split["rows"] += int(finished.result.get("rows") or 0)
            if split["done"] + split["failed"] == split["chunks"]:
                waiting.append(("commit", position, -1))  # every chunk landed or gave up
            continue
        if not failed and finished.result.get("status") == SPLIT:
            count = int(finished.result["chunks"])
            splits[position] = {
                "job_id": str(finished.result.get("job_id")),
                "chunks": count,
                "done": 0,
                "failed": 0,
                "rows": 0,
                "hold": bool(finished.result.get("hold")),
            }
            if splits[position]["hold"]:  # first, outside the window: the chunks wait for it
                in_flight[call("hold", position, -1)] = ("hold", position, -1)
            waiting.extend(("chunk", position, i) for i in range(count))
            continue
        splits.pop(position, None)
        if not failed:
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
