"""Exceptions, grouped by what the caller should do about them.

- `ConfigError`, `RequestError`: fatal for the whole run, nothing is loaded (CLI exit code 2,
  HTTP 400). They carry every problem found, not just the first.
- `JobError`: one job failed; the run goes on with the other jobs.
  `RetriableJobError` may succeed on a later attempt (source down, throttled, network);
  plain `JobError` will not until a person changes something (missing table, bad password).
"""

from __future__ import annotations

from dataclasses import dataclass


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
