"""One tally of a run's job results, with one rule for each status, and the run's summary.

SUCCESS: loaded. WARN: loaded, and flagged (INGEST_RECONCILE=WARN): it counts as succeeded
*and* as warned; it never fails the run (exit code 0). FAILED: not loaded; it fails the run.
SKIPPED: nothing to do (another run holds the job). The CLI's summary, the Durable outcomes
and the history of past runs all count with `Tally.add`; `RunSummary` is the tally of a run
as `write_audit` returns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.model.result import JobResult, as_int
from ingest.vocabulary import Status


@dataclass
class Tally:
    """Counts of job results by the one rule above."""

    total: int = 0
    succeeded: int = 0
    warned: int = 0
    failed: int = 0
    skipped: int = 0
    rows_loaded: int = 0
    failed_jobs: list[str] = field(default_factory=list)

    def add(self, status: str | None, rows_loaded: Any = 0, job_id: str = "") -> None:
        self.total += 1
        if status in (Status.SUCCESS, Status.WARN):
            self.succeeded += 1
            if status == Status.WARN:
                self.warned += 1
        elif status == Status.FAILED:
            self.failed += 1
            self.failed_jobs.append(job_id)
        elif status == Status.SKIPPED:
            self.skipped += 1
        self.rows_loaded += as_int(rows_loaded)

    def add_result(self, result: JobResult) -> None:
        self.add(result.status, result.rows_loaded, result.job_id)

    @classmethod
    def of(cls, results: Iterable[JobResult]) -> Tally:
        tally = cls()
        for result in results:
            tally.add_result(result)
        return tally

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Tally:
        """The tally of audit rows as read from the audit files (text cells)."""
        tally = cls()
        for row in rows:
            tally.add(row.get("status"), row.get("rows_loaded"), str(row.get("job_id")))
        return tally


@dataclass(frozen=True)
class RunSummary:
    """What a run did, counted by `Tally`'s rule; what `write_audit` returns and the CLI and
    the Durable orchestration print (its `to_dict()`)."""

    run_id: str
    jobs_total: int = 0
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    jobs_skipped: int = 0
    #: loaded but flagged (INGEST_RECONCILE=WARN): also among the succeeded; exit code stays 0
    jobs_warned: int = 0
    rows_loaded: int = 0
    failed_jobs: tuple[str, ...] = ()
    #: the audit file the rows went to ("": not written)
    audit_path: str = ""
    audit_rows_added: int = 0
    #: why the audit could not be written ("": it was)
    audit_error: str = ""
    #: the views refresh and the HTML report after the audit (their JSON reports; None: not run)
    views: Mapping[str, Any] | None = None
    report: Mapping[str, Any] | None = None

    @classmethod
    def of_tally(cls, run_id: str, tally: Tally) -> RunSummary:
        return cls(
            run_id=run_id,
            jobs_total=tally.total,
            jobs_succeeded=tally.succeeded,
            jobs_failed=tally.failed,
            jobs_skipped=tally.skipped,
            jobs_warned=tally.warned,
            rows_loaded=tally.rows_loaded,
            failed_jobs=tuple(tally.failed_jobs),
        )

    @classmethod
    def of(cls, run_id: str, results: Iterable[JobResult]) -> RunSummary:
        return cls.of_tally(run_id, Tally.of(results))

    @property
    def failed_run(self) -> bool:
        """Whether the run failed (exit code 1): a job failed, or the audit was not written."""
        return bool(self.jobs_failed or self.audit_error)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "jobs_total": self.jobs_total,
            "jobs_succeeded": self.jobs_succeeded,
            "jobs_failed": self.jobs_failed,
            "jobs_skipped": self.jobs_skipped,
            "jobs_warned": self.jobs_warned,
            "rows_loaded": self.rows_loaded,
            "failed_jobs": list(self.failed_jobs),
            "run_id": self.run_id,
        }
        if self.audit_path:
            data.update(audit_path=self.audit_path, audit_rows_added=self.audit_rows_added)
        if self.audit_error:
            data["audit_error"] = self.audit_error
        if self.views is not None:
            data["views"] = dict(self.views)
        if self.report is not None:
            data["report"] = dict(self.report)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        views, report = data.get("views"), data.get("report")
        return cls(
            run_id=str(data.get("run_id") or ""),
            jobs_total=as_int(data.get("jobs_total")),
            jobs_succeeded=as_int(data.get("jobs_succeeded")),
            jobs_failed=as_int(data.get("jobs_failed")),
            jobs_skipped=as_int(data.get("jobs_skipped")),
            jobs_warned=as_int(data.get("jobs_warned")),
            rows_loaded=as_int(data.get("rows_loaded")),
            failed_jobs=tuple(str(j) for j in data.get("failed_jobs") or ()),
            audit_path=str(data.get("audit_path") or ""),
            audit_rows_added=as_int(data.get("audit_rows_added")),
            audit_error=str(data.get("audit_error") or ""),
            views=dict(views) if views is not None else None,
            report=dict(report) if report is not None else None,
        )


def summarize(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts of audit rows read from the audit files, in `RunSummary`'s JSON shape
    without a run id (GET /api/runs/{id} of a run Durable no longer knows)."""
    data = RunSummary.of_tally("", Tally.of_rows(rows)).to_dict()
    del data["run_id"]
    return data
