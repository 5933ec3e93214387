"""Compact outcomes: what activities and sub-orchestrations hand back through Durable.

Full job results (the audit rows) live in the run store (`ingest.app.runstore`); the orchestrations
only see a table's job id, status and counts, and a batch's totals. Everything here is small
and bounded: a batch's outcome lists at most its own failed job ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.model.result import JobResult, as_int, check_projection
from ingest.model.summary import Tally

COMPACT_KEYS = check_projection(
    ("job_id", "status", "rows_loaded", "files_written"), "COMPACT_KEYS"
)
#: the compact status of a table whose load was split: its chunks and commit run next
SPLIT = "SPLIT"
#: longest list of failed job ids a run's output carries (the audit has them all)
MAX_FAILED_JOBS_LISTED = 50


def compact_result(result: JobResult) -> dict[str, Any]:
    """What `ingest_table` returns to its orchestration for one table (JSON)."""
    data = result.to_dict()
    return {key: str(data[key]) if key == "status" else data[key] for key in COMPACT_KEYS}


def empty_tally() -> dict[str, Any]:
    return {"done": 0, "succeeded": 0, "failed": 0, "rows_loaded": 0, "failed_jobs": []}


def add_result(total: dict[str, Any], result: Mapping[str, Any]) -> None:
    """Count one table's compact result (`compact_result`) into a payload's tally, by the one
    rule of `Tally`."""
    one = Tally()
    one.add(result.get("status"), result.get("rows_loaded"), str(result.get("job_id")))
    total["done"] += one.total
    total["succeeded"] += one.succeeded
    total["failed"] += one.failed
    total["failed_jobs"].extend(one.failed_jobs)
    total["rows_loaded"] += one.rows_loaded


def add_tally(total: dict[str, Any], part: Mapping[str, Any], keep_jobs: bool = True) -> None:
    for key in ("done", "succeeded", "failed", "rows_loaded"):
        total[key] += as_int(part.get(key))
    if keep_jobs:
        total["failed_jobs"].extend(part.get("failed_jobs") or [])


def capped_jobs(job_ids: list[str]) -> dict[str, Any]:
    """`failed_jobs` for a payload: at most MAX_FAILED_JOBS_LISTED ids, and how many in all."""
    out: dict[str, Any] = {"failed_jobs": list(job_ids[:MAX_FAILED_JOBS_LISTED])}
    if len(job_ids) > MAX_FAILED_JOBS_LISTED:
        out["failed_jobs_total"] = len(job_ids)
    return out


def compact_views(report: dict[str, Any]) -> dict[str, Any]:
    """The views refresh report (ingest.views.refresh) for a payload: counts, and at most
    MAX_FAILED_JOBS_LISTED of its per-job errors (a first run lists every job as skipped)."""
    out = {k: v for k, v in report.items() if k not in ("skipped", "errors")}
    if "skipped" in report:
        out["skipped"] = len(report["skipped"] or [])
    errors = list(report.get("errors") or [])
    if errors:
        out["errors"] = errors[:MAX_FAILED_JOBS_LISTED]
        if len(errors) > MAX_FAILED_JOBS_LISTED:
            out["errors_total"] = len(errors)
    return out
