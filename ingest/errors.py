"""Exceptions, grouped by what the caller should do about them.

- `ConfigError`, `RequestError`: fatal for the whole run, nothing is loaded (CLI exit code 2,
  HTTP 400). They carry every problem found, not just the first.
- `JobError`: one job failed; the run goes on with the other jobs.
  `RetriableJobError` may succeed on a later attempt (source down, throttled, network);
  plain `JobError` will not until a person changes something (missing table, bad password).

Failure isolation: whatever one job raises ends as that job's FAILED result, never as the
run's; this includes `BaseException`s that are not `Exception`s, such as the
`pyo3_runtime.PanicException` a Rust library (ConnectorX) raises when it panics. Only what
asks the process to stop (`PROCESS_EXITS`: Ctrl-C, `sys.exit`, a closed generator, a cancelled
task) passes through; `is_process_exit` is the one test for it (`ingest.job.run`,
`ingest.runner`, `ingest.app.activities`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

#: the BaseExceptions that stop the process (or the task) rather than report a failure
PROCESS_EXITS: tuple[type[BaseException], ...] = (
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
    asyncio.CancelledError,
)


def is_process_exit(exc: BaseException) -> bool:
    """Whether `exc` must propagate (the process or task is being stopped) instead of
    ending as one job's FAILED result."""
    return isinstance(exc, PROCESS_EXITS)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located as precisely as we can."""

    message: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.sheet:
            where.append(f"sheet {self.sheet!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class IngestError(Exception):
    """Base class of every error the framework raises on purpose."""


class ConfigError(IngestError):
    """The configuration file cannot be used; lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(
            f"{source}: {count} problem{'s' if count != 1 else ''} found, nothing was loaded:\n"
            f"{lines}"
        )


class RequestError(IngestError, ValueError):
    """A run request (CLI filters, HTTP body) names something that does not exist."""


class JobError(IngestError):
    """One job failed and will keep failing until someone acts on the message."""

    retriable = False


class RetriableJobError(JobError):
    """One job failed for a reason that may go away (source unreachable, throttling)."""

    retriable = True


class SecretNotFoundError(JobError):
    """A connection secret is missing in every place we look."""
