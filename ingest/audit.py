"""Step 3 of a run: append one audit row per job to `<lake>/metadata/audit_<YYYYMMDD>.csv`.

Appending is read + merge + write of the day's file: rows already there are kept, and a row
for a (run_id, job_id) that is already present is not written twice, so `write_audit` can be
retried (Durable activities run at least once). Runs are one at a time (the function app
refuses overlapping runs), so there is no concurrent writer of the same day's file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ingest.destination import Destination
from ingest.results import AUDIT_COLUMNS, JobResult, as_int

log = logging.getLogger(__name__)

AUDIT_DIR = "metadata"


def audit_file_name(day: dt.date) -> str:
    return f"audit_{day:%Y%m%d}.csv"


def _parse_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _render(rows: Iterable[Mapping[str, str]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return buffer.getvalue()


def read_audit(dest: Destination, day: dt.date, fs: Any = None) -> list[dict[str, str]]:
    fs = fs or dest.filesystem()
    path = dest.path(AUDIT_DIR, audit_file_name(day))
    try:
        with fs.open(path, "r", encoding="utf-8", newline="") as handle:
            return _parse_rows(handle.read())
    except FileNotFoundError:
        return []


def append_audit(
    dest: Destination, results: Iterable[Mapping[str, Any]], day: dt.date
) -> tuple[str, int]:
    """Append the results' audit rows to the day's file; returns (path, rows added)."""
    fs = dest.filesystem()
    path = dest.path(AUDIT_DIR, audit_file_name(day))
    existing = read_audit(dest, day, fs)
    present = {(row.get("run_id"), row.get("job_id")) for row in existing}
    columns = list(AUDIT_COLUMNS)
    # keep columns an older/newer writer added, never drop data
    for row in existing:
        for column in row:
            if column and column not in columns:
                columns.append(column)
    new_rows = []
    for result in results:
        row = JobResult.from_dict(result).audit_row()
        for column, value in result.items():  # extra audit columns from later features
            if column not in row and column != "retriable" and not column.startswith("_"):
                row[column] = "" if value is None else str(value)
                if column not in columns:
                    columns.append(column)
        key = (row["run_id"], row["job_id"])
        if key in present:
            continue
        present.add(key)
        new_rows.append(row)
    if new_rows:
        fs.makedirs(dest.path(AUDIT_DIR), exist_ok=True)
        with fs.open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(_render([*existing, *new_rows], columns))
    return path, len(new_rows)


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    results = list(results)
    failed = [r["job_id"] for r in results if r.get("status") == "FAILED"]
    return {
        "jobs_total": len(results),
        "jobs_succeeded": sum(1 for r in results if r.get("status") == "SUCCESS"),
        "jobs_failed": len(failed),
        "jobs_skipped": sum(1 for r in results if r.get("status") == "SKIPPED"),
        # loaded but flagged (INGEST_RECONCILE=WARN); not failed: the exit code stays 0
        "jobs_warned": sum(1 for r in results if r.get("status") == "WARN"),
        "rows_loaded": sum(as_int(r.get("rows_loaded")) for r in results),
        "failed_jobs": failed,
    }


def write_audit(run: Mapping[str, Any]) -> dict[str, Any]:
    """Append the run's results to the audit and return the run summary.

    `run`: {"run_id", "destination", "results": [job results], "started_at": ISO (optional;
    picks the audit file's date, default today UTC)}.
    """
    dest = Destination.from_url(str(run["destination"]))
    results = list(run.get("results") or [])
    started = run.get("started_at")
    day = (
        dt.datetime.fromisoformat(str(started)).astimezone(dt.UTC).date()
        if started
        else dt.datetime.now(dt.UTC).date()
    )
    path, added = append_audit(dest, results, day)
    log.info("audit: %d row(s) appended to %s", added, path)
    summary = summarize(results)
    summary.update(run_id=run["run_id"], audit_path=path, audit_rows_added=added)
    try:  # telemetry (a no-op without APPLICATIONINSIGHTS_CONNECTION_STRING) never fails the audit
        from ingest.telemetry import emit_run_telemetry

        if added or not results:  # a retried write_audit (rows already there) sends nothing twice
            emit_run_telemetry(run, results, summary)
    except Exception as exc:
        log.warning("telemetry: run %s not sent to Application Insights: %s", run["run_id"], exc)
    return summary
