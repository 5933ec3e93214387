"""The result of one job: exactly the audit row, plus whether a retry could help."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ingest.vocabulary import Status

AUDIT_COLUMNS = (
    "run_id",
    "job_id",
    "source_type",
    "source_name",
    "table_name",
    "load_type",
    "status",
    "rows_loaded",
    "files_written",
    "watermark_column",
    "watermark_before",
    "watermark_after",
    "load_id",
    "started_at",
    "finished_at",
    "duration_s",
    "error",
    # data trust (ingest.checks.reconcile, ingest.checks.drift)
    "source_rows",
    "reconciled",
    "reconcile_note",
    "schema_changes",
    # keyed tables (ingest.checks.deletes, ingest.checks.table_count)
    "rows_deleted",
    "late_rows",
    "table_rows_source",
    "table_rows_lake",
    "table_reconciled",
    # CDC jobs (ingest.job.cdc): the changes a run landed (deletes: rows_deleted), and the
    # job's replication slot after the run (WAL it keeps on the source, WAL not confirmed)
    "rows_inserted",
    "rows_updated",
    "cdc_slot",
    "cdc_retained_bytes",
    "cdc_lag_bytes",
)
#: longest error text carried in results/audit (Durable payloads stay small)
MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class Watermarks:
    """A load's watermark window: the value it started from and the one it reached ("" when
    unknown: a first run, a FULL load, nothing extracted)."""

    before: str = ""
    after: str = ""


@dataclass(frozen=True)
class Landed:
    """What a load committed to the lake (nothing: 0, 0, "")."""

    rows: int = 0
    files: int = 0
    load_id: str = ""


@dataclass(frozen=True)
class JobResult:
    run_id: str
    job_id: str
    source_type: str
    source_name: str
    table_name: str
    load_type: str
    status: Status
    rows_loaded: int = 0
    files_written: int = 0
    watermark_column: str = ""
    watermark_before: str = ""
    watermark_after: str = ""
    load_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    error: str = ""
    #: data trust: source count of the loaded window, MATCH|MISMATCH|SKIPPED, why, drift
    source_rows: int | None = None
    reconciled: str = ""
    reconcile_note: str = ""
    schema_changes: str = ""
    #: delete markers landed (None: deletes were not detected in this run)
    rows_deleted: int | None = None
    #: rows the lookback caught below the last watermark (None: no lookback)
    late_rows: int | None = None
    #: keyed tables: the source's row count and the current state's, MATCH|MISMATCH
    table_rows_source: int | None = None
    table_rows_lake: int | None = None
    table_reconciled: str = ""
    #: CDC jobs: inserts and updates landed (None: not a CDC job)
    rows_inserted: int | None = None
    rows_updated: int | None = None
    #: CDC jobs: the slot after the run (also telemetry's `IngestionCdcSlot`)
    cdc_slot: str = ""
    cdc_retained_bytes: int | None = None
    cdc_lag_bytes: int | None = None
    #: not an audit column: whether trying again may succeed (Durable retries only these)
    retriable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def audit_row(self) -> dict[str, str]:
        data = self.to_dict()
        return {column: cell_text(data[column]) for column in AUDIT_COLUMNS}


def cell_text(value: Any) -> str:
    """A value as the text of an audit cell or a telemetry property: "" for None, floats
    with three decimals, lists comma-separated."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def short_error(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def failed_result(task: Mapping[str, Any], error: str) -> dict[str, Any]:
    """A FAILED result for a task that produced none itself (its worker or activity died)."""
    job = task["job"]
    return JobResult(
        run_id=task["run_id"],
        job_id=job["job_id"],
        source_type=job["source_type"],
        source_name=job["source_name"],
        table_name=job["table_name"],
        load_type=job["load_type"],
        status=Status.FAILED,
        watermark_column=job.get("watermark_column") or "",
        error=short_error(error),
    ).to_dict()


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    results = list(results)
    failed = [r["job_id"] for r in results if r.get("status") == Status.FAILED]
    return {
        "jobs_total": len(results),
        "jobs_succeeded": sum(1 for r in results if r.get("status") == Status.SUCCESS),
        "jobs_failed": len(failed),
        "jobs_skipped": sum(1 for r in results if r.get("status") == Status.SKIPPED),
        # loaded but flagged (INGEST_RECONCILE=WARN); not failed: the exit code stays 0
        "jobs_warned": sum(1 for r in results if r.get("status") == Status.WARN),
        "rows_loaded": sum(as_int(r.get("rows_loaded")) for r in results),
        "failed_jobs": failed,
    }


def as_int(value: Any) -> int:
    """A count from a result or an audit CSV cell ("", "12", "12.0", 12); 0 when unreadable."""
    try:
        return int(float(value or 0))
    except (TypeError, ValueError):
        return 0


def as_float(value: Any) -> float:
    """A number from a result or an audit CSV cell; 0.0 when unreadable."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0
