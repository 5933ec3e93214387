"""What a job's failure is reported as: a `JobError` that says what to do, never a secret."""

from __future__ import annotations

from ingest.config import JobConfig
from ingest.errors import JobError, RetriableJobError
from ingest.sources.sql import classify_db_error


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every error behind it (dlt wraps step failures several levels deep)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return chain


def classify_error(exc: BaseException, job: JobConfig, where: str) -> JobError:
    """The JobError to report for `exc`: ours as is, database errors made actionable,
    network errors retriable, anything else named by its type and message."""
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, JobError):
            return error
    for error in chain:
        if (db_error := classify_db_error(error, where)) is not None:
            return db_error
    root = chain[-1]
    if "Rescaling Decimal value would cause data loss" in str(root):
        return JobError(
            f"a numeric value in {job.table_name} has more decimal places than its lake type "
            "(numeric without precision lands as decimal(38,9)); nothing was loaded: declare "
            "the column as numeric(p,s) in the source or read the table through a view that "
            "casts it"
        )
    if isinstance(root, ConnectionError | TimeoutError):
        return RetriableJobError(f"{where}: {type(root).__name__}: {root}")
    return JobError(f"{type(root).__name__}: {root}")
