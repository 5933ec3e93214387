"""Run history from the audit CSVs in the lake (`<lake>/metadata/audit_YYYYMMDD.csv`).

One reader for the command line (`python -m ingest history`) and the function app
(`GET /api/runs/{id}` falls back to `run_results` when Durable no longer knows the run).
Rows are returned as the audit wrote them (text values, columns of `ingest.model.result`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ingest.audit import read_audit
from ingest.errors import RequestError
from ingest.lake.destination import Destination
from ingest.model.summary import Tally
from ingest.vocabulary import Status

DEFAULT_DAYS = 7
MAX_DAYS = 366


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _check_days(days: int) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise RequestError(f"days must be a whole number from 1 to {MAX_DAYS}, got {days!r}")
    return days


def audit_days(days: int, today: dt.date | None = None) -> list[dt.date]:
    """The UTC dates of the last `days` daily audit files, newest first (today included)."""
    today = today or _today()
    return [today - dt.timedelta(days=offset) for offset in range(_check_days(days))]


def _rows(dest: Destination, days: int, today: dt.date | None) -> Iterator[dict[str, str]]:
    fs = dest.filesystem()
    for day in audit_days(days, today):
        yield from read_audit(dest, day, fs)


def _newest_first(rows: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    return sorted(
        (dict(r) for r in rows),
        key=lambda r: (r.get("started_at") or "", r.get("run_id") or "", r.get("job_id") or ""),
        reverse=True,
    )


def run_results(
    destination: str, run_id: str, days: int = DEFAULT_DAYS, *, today: dt.date | None = None
) -> list[dict[str, str]]:
    """The audit rows of run `run_id` (one per job, in job order), searching the last `days`
    daily files; empty when the run is not there."""
    dest = Destination.from_url(destination)
    found: dict[str, dict[str, str]] = {}
    for row in _rows(dest, days, today):
        if row.get("run_id") == run_id:
            found.setdefault(row.get("job_id") or "", dict(row))
    return [found[key] for key in sorted(found)]


def recent(
    destination: str,
    days: int = DEFAULT_DAYS,
    job: str | Sequence[str] | None = None,
    *,
    today: dt.date | None = None,
) -> list[dict[str, str]]:
    """Audit rows of the last `days` days (optionally only job id(s) `job`), newest first."""
    dest = Destination.from_url(destination)
    wanted = {job} if isinstance(job, str) else set(job or ())
    rows = (r for r in _rows(dest, days, today) if not wanted or r.get("job_id") in wanted)
    return _newest_first(rows)


def failure_summary(rows: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """Per job with at least one FAILED row: how many runs failed out of how many, the last
    failure (time, run, error) and the job's latest status. Most failures first."""
    jobs: dict[str, dict[str, Any]] = {}
    for row in _newest_first(rows):  # newest first: the first row seen is the latest
        job_id = row.get("job_id") or ""
        entry = jobs.setdefault(
            job_id,
            {
                "job_id": job_id,
                "source_name": row.get("source_name", ""),
                "table_name": row.get("table_name", ""),
                "runs": 0,
                "failures": 0,
                "latest_status": row.get("status", ""),
                "last_failed_at": "",
                "last_failed_run_id": "",
                "last_error": "",
            },
        )
        entry["runs"] += 1
        if row.get("status") == Status.FAILED:
            entry["failures"] += 1
            if not entry["last_failed_run_id"]:
                entry["last_failed_at"] = row.get("started_at", "")
                entry["last_failed_run_id"] = row.get("run_id", "")
                entry["last_error"] = row.get("error", "")
    failed = [entry for entry in jobs.values() if entry["failures"]]
    return sorted(failed, key=lambda e: (-e["failures"], e["job_id"]))


def run_summaries(rows: Iterable[Mapping[str, str]]) -> list[dict[str, Any]]:
    """One line per run: start, jobs, successes, failures, rows. Newest first."""
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        run_id = row.get("run_id") or ""
        entry = runs.setdefault(
            run_id,
            {
                "run_id": run_id,
                "started_at": row.get("started_at", ""),
                "jobs": 0,
                "succeeded": 0,
                "warned": 0,
                "failed": 0,
                "skipped": 0,
                "rows_loaded": 0,
                "_tally": Tally(),
            },
        )
        started = row.get("started_at") or ""
        if started and (not entry["started_at"] or started < entry["started_at"]):
            entry["started_at"] = started
        tally: Tally = entry["_tally"]
        tally.add(row.get("status"), row.get("rows_loaded"), str(row.get("job_id")))
        entry.update(
            jobs=tally.total,
            succeeded=tally.succeeded,
            warned=tally.warned,
            failed=tally.failed,
            skipped=tally.skipped,
            rows_loaded=tally.rows_loaded,
        )
    summaries = [{k: v for k, v in e.items() if k != "_tally"} for e in runs.values()]
    return sorted(summaries, key=lambda e: (e["started_at"], e["run_id"]), reverse=True)
