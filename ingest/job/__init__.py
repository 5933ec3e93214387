"""Step 2 of a run: one job, one dlt pipeline copying one table into the lake.

    result = run_job(task)        # the task from `ingest.plan`; the result is the audit row

Modules: `run` (the steps of a job and its result), `progress` (rows seen while extracting,
the boundary record), `errors` (what a failure is reported as).
"""

from ingest.job.errors import classify_error
from ingest.job.run import ON_BUSY, run_job

__all__ = ["ON_BUSY", "classify_error", "run_job"]
