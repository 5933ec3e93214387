"""Step 3 of a run: append one audit row per job to `<lake>/metadata/audit_<YYYYMMDD>.csv`.

The day's file is the one file users read. Appending is read + merge + write, made atomic so
that no row is ever lost, whatever runs at the same moment (a retried activity, the nightly
run and a manual one, the CLI and the app on one lake):
- blob storage: an optimistic, conditional write. The file is read with its ETag and written
  back only if it is unchanged (`If-Match`; `If-None-Match: *` for a new file); a writer that
  lost the race reads again and merges again. No lease to expire or to wait for, and a
  crashed writer leaves nothing behind;
- local lakes: an exclusive `fcntl.flock` on `audit_<YYYYMMDD>.csv.lock` around the read and
  the write, and the new file replaces the old one atomically (readers never see half a file).

A row is written once per load: rows already present for the same (run_id, job_id, load_id)
(or, for a result without a load, the same run_id, job_id, status and started_at) are not
written again, so `write_audit` can be retried.

Every cell is quoted and written through `ingest.cells.encode_cell` (no text from a config or
an error runs as a formula when the file is opened in a spreadsheet) and read back through
`decode_cell`: any text round-trips, line breaks, carriage returns and quotes included.
Whatever the storage refuses (a read-only lake, a missing role, a full disk, an unreachable
account) ends the audit step with an `AuditWriteError` that names the file and what to do,
not a traceback, and leaves no scratch file behind.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ingest import telemetry
from ingest.cells import decode_cell, encode_cell
from ingest.errors import IngestError
from ingest.identifiers import lake_name
from ingest.job.compaction import COMPACT_TASK
from ingest.lake.atomic import update_text
from ingest.lake.destination import Destination
from ingest.lake.layout import LOADS_DIR, METADATA_DIR, audit_file_name, marker_name
from ingest.lake.lease import read_commit_log
from ingest.lake.loads import count_rows, load_files
from ingest.limits import shorten
from ingest.model.result import AUDIT_COLUMNS, JobResult
from ingest.model.run import Run
from ingest.model.summary import RunSummary
from ingest.model.task import BACKFILL
from ingest.vocabulary import LoadType, Reconciled, Status

log = logging.getLogger(__name__)


class AuditWriteError(IngestError):
    """The audit file cannot be written (read-only lake, missing permission)."""


def _parse_rows(text: str) -> list[dict[str, str]]:
    """The rows of an audit file, each cell as the text it was written from."""
    return [
        {decode_cell(k): decode_cell(v or "") for k, v in row.items() if k is not None}
        for row in csv.DictReader(io.StringIO(text))
    ]


def _render(rows: Iterable[Mapping[str, str]], columns: list[str]) -> str:
    """Every cell quoted (a carriage return, a comma or a quote in any text never splits a row)
    and never run as a formula (`ingest.cells.encode_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=columns,
        extrasaction="ignore",
        lineterminator="\n",
        quoting=csv.QUOTE_ALL,
    )
    writer.writerow({c: encode_cell(c) for c in columns})
    for row in rows:
        writer.writerow({c: encode_cell(row.get(c, "")) for c in columns})
    return buffer.getvalue()


def read_audit(dest: Destination, day: dt.date, fs: Any = None) -> list[dict[str, str]]:
    fs = fs or dest.filesystem()
    path = dest.path(METADATA_DIR, audit_file_name(day))
    try:
        with fs.open(path, "r", encoding="utf-8", newline="") as handle:
            return _parse_rows(handle.read())
    except FileNotFoundError:
        return []


def _row_key(row: Mapping[str, Any]) -> tuple[str, ...]:
    """What makes an audit row the same row (see module doc)."""
    run_id, job_id = str(row.get("run_id") or ""), str(row.get("job_id") or "")
    if row.get("load_id"):
        return (run_id, job_id, str(row["load_id"]))
    return (run_id, job_id, "", str(row.get("status") or ""), str(row.get("started_at") or ""))


def _audit_rows(results: Iterable[JobResult]) -> list[dict[str, str]]:
    return [result.audit_row() for result in results]


def _is_recovered(row: Mapping[str, Any]) -> bool:
    return str(row.get("reconcile_note") or "").startswith(RECOVERED)


def merge(existing_text: str | None, rows: list[dict[str, str]]) -> tuple[str | None, int]:
    """The day's file with `rows` appended: (new text or None when nothing is new, rows added).
    Rows already there are kept as they are, except a recovered row (see `recover_rows`),
    which the run's own row for the same load replaces; columns an older or newer writer
    added stay."""
    existing = _parse_rows(existing_text or "")
    present = {_row_key(row): index for index, row in enumerate(existing)}
    columns = list(AUDIT_COLUMNS)
    for row in [*existing, *rows]:
        for column in row:
            if column and column not in columns:
                columns.append(column)
    new_rows = []
    replaced = 0
    for row in rows:
        key = _row_key(row)
        if key not in present:
            present[key] = -1
            new_rows.append(row)
        elif present[key] >= 0 and _is_recovered(existing[present[key]]):
            if not _is_recovered(row):
                existing[present[key]] = row
                replaced += 1
    if not new_rows and not replaced:
        return None, 0
    return _render([*existing, *new_rows], columns), len(new_rows)


def append_audit(dest: Destination, results: Iterable[JobResult], day: dt.date) -> tuple[str, int]:
    """Append the results' audit rows to the day's file; returns (path, rows added)."""

    path = dest.path(METADATA_DIR, audit_file_name(day))
    rows = _audit_rows(results)
    added = 0

    def change(text: str | None) -> str | None:
        nonlocal added
        new_text, added = merge(text, rows)
        return new_text

    try:
        update_text(dest, (METADATA_DIR, audit_file_name(day)), change)
    except Exception as exc:  # every storage failure: a message that says what to do
        raise AuditWriteError(_not_written(dest, path, exc)) from None
    return path, added


#: errno of a full disk / quota and of a read-only file system
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _not_written(dest: Destination, path: str, exc: BaseException) -> str:
    """What failed, where, and what to do (the results are printed by the caller)."""
    said = str(exc).strip()
    what = f"{type(exc).__name__}: {shorten(said.splitlines()[0] if said else '', 200)}"
    code = getattr(exc, "errno", None)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, PermissionError) or code in _READ_ONLY or status == 403:
        todo = (
            "the lake is read-only for this process: this user needs write permission on the "
            "folder (and a file system mounted read-write)"
            if dest.protocol == "file"
            else "the identity needs the 'Storage Blob Data Contributor' role on the lake"
        )
    elif code in _NO_SPACE:
        todo = "the lake's disk is full: free space (or raise the quota) and run again"
    elif dest.protocol == "file":
        todo = "check the lake folder and its disk, then run again"
    else:
        todo = "check that the storage account is reachable from here, then run again"
    return (
        f"cannot write the audit file {path} in the lake {dest.display_url} ({what}); {todo}. "
        "The jobs' results are listed above; nothing was appended to the audit (loads that "
        "committed are in the lake; the next audit write of the same run adds their rows)"
    )


#: the reconcile_note of an audit row written for a load whose run ended before its audit
RECOVERED = "recovered: "
#: how far back the audit step looks for committed loads without an audit row
RECOVER_DAYS = 2


def recover_rows(
    dest: Destination, results: Iterable[JobResult], today: dt.date
) -> list[tuple[dt.date, JobResult]]:
    """Audit rows for loads of this run's tables that committed in the last RECOVER_DAYS days
    without ever getting one (a run killed, or out of memory, after its commit and before its
    audit step): found in each table's commit log (`ingest.lake.commits`), with their rows
    counted from the load's files. Each is dated by its load; a row the load's own run writes
    later replaces it (`merge`)."""
    days = [today - dt.timedelta(days=offset) for offset in range(RECOVER_DAYS)]
    fs = dest.filesystem()
    audited = {
        row.get("load_id")
        for day in days
        for row in read_audit(dest, day, fs)
        if row.get("load_id")
    }
    found: list[tuple[dt.date, JobResult]] = []
    seen: set[tuple[str, str]] = set()
    for job in results:
        table = lake_name(job.table_name)
        if (job.source_name, table) in seen:
            continue
        seen.add((job.source_name, table))
        log_ = read_commit_log(dest, job.source_name, table)
        for commit in log_.commits if log_ else ():
            day = dt.datetime.fromtimestamp(float(commit.load_id), dt.UTC).date()
            if commit.load_id in audited or day not in days or commit.task == COMPACT_TASK:
                continue  # audited, too old, or a compacted base (no load of the source)
            marker = dest.path(
                job.source_name, LOADS_DIR, marker_name(commit.schema, commit.load_id)
            )
            if not fs.exists(marker):
                continue  # never completed: the job's next run removes it
            files = load_files(dest, job.source_name, table, commit.load_id, fs)
            backfill = commit.task.startswith(BACKFILL)
            row = JobResult(
                run_id=commit.run_id,
                job_id=job.job_id,
                source_type=job.source_type,
                source_name=job.source_name,
                table_name=job.table_name,
                load_type=LoadType.BACKFILL if backfill else job.load_type,
                status=Status.WARN,
                rows_loaded=count_rows(dest, files, fs),
                files_written=len(files),
                watermark_column=job.watermark_column,
                load_id=commit.load_id,
                started_at=dt.datetime.fromtimestamp(float(commit.load_id), dt.UTC).isoformat(
                    timespec="seconds"
                ),
                reconciled=Reconciled.SKIPPED,
                reconcile_note=(
                    f"{RECOVERED}run {commit.run_id} committed this load and ended before it "
                    "wrote its audit row; found by a later run in the table's commit log. The "
                    "load's checks (reconciliation, schema) did not run"
                ),
            )
            found.append((day, row))
            audited.add(commit.load_id)
    return found


def write_audit(run: Run) -> RunSummary:
    """Append the run's results to the audit and return the run summary. The audit file's
    date is the day the run started (`run.started_at`; none: today, UTC). A run that waited
    for another run has its wait in each row's `run_note`."""
    dest = Destination.from_url(run.destination)
    results = list(run.results)
    if run.waited is not None:
        results = [replace(result, run_note=run.waited.note) for result in results]
        run = replace(run, results=tuple(results))
    started = run.started_at
    day = (
        dt.datetime.fromisoformat(started).astimezone(dt.UTC).date()
        if started
        else dt.datetime.now(dt.UTC).date()
    )
    path, added = append_audit(dest, results, day)
    log.info("audit: %d row(s) appended to %s", added, path)
    try:  # loads of earlier runs that committed without an audit row (never fails the audit)
        recovered = recover_rows(dest, results, day)
    except Exception as exc:
        log.warning("audit: committed loads without an audit row not looked for: %s", exc)
        recovered = []
    for load_day, row in recovered:
        append_audit(dest, [row], load_day)
        log.warning(
            "audit: load %s of job %s (run %s) committed without an audit row; row added",
            row.load_id,
            row.job_id,
            row.run_id,
        )
    summary = replace(RunSummary.of(run.run_id, results), audit_path=path, audit_rows_added=added)
    try:  # telemetry (a no-op without APPLICATIONINSIGHTS_CONNECTION_STRING) never fails the audit
        if added or not results:  # a retried write_audit (rows already there) sends nothing twice
            telemetry.emit_run_telemetry(run, summary)
    except Exception as exc:
        log.warning("telemetry: run %s not sent to Application Insights: %s", run.run_id, exc)
    return summary
