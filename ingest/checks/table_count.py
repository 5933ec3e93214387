"""Reconciliation of the whole table, for keyed tables: the source's row count against the rows
of the table's current state in the lake (`ingest.views.state`), after every load.

Besides the window check of each load (`ingest.checks.reconcile`), this says whether the lake
holds the table: a MISMATCH means rows the lake still shows although the source deleted them
(a job without `delete_detection`), rows it never got (late rows below the watermark: see
`lookback`), or a source that changed while it was counted. It is reported in the audit
(`table_rows_source`, `table_rows_lake`, `table_reconciled`); it does not fail the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.views.state import current_state, state_connection
from ingest.vocabulary import Reconciled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableCount:
    source: int
    lake: int

    @property
    def reconciled(self) -> Reconciled:
        return Reconciled.MATCH if self.source == self.lake else Reconciled.MISMATCH


def lake_rows(dest: Destination, job: JobConfig, memory_mb: int, spill_dir: Path) -> int | None:
    """Rows of the job's table's current state (None: the table has no key or no load)."""
    state = current_state(dest, job)
    if state is None:
        return None
    connection = state_connection(dest, memory_mb, spill_dir)
    try:
        return int(
            connection.execute(f"SELECT count(*) FROM ({state.keys_sql}) AS s").fetchone()[0]
        )
    finally:
        connection.close()


def count_table(
    job: JobConfig,
    dest: Destination,
    source_count: Any,
    memory_mb: int,
    spill_dir: Path,
) -> TableCount | None:
    """`source_count()`: the source's row count (the reconciler's own connection)."""
    lake = lake_rows(dest, job, memory_mb, spill_dir)
    if lake is None:
        return None
    counted = TableCount(int(source_count()), lake)
    if counted.reconciled == Reconciled.MISMATCH:
        log.warning(
            "job %s: the source holds %d rows, the lake's current state %d%s",
            job.job_id,
            counted.source,
            counted.lake,
            "" if job.delete_detection else " (deletes are not detected: delete_detection)",
        )
    return counted
