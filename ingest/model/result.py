"""The result of one job: exactly the audit row, plus whether a retry could help, and (while a
split load's chunks still run) the plan of that load.

The audit's columns are `JobResult`'s fields, in their order (`AUDIT_COLUMNS`); a field marked
`NOT_AUDITED` is not one. Every projection of a result (telemetry, run status, what activities
hand back) names fields only: `check_projection` refuses another name at import."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ingest.model.split import SplitPlan
from ingest.vocabulary import Status

if TYPE_CHECKING:  # a task's type only: this module stays light (entry points load it)
    from ingest.model.task import Task

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


#: a JobResult field's metadata: not an audit column
NOT_AUDITED = {"audit": False}


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
    #: split loads (ingest.job.split): the chunks one load was read in (None: not split)
    chunks: int | None = None
    #: a note on the whole run (a scheduled run that waited for another run)
    run_note: str = ""
    #: not an audit column: whether trying again may succeed (Durable retries only these)
    retriable: bool = field(default=False, metadata=NOT_AUDITED)
    #: not an audit column: the job split its load (`ingest.job.split`) and has not ended: its
    #: chunks run next, then its commit, whose result is the job's (and has no `split`)
    split: SplitPlan | None = field(default=None, metadata=NOT_AUDITED)

    @property
    def ended(self) -> bool:
        """Whether this is the job's final result (an audit row), not a split load's plan."""
        return self.split is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["split"] = self.split.to_dict() if self.split else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        values = {k: v for k, v in data.items() if k in RESULT_FIELDS}
        values["status"] = Status(values["status"])
        values["split"] = SplitPlan.from_dict(values.get("split"))
        return cls(**values)

    def audit_row(self) -> dict[str, str]:
        if not self.ended:
            raise ValueError(f"job {self.job_id} split its load and has not ended: no audit row")
        data = self.to_dict()
        return {column: cell_text(data[column]) for column in AUDIT_COLUMNS}


#: the audit's columns: JobResult's fields but those marked NOT_AUDITED, in their order
AUDIT_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(JobResult) if f.metadata.get("audit", True)
)
RESULT_FIELDS: frozenset[str] = frozenset(f.name for f in fields(JobResult))


def check_projection(names: Iterable[str], what: str) -> tuple[str, ...]:
    """`names` (a projection of a result: telemetry, run status, ...) if each is a field of
    JobResult; ValueError naming the others (raised at import: a renamed field cannot be
    forgotten)."""
    names = tuple(names)
    unknown = [n for n in names if n not in RESULT_FIELDS]
    if unknown:
        raise ValueError(f"{what} names {unknown}: not fields of JobResult")
    return names


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


def failed_result(task: Task, error: str) -> JobResult:
    """A FAILED result for a task that produced none itself (its worker or activity died)."""
    job = task.job
    return JobResult(
        run_id=task.run_id,
        job_id=job.job_id,
        source_type=job.source_type,
        source_name=job.source_name,
        table_name=job.table_name,
        load_type=job.load_type,
        status=Status.FAILED,
        watermark_column=job.watermark_column or "",
        error=short_error(error),
    )


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


@dataclass(frozen=True)
class ChunkResult:
    """The result of one chunk of a split load (`ingest.job.chunk`): not an audit row; the
    split load's commit reports the job's `JobResult`."""

    job_id: str
    chunk: int
    chunks: int = 0
    status: Status = Status.FAILED
    rows: int = 0
    #: an earlier attempt had landed it (this one only reported it)
    already_landed: bool = False
    duration_s: float = 0.0
    error: str = ""
    retriable: bool = False

    @classmethod
    def failed(cls, job_id: str, chunk: int, error: str, retriable: bool = True) -> ChunkResult:
        """A chunk that produced no result itself (its worker died, or it raised)."""
        return cls(job_id, chunk, error=error, retriable=retriable)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}
