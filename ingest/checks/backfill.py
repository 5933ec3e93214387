"""Backfill: re-extract a watermark range of an INCREMENTAL job into the lake, leaving the
job's incremental state (its watermark) exactly where it was.

How: the range runs as its own dlt pipeline, `<source>__<table>__backfill`, that never
restores or touches the job's state; it writes into the same dataset and table folder
(same layout), with load markers under its own schema name. `ingest.lake.loads` counts those
loads as completed for the job, so the job's next run never removes them as leftovers.
Audit rows of a backfill carry `load_type = BACKFILL` and the range in the watermark columns.

The range is `[from, to)` on the job's watermark column (`to` omitted: everything from
`from` on). Its plan (`ingest.plan.plan_backfill`, planning is above the checks) has the same
task shape as a run, with `"backfill": {"from", "to"}` on each task, so the CLI and
`POST /api/runs` share it.

Bounds (`parse_bound`, `check_bounds`; used by the request schema `ingest.run_request`, so a bad
range is refused before anything is planned: HTTP 400, exit code 2): a bound is a whole or
decimal number (`42`, `-7`, `12.5`; digits only is always a number: `20240201`) or an ISO date
or date-time with dashes (`2024-02-01`, `2024-02-01T06:00:00+00:00`, `...Z`; no zone means UTC),
at most `MAX_WATERMARK_CHARS` characters. `NaN`, `Infinity`, `yesterday` are not bounds. Both
bounds are of the same kind (two numbers or two dates), `from` is before `to`, and when the job
has an `initial_watermark` the bounds are of its kind.

The watermark a backfill reached (`watermark_after` in the audit) is the highest watermark of
the rows it extracted (dlt keeps no state for a ranged extraction); empty when it found none.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

from ingest.config import JobConfig
from ingest.errors import RequestError
from ingest.limits import MAX_WATERMARK_CHARS, quote

NUMBER, DATETIME = "a number", "a date/time"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_bound(value: Any, name: str = "from") -> tuple[str, Any, str]:
    """(kind, comparable value, text) of a backfill bound; RequestError naming `name` and
    what is accepted when it is not a bound (see module doc)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RequestError(f"'{name}' must be a watermark: a string or a whole number")
    if isinstance(value, int) and value.bit_length() > 4 * MAX_WATERMARK_CHARS:
        raise RequestError(f"'{name}' is longer than {MAX_WATERMARK_CHARS} characters")
    text = str(value).strip()
    if not text:
        raise RequestError(f"'{name}' is empty: give a watermark")
    if len(text) > MAX_WATERMARK_CHARS:
        raise RequestError(
            f"'{name}' {quote(text)} is longer than {MAX_WATERMARK_CHARS} characters; a "
            "watermark is a number or an ISO date/time"
        )
    if _NUMBER.fullmatch(text):
        return NUMBER, decimal.Decimal(text), text
    if _DATE_START.match(text):
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return DATETIME, moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC), text
    raise RequestError(
        f"'{name}' {quote(text)} is not a watermark: use a number (42, 12.5) or an ISO date or "
        "date-time (2024-01-31, 2024-01-31T00:00:00+00:00)"
    )


def check_bounds(start: Any, end: Any = None) -> tuple[str, str | None]:
    """The texts of a valid `[from, to)` range (see module doc); RequestError otherwise."""
    start_kind, low, start_text = parse_bound(start, "from")
    if end is None or (isinstance(end, str) and not end.strip()):
        return start_text, None
    end_kind, high, end_text = parse_bound(end, "to")
    if start_kind != end_kind:
        raise RequestError(
            f"'from' {quote(start_text)} is {start_kind} and 'to' {quote(end_text)} is "
            f"{end_kind}: write both bounds the same way"
        )
    if low >= high:
        raise RequestError(
            f"backfill range is empty: 'from' {start_text} is not before 'to' {end_text}"
        )
    return start_text, end_text


def check_range(job: JobConfig, start: Any, end: Any) -> tuple[str, str | None]:
    """Validate a backfill request for `job`; returns (from, to) as text."""
    if not job.is_incremental:
        raise RequestError(
            f"job {job.job_id} is FULL: every run reloads the whole table; backfill is for "
            "INCREMENTAL jobs (use run --full-refresh to reload a job from initial_watermark)"
        )
    if start is None or (isinstance(start, str) and not start.strip()):
        raise RequestError("backfill needs a start watermark ('from')")
    start_text, end_text = check_bounds(start, end)
    if job.initial_watermark:
        try:
            configured, _, _ = parse_bound(job.initial_watermark, "initial_watermark")
        except RequestError:
            configured = None  # not a bound we understand: the source decides
        given, _, _ = parse_bound(start_text)
        if configured is not None and configured != given:
            raise RequestError(
                f"job {job.job_id}'s watermark {job.watermark_column} starts at "
                f"{quote(job.initial_watermark)}, {configured}; the backfill's bounds are "
                f"{given}: give them the same way"
            )
    return start_text, end_text
