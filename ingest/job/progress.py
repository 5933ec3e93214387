"""What the engine watches while dlt extracts: rows for the progress log, the job's deadline,
the re-read rows of INCREMENTAL jobs (`ingest.checks.boundary`, `ingest.checks.lookback`), all
from a map step placed after dlt's incremental filter.

Progress is shown two ways: a log record every PROGRESS_EVERY_S seconds, or, when the
command's log goes to a terminal (`ingest.runtime.logsetup.live_progress_enabled`), one live
line redrawn in place (rows, rows/s, elapsed) once a job has run LIVE_AFTER_S seconds.
Piped output, JSON logs and the function app get no live line."""

from __future__ import annotations

import logging
import time
from typing import Any

import pyarrow.compute as pc
from dlt.extract.items_transform import MapItem

from ingest.checks.boundary import BoundaryTracker
from ingest.checks.lookback import LookbackFilter
from ingest.config import JobConfig
from ingest.errors import RetriableJobError
from ingest.lake import ledger
from ingest.model.result import ChunkResult
from ingest.runtime.logsetup import live_progress_enabled
from ingest.vocabulary import Status

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 15.0
#: a job shows a live line once it has run this long (short jobs stay quiet)
LIVE_AFTER_S = 3.0
#: the live line is redrawn at most this often
LIVE_EVERY_S = 0.5


def row_count(item: Any) -> int:
    """Rows in one extracted item: an Arrow table/batch, a list of rows, or one row; items
    wrapped with dlt hints (the empty first item of sql_table) count their payload."""
    if hasattr(item, "meta") and hasattr(item, "data"):
        item = item.data
    num_rows = getattr(item, "num_rows", None)
    if num_rows is not None:
        return int(num_rows)
    return len(item) if isinstance(item, list) else 1


def extracted_rows(extract_info: Any, table: str) -> int:
    """Rows of `table` that survived extraction (after dlt's incremental filtering)."""
    total = 0
    for metrics in (extract_info.metrics or {}).values():
        for step in metrics:
            table_metrics = step.get("table_metrics", {}).get(table)
            total += table_metrics.items_count if table_metrics else 0
    return total


class HighestWatermark:
    """The highest watermark among the extracted rows (Arrow batches or REST records): what a
    backfill reached (dlt keeps no cursor state for a ranged extraction)."""

    def __init__(self, cursor: str):
        self.cursor = cursor.lower()
        self.value: Any = None

    def add(self, item: Any) -> None:
        if hasattr(item, "meta") and hasattr(item, "data"):
            item = item.data
        names = getattr(item, "column_names", None)
        if names is not None:
            column = next((n for n in names if n.lower() == self.cursor), None)
            highest = pc.max(item.column(column)) if column is not None else None
            candidates = [highest.as_py()] if highest is not None and highest.is_valid else []
        else:
            rows = item if isinstance(item, list) else [item]
            candidates = [
                value
                for row in rows
                if isinstance(row, dict)
                for key, value in row.items()
                if key.lower() == self.cursor and value is not None
            ]
        for value in candidates:
            if self.value is None or value > self.value:
                self.value = value

    @property
    def text(self) -> str:
        return ledger.watermark_text(self.value) if self.value is not None else ""


class JobTimeout(RetriableJobError):
    """The job ran longer than its timeout (INGEST_JOB_TIMEOUT_S or its `timeout` column)."""


class Deadline:
    """When a job must have finished (monotonic clock); `check()` raises JobTimeout after it."""

    def __init__(self, job: JobConfig, seconds: float, source: str = "INGEST_JOB_TIMEOUT_S"):
        self.job = job
        self.seconds = seconds
        self.source = source
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise JobTimeout(
                f"job {self.job.job_id} ({self.job.table_name}) ran longer than its timeout of "
                f"{self.seconds:g} s ({self.source}); nothing of this run was committed. Raise "
                "the timeout, or split the table (more jobs, or a smaller window per run)"
            )


class Progress:
    """Counts the rows that pass dlt's incremental filter and logs every few seconds; feeds
    the boundary tracker of INCREMENTAL jobs and the highest watermark of backfills."""

    def __init__(
        self,
        job: JobConfig,
        boundary: BoundaryTracker | None = None,
        highest: HighestWatermark | None = None,
        deadline: Deadline | None = None,
        lookback: LookbackFilter | None = None,
    ):
        self.job = job
        self.deadline = deadline
        self.lookback = lookback
        self.rows = 0
        self.started = self.last_log = time.monotonic()
        self.boundary = boundary
        self.highest = highest
        self.live = live_progress_enabled()
        self.last_live = 0.0

    def __call__(self, item: Any) -> Any:
        if self.deadline is not None:
            self.deadline.check()
        if self.lookback is not None:
            item = self.lookback(item)  # drops re-read rows below the last watermark it holds
        if self.boundary is not None:
            item = self.boundary(item)  # drops re-read boundary rows that landed before
        rows = row_count(item)
        self.rows += rows
        if self.highest is not None and rows:
            self.highest.add(item)
        now = time.monotonic()
        if self.live:
            if now - self.started >= LIVE_AFTER_S and now - self.last_live >= LIVE_EVERY_S:
                self.last_live = now
                log.info(self.live_text(now), extra={"live": True})
        elif now - self.last_log >= PROGRESS_EVERY_S:
            self.last_log = now
            log.info(
                "job %s %s: %s rows extracted so far",
                self.job.job_id,
                self.job.table_name,
                f"{self.rows:,}",
            )
        return item

    def live_text(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        return (
            f"job {self.job.job_id} {self.job.table_name}: {self.rows:,} rows, "
            f"{self.rows / elapsed:,.0f} rows/s, {elapsed:.1f} s"
        )

    def as_step(self) -> Any:
        """This map as a dlt pipe step that sees the rows dlt's incremental filter let
        through (a plain `add_map` is placed before it: dlt keeps its incremental step last)."""

        class AfterIncremental(MapItem):
            placement_affinity = 1.5  # incremental: 1, row limit: 1.1

        return AfterIncremental(self)


class SplitProgress:
    """The progress of split loads (`ingest.job.split`) in the local runner: one log record
    per chunk that ends, with the table's chunks done out of its total and the rows landed."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, int]] = {}

    def started(self, job_id: str, chunks: int) -> None:
        self.tables[job_id] = {"chunks": chunks, "done": 0, "failed": 0, "rows": 0}
        log.info("job %s: split into %d chunks, running them", job_id, chunks)

    def chunk_ended(self, job_id: str, chunk: int, result: ChunkResult, final: bool) -> None:
        """`final`: no further attempt of this chunk follows."""
        table = self.tables.setdefault(job_id, {"chunks": 0, "done": 0, "failed": 0, "rows": 0})
        landed = result.status != Status.FAILED
        if landed:
            table["done"] += 1
            table["rows"] += result.rows
        elif final:
            table["failed"] += 1
        log.info(
            "job %s: chunk %d %s; %d of %d chunks landed, %s rows",
            job_id,
            chunk,
            "landed" if landed else ("failed" if final else "failed, trying it again"),
            table["done"],
            table["chunks"],
            f"{table['rows']:,}",
        )

    def snapshot(self, job_id: str) -> dict[str, int]:
        return dict(self.tables.get(job_id) or {})
