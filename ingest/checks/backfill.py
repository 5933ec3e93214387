"""Backfill: re-extract a watermark range of an INCREMENTAL job into the lake, leaving the
job's incremental state (its watermark) exactly where it was.

How: the range runs as its own dlt pipeline, `<source>__<table>__backfill`, that never
restores or touches the job's state; it writes into the same dataset and table folder
(same layout), with load markers under its own schema name. `ingest.lake.loads` counts those
loads as completed for the job, so the job's next run never removes them as leftovers.
Audit rows of a backfill carry `load_type = BACKFILL` and the range in the watermark columns.

The range is `[from, to)` on the job's watermark column (`to` omitted: everything from
`from` on). The same task shape as a run (`ingest.plan.plan`), with `"backfill":
{"from", "to"}` on each task, so the CLI and `POST /api/runs` share it.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ingest.config import JobConfig, load_config
from ingest.errors import RequestError
from ingest.plan import new_run_id
from ingest.tasks import Backfill, Task


def _comparable(text: str) -> Any:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        pass
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def check_range(job: JobConfig, start: Any, end: Any) -> tuple[str, str | None]:
    """Validate a backfill request for `job`; returns (from, to) as text."""
    if not job.is_incremental:
        raise RequestError(
            f"job {job.job_id} is FULL: every run reloads the whole table; backfill is for "
            "INCREMENTAL jobs (use run --full-refresh to reload a job from initial_watermark)"
        )
    start_text = "" if start is None else str(start).strip()
    end_text = None if end in (None, "") else str(end).strip()
    if not start_text:
        raise RequestError("backfill needs a start watermark ('from')")
    if end_text is not None:
        low, high = _comparable(start_text), _comparable(end_text)
        if low is not None and high is not None and type(low) is type(high) and low >= high:
            raise RequestError(
                f"backfill range is empty: 'from' {start_text} is not before 'to' {end_text}"
            )
    return start_text, end_text


def plan_backfill(
    config_path: str,
    destination: str,
    job_id: str,
    start: Any,
    end: Any = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The plan of a backfill run (same shape as `ingest.plan.plan()`): one task for `job_id`
    with `"backfill": {"from", "to"}`. Raises ConfigError / RequestError (nothing runs)."""
    config = load_config(config_path)
    try:
        job = config.job(job_id)
    except KeyError:
        known = ", ".join(j.job_id for j in config.jobs)
        raise RequestError(f"unknown job id: {job_id}; known: {known}") from None
    start_text, end_text = check_range(job, start, end)
    run_id = run_id or new_run_id()
    task = Task(run_id, job, destination, False, config.path, Backfill(start_text, end_text))
    warnings = list(config.warnings)
    if not job.enabled:
        warnings.append(f"job {job.job_id} is disabled (enabled = N); backfilling it as asked")
    return {
        "run_id": run_id,
        "destination": destination,
        "config_path": config.path,
        "full_refresh": False,
        "backfill": {"job": job.job_id, "from": start_text, "to": end_text},
        "tasks": [task.to_dict()],
        "skipped": [],
        "warnings": warnings,
    }
