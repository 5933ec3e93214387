"""What the HTML run report shows, computed from the audit (`metadata/audit_YYYYMMDD.csv`).

`collect(destination, days, run_id=None)` reads the daily audit files of a window of `days`
UTC dates and returns a `ReportData`: the run (its tables succeeded / warned / failed /
skipped, rows, start and duration), a status grid of tables x days, rows loaded per day and
source, seconds per table and day, and the reconciliation mismatches, schema changes and
delete / late-row counts of the window, each naming its table. Nothing here draws or
writes: `ingest.reports.report_html` renders it, `ingest.reports.report_files` stores it.

Only what the audit holds is shown. Count columns that later versions of the audit add (for
deletes and late rows) are picked up by name when present (`EXTRA_COUNT_COLUMN`); when the
audit has none, the report has no such section.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.audit import read_audit
from ingest.lake.destination import Destination
from ingest.model.result import as_float, as_int
from ingest.reports.history import audit_days
from ingest.vocabulary import Status

DEFAULT_DAYS = 30
#: the statuses of the grid, in the order of the legend and the run summary
STATUSES = (Status.SUCCESS, Status.WARN, Status.FAILED, Status.SKIPPED)
#: reconciliation outcome that the report lists
MISMATCH = "MISMATCH"
#: statuses listed with their error (or reconciliation note)
PROBLEMS = (Status.FAILED, Status.WARN)
#: audit columns that count deleted or late rows (the audit's rows_deleted and late_rows, and
#: any later column named so)
EXTRA_COUNT_COLUMN = re.compile(r"(^|_)(delete|deletes|deleted|late)(_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class TableKey:
    """A grid row: one job (its id, and the source table it copies)."""

    job_id: str
    source_name: str
    table_name: str

    @property
    def label(self) -> str:
        return f"{self.source_name}.{self.table_name}"


@dataclass(frozen=True, slots=True)
class Load:
    """One audit row, as the report uses it (its numbers read once)."""

    day: dt.date
    row: Mapping[str, str]
    job_id: str
    status: str
    rows: int
    seconds: float
    started_at: str

    @classmethod
    def of(cls, day: dt.date, row: Mapping[str, str]) -> Load:
        return cls(
            day,
            row,
            row.get("job_id") or "",
            row.get("status") or "",
            as_int(row.get("rows_loaded")),
            as_float(row.get("duration_s")),
            row.get("started_at") or "",
        )

    @property
    def key(self) -> TableKey:
        return TableKey(
            self.job_id, self.row.get("source_name") or "", self.row.get("table_name") or ""
        )


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    tables: int
    counts: Mapping[str, int]
    rows_loaded: int
    day: dt.date


@dataclass
class ReportData:
    lake: str
    days: list[dt.date]
    generated_at: dt.datetime
    run: RunSummary | None = None
    tables: list[TableKey] = field(default_factory=list)
    #: (job_id, day) -> the day's loads of that job, oldest first
    cells: dict[tuple[str, dt.date], list[Load]] = field(default_factory=dict)
    #: day -> source -> rows loaded (every audit row of that day)
    rows_by_day: dict[dt.date, dict[str, int]] = field(default_factory=dict)
    #: job_id -> day -> seconds spent loading (all of the day's loads)
    seconds_by_day: dict[str, dict[dt.date, float]] = field(default_factory=dict)
    mismatches: list[Load] = field(default_factory=list)
    schema_changes: list[Load] = field(default_factory=list)
    #: audit columns counting deleted / late rows that this window's audit has
    extra_count_columns: list[str] = field(default_factory=list)
    #: loads with a non-zero value in one of `extra_count_columns`, newest first
    extra_counts: list[Load] = field(default_factory=list)
    #: FAILED and WARN loads with their error or note, newest first
    problems: list[Load] = field(default_factory=list)
    loads: int = 0

    def cell_status(self, job_id: str, day: dt.date) -> str:
        """The grid's status of a table on a day: its latest load's, "" without a load."""
        loads = self.cells.get((job_id, day))
        return loads[-1].status if loads else ""

    def rows_per_day(self) -> dict[dt.date, int]:
        return {day: sum(self.rows_by_day.get(day, {}).values()) for day in self.days}

    def sources(self) -> list[str]:
        """Sources by rows loaded in the window, most first."""
        totals: dict[str, int] = defaultdict(int)
        for per_source in self.rows_by_day.values():
            for source, rows in per_source.items():
                totals[source] += rows
        return sorted(totals, key=lambda s: (-totals[s], s))

    def slowest(self, count: int = 10) -> list[TableKey]:
        """The `count` tables that spent the most seconds loading over the window."""
        by_id = {t.job_id: t for t in self.tables}
        totals = {job: sum(per_day.values()) for job, per_day in self.seconds_by_day.items()}
        ranked = sorted((j for j in totals if totals[j] > 0), key=lambda j: (-totals[j], j))
        return [by_id[j] for j in ranked[:count] if j in by_id]


def _is_count(value: str | None) -> bool:
    text = (value or "").strip()
    if not text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _newest_first(loads: Iterable[Load]) -> list[Load]:
    return sorted(loads, key=lambda x: (x.started_at, x.row.get("job_id") or ""), reverse=True)


def _run_summary(run_id: str, loads: list[Load]) -> RunSummary:
    counts: dict[str, int] = {status: 0 for status in STATUSES}
    for load in loads:
        if load.status in counts:
            counts[load.status] += 1
    starts = sorted(x.started_at for x in loads if x.started_at)
    ends = sorted(x.row.get("finished_at") or "" for x in loads if x.row.get("finished_at"))
    started, finished = (starts[0] if starts else ""), (ends[-1] if ends else "")
    duration = 0.0
    try:
        if started and finished:
            delta = dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)
            duration = max(delta.total_seconds(), 0.0)
    except (TypeError, ValueError):  # an unreadable time: no duration rather than a wrong one
        duration = 0.0
    return RunSummary(
        run_id=run_id,
        started_at=started,
        finished_at=finished,
        duration_s=duration,
        tables=len(loads),
        counts=counts,
        rows_loaded=sum(x.rows for x in loads),
        day=min(x.day for x in loads),
    )


def build(
    audit: Iterable[tuple[dt.date, Mapping[str, str]]],
    days: list[dt.date],
    *,
    lake: str = "",
    run_id: str | None = None,
    generated_at: dt.datetime | None = None,
) -> ReportData:
    """The report of `audit` ((audit file date, row) pairs) over `days` (oldest first) for
    run `run_id` (default: the run that started last)."""
    data = ReportData(
        lake=lake, days=list(days), generated_at=generated_at or dt.datetime.now(dt.UTC)
    )
    wanted = set(days)
    loads = [Load.of(day, row) for day, row in audit if day in wanted]
    data.loads = len(loads)
    columns = {column for load in loads for column in load.row.keys()}
    candidates = [c for c in columns if c and EXTRA_COUNT_COLUMN.search(c)]
    # a count column holds numbers only (a note that happens to be named "late_..." is not one),
    # and one of the window's loads filled it (the audit's own rows_deleted / late_rows are
    # empty for jobs without delete detection or lookback)
    extra = sorted(
        c
        for c in candidates
        if all(_is_count(load.row.get(c)) for load in loads)
        and any((load.row.get(c) or "").strip() for load in loads)
    )
    tables: dict[str, TableKey] = {}
    cells: dict[tuple[str, dt.date], list[Load]] = defaultdict(list)
    rows_by_day: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seconds: dict[str, dict[dt.date, float]] = defaultdict(lambda: defaultdict(float))
    by_run: dict[str, list[Load]] = defaultdict(list)
    for load in loads:
        job_id, row = load.job_id, load.row
        if job_id not in tables:
            tables[job_id] = load.key
        source = tables[job_id].source_name
        cells[(job_id, load.day)].append(load)
        rows_by_day[load.day][source] += load.rows
        seconds[job_id][load.day] += load.seconds
        by_run[row.get("run_id") or ""].append(load)
        if row.get("reconciled") == MISMATCH:
            data.mismatches.append(load)
        if (row.get("schema_changes") or "").strip():
            data.schema_changes.append(load)
        if extra and any(as_int(row.get(c)) for c in extra):
            data.extra_counts.append(load)
        if load.status in PROBLEMS:
            data.problems.append(load)
    for day_loads in cells.values():
        day_loads.sort(key=lambda x: x.started_at)
    data.tables = sorted(tables.values(), key=lambda t: (t.source_name, t.table_name, t.job_id))
    data.cells = dict(cells)
    data.rows_by_day = {day: dict(per_source) for day, per_source in rows_by_day.items()}
    data.seconds_by_day = {job: dict(per_day) for job, per_day in seconds.items()}
    data.extra_count_columns = extra
    for name in ("mismatches", "schema_changes", "extra_counts", "problems"):
        setattr(data, name, _newest_first(getattr(data, name)))
    if run_id is None and by_run:
        run_id = max(by_run, key=lambda r: (max(x.started_at for x in by_run[r]), r))
    if run_id is not None and by_run.get(run_id):
        data.run = _run_summary(run_id, by_run[run_id])
    return data


def read_window(
    dest: Destination, days: list[dt.date], fs: Any = None
) -> list[tuple[dt.date, dict[str, str]]]:
    """(audit file date, row) for every row of the daily audit files of `days`."""
    fs = fs or dest.filesystem()
    return [(day, row) for day in days for row in read_audit(dest, day, fs)]


def window(days: int, last_day: dt.date | None = None) -> list[dt.date]:
    """The `days` UTC dates ending with `last_day` (default today), oldest first."""
    return sorted(audit_days(days, last_day))


def collect(
    destination: str,
    days: int = DEFAULT_DAYS,
    run_id: str | None = None,
    *,
    last_day: dt.date | None = None,
) -> ReportData:
    """The report data of the lake at `destination` over `days` days ending `last_day`."""
    dest = Destination.from_url(destination)
    dates = window(days, last_day)
    return build(read_window(dest, dates), dates, lake=dest.display_url, run_id=run_id)
