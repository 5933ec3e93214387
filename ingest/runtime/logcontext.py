"""Run id and job id on every log record, so one run can be followed in Log Analytics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

_run_id: ContextVar[str] = ContextVar("ingest_run_id", default="-")
_job_id: ContextVar[str] = ContextVar("ingest_job_id", default="-")


@contextlib.contextmanager
def job_context(run_id: str, job_id: str = "-") -> Iterator[None]:
    run_token = _run_id.set(run_id)
    job_token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(job_token)
        _run_id.reset(run_token)


def current() -> tuple[str, str]:
    return _run_id.get(), _job_id.get()


class ContextFilter(logging.Filter):
    """Adds `run_id` and `job_id` attributes to every record that passes a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = _run_id.get()
        if not hasattr(record, "job_id"):
            record.job_id = _job_id.get()
        return True
