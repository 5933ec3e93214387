"""Audit history for report tests and the report benchmark: nights of a lake's runs, written
with the real audit writer (`ingest.audit.append_audit`) into the daily audit files.

Deterministic for a seed: most loads SUCCESS, some WARN (reconciliation MISMATCH), FAILED (an
error holding HTML, quotes, a newline and non-ASCII text), SKIPPED; now and then a schema
change. `extra` adds audit columns a later audit version may have (deletes, late rows).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from ingest.lake.destination import Destination
from tests.fixtures.audit import append_audit_json

HOSTILE_ERROR = (
    'source "erp" refused: <script>alert("x")</script> & <b>bold</b> \'quoted\'\n'
    "second line: Zürich, 東京, emoji \U0001f600"
)
STATUS_WEIGHTS = (("SUCCESS", 0.93), ("WARN", 0.015), ("FAILED", 0.03), ("SKIPPED", 0.025))


def tables(count: int, per_source: int = 20) -> list[tuple[str, str, str]]:
    """(job_id, source_name, table_name) for `count` tables, `per_source` per source."""
    return [
        (f"{i + 1:04d}", f"src_{i // per_source:02d}", f"table_{i % per_source:02d}")
        for i in range(count)
    ]


def night(
    day: dt.date,
    run_id: str,
    jobs: list[tuple[str, str, str]],
    rng: random.Random,
    extra: Callable[[random.Random, str], dict[str, Any]] | None = None,
    error: str = HOSTILE_ERROR,
) -> list[dict[str, Any]]:
    """One run's job results on `day` (started at 06:00 UTC, one table after another);
    FAILED ones with `error`."""
    statuses, weights = zip(*STATUS_WEIGHTS, strict=True)
    started = dt.datetime.combine(day, dt.time(6, 0), tzinfo=dt.UTC)
    results = []
    for index, (job_id, source, table) in enumerate(jobs):
        status = rng.choices(statuses, weights)[0]
        size = 1000 * (1 + int(job_id) % 37)
        rows = 0 if status in ("FAILED", "SKIPPED") else rng.randint(size // 2, size * 2)
        seconds = round(0.2 + rows / 20000 + rng.random(), 3)
        begin = started + dt.timedelta(seconds=index * 2)
        result: dict[str, Any] = {
            "run_id": run_id,
            "job_id": job_id,
            "source_type": "postgresql",
            "source_name": source,
            "table_name": table,
            "load_type": "INCREMENTAL" if int(job_id) % 2 else "FULL",
            "status": status,
            "rows_loaded": rows,
            "files_written": 1 if rows else 0,
            "watermark_column": "updated_at" if int(job_id) % 2 else "",
            "load_id": f"{begin.timestamp():.6f}" if rows else "",
            "started_at": begin.isoformat(),
            "finished_at": (begin + dt.timedelta(seconds=seconds)).isoformat(),
            "duration_s": seconds,
            "error": error if status == "FAILED" else "",
            "source_rows": rows + (3 if status == "WARN" else 0) if rows else None,
            "reconciled": "MISMATCH" if status == "WARN" else ("MATCH" if rows else "SKIPPED"),
            "reconcile_note": "source has 3 more rows than the lake" if status == "WARN" else "",
            "schema_changes": "added: discount (decimal)" if rng.random() < 0.004 else "",
        }
        if extra is not None:
            result.update(extra(rng, status))
        results.append(result)
    return results


def write_nights(
    destination: str,
    days: list[dt.date],
    jobs: list[tuple[str, str, str]],
    seed: int = 7,
    extra: Callable[[random.Random, str], dict[str, Any]] | None = None,
    error: str = HOSTILE_ERROR,
) -> list[str]:
    """One nightly run per day (oldest first) appended to the lake's audit; the run ids."""
    rng = random.Random(seed)
    dest = Destination.from_url(destination)
    run_ids = []
    for day in days:
        run_id = f"nightly-{day.isoformat()}"
        append_audit_json(dest, night(day, run_id, jobs, rng, extra, error), day)
        run_ids.append(run_id)
    return run_ids
