"""One tally of a run's job results, with one rule for each status.

SUCCESS: loaded. WARN: loaded, and flagged (INGEST_RECONCILE=WARN): it counts as succeeded
*and* as warned; it never fails the run (exit code 0). FAILED: not loaded; it fails the run.
SKIPPED: nothing to do (another run holds the job). The CLI's summary, the Durable outcomes
and the history of past runs all count with `Tally.add`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.model.result import as_int
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

    def add_result(self, result: Mapping[str, Any]) -> None:
        self.add(result.get("status"), result.get("rows_loaded"), str(result.get("job_id")))

    @classmethod
    def of(cls, results: Iterable[Mapping[str, Any]]) -> Tally:
        tally = cls()
        for result in results:
            tally.add_result(result)
        return tally


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The run summary the CLI prints and `write_audit` returns."""
    tally = Tally.of(results)
    return {
        "jobs_total": tally.total,
        "jobs_succeeded": tally.succeeded,
        "jobs_failed": tally.failed,
        "jobs_skipped": tally.skipped,
        # loaded but flagged (INGEST_RECONCILE=WARN): also among the succeeded; the exit code
        # stays 0
        "jobs_warned": tally.warned,
        "rows_loaded": tally.rows_loaded,
        "failed_jobs": tally.failed_jobs,
    }
