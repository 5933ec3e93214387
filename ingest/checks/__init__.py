"""Data trust: every job's checks, so a wrong load never passes for a right one.

    checks = JobChecks(task, builder, secrets, dest)   # see job_checks for the call order

Modules: `reconcile` (source rows of exactly the loaded window against the rows that landed),
`drift` (schema changes against the job's previous schema, per `schema_policy`), `backfill`
(re-extract a watermark range without moving the job's state), `job_checks` (the checks of one
job run, called by `ingest.job`), `events` (their telemetry).
"""

from ingest.checks.backfill import check_range
from ingest.checks.drift import Diff
from ingest.checks.job_checks import Checked, JobChecks
from ingest.checks.reconcile import BOUNDARY_DROPPED, Outcome

__all__ = [
    "BOUNDARY_DROPPED",
    "Checked",
    "Diff",
    "JobChecks",
    "Outcome",
    "check_range",
]
