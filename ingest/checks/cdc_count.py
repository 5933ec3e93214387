"""The whole-table reconciliation of a CDC run: the source's row count against the rows of the
table's current state in the lake after the load, every run.

The source side (`ingest.sources.cdc.snapshot`): counted in a REPEATABLE READ snapshot taken
right before the run's end marker; the transactions the run read that the snapshot did not see
(they committed between the two) add their net rows. So a quiet source gives exactly the
lake's rows, and one written during the run too: the comparison is exact. It is not made when
the run stopped before its end position (`INGEST_CDC_MAX_CHANGES` / `INGEST_CDC_MAX_BYTES`:
the snapshot holds changes the next run reads) or when a TRUNCATE committed after the snapshot:
then the audit says SKIPPED with what was seen.

The lake side counts the rows of the current state, as the views read it, at the cost of the
run's changes rather than of the table: when one load holds one row per key and no delete
marker, the state is that load's rows whose key no later load changed plus the newest versions
of the changed keys (`ingest.views.dialects` `state_of`, the views' own SQL: one scan of that
load's key column). Such a load is the compacted base, else the first copy: its rows all carry
one position (the slot's consistent point) and no delete marker, which the files' Parquet
statistics say without reading them (a copy made again over a lake holds delete markers: not
one). Otherwise every key is ranked (`keys_sql`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.views.definition import DELETED, ViewDef
from ingest.views.dialects import DuckDbRenderer, LakeUrls, literal_sql
from ingest.views.state import TableState, current_state, state_connection
from ingest.vocabulary import LSN, Reconciled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeRows:
    rows: int
    #: how the state was counted (for the audit's note)
    how: str


def lake_rows(
    dest: Destination, job: JobConfig, memory_mb: int, spill_dir: Path
) -> LakeRows | None:
    """Rows of a CDC table's current state (None: nothing committed yet)."""
    state = current_state(dest, job)
    if state is None:
        return None
    connection = state_connection(dest, memory_mb, spill_dir)
    try:
        view = state.view
        base, how = view.base_load, "from the compacted base"
        if base is None:
            base, how = _unique_load(connection, dest, view), "from the first copy"
        if base is None:
            sql, how = state.keys_sql, "every key ranked"
        else:
            sql = DuckDbRenderer(LakeUrls.of(dest)).statement_body(
                replace(_narrow(state), base_load=base)
            )
        rows = int(connection.execute(f"SELECT count(*) FROM ({sql}) AS s").fetchone()[0])
        return LakeRows(rows, how)
    finally:
        connection.close()


def _narrow(state: TableState) -> ViewDef:
    """The state's view with only what ranks it (keys, `_lsn`, the delete flag)."""
    view = state.view
    wanted = {*view.keys, view.order_by, DELETED}
    return replace(view, columns=tuple(c for c in view.columns if c.name in wanted))


def _unique_load(connection: Any, dest: Destination, view: ViewDef) -> str | None:
    """The view's first load when its rows all carry one `_lsn` and no delete marker (the
    first copy: one row per key), by its files' Parquet statistics; else None."""
    if view.order_by != LSN or not view.parts:
        return None
    first = view.parts[0].load_id
    files = [f for p in view.parts if p.load_id == first for f in p.files]
    if first is None or not files:
        return None
    urls = LakeUrls.of(dest)
    paths = ", ".join(literal_sql(urls.url("duckdb", f)) for f in files)
    found = connection.execute(
        "SELECT path_in_schema, min(stats_min_value), max(stats_max_value), "
        "bool_or(stats_min_value IS NULL OR stats_max_value IS NULL), sum(stats_null_count) "
        f"FROM parquet_metadata([{paths}]) WHERE path_in_schema IN (?, ?) GROUP BY 1",
        [LSN, DELETED],
    ).fetchall()
    stats = {row[0]: row[1:] for row in found}
    lsn, deleted = stats.get(LSN), stats.get(DELETED)
    # every `_lsn` known and equal; `_deleted` known (statistics kept) and never true
    if lsn is None or lsn[2] or lsn[3] or lsn[0] != lsn[1]:
        return None
    if deleted is not None and (deleted[2] or str(deleted[1]).lower() != "false"):
        return None
    return first


@dataclass(frozen=True)
class CdcCount:
    """What the source and the lake held after one CDC run."""

    #: the source's rows in the snapshot
    source: int
    #: the transactions read that the snapshot did not see, and their net rows
    late_transactions: int
    late_net: int
    lake: LakeRows
    snapshot: str

    @property
    def expected(self) -> int:
        return self.source + self.late_net

    @property
    def reconciled(self) -> Reconciled:
        return Reconciled.MATCH if self.expected == self.lake.rows else Reconciled.MISMATCH

    def note(self) -> str:
        late = (
            f" + {self.late_net:+d} from {self.late_transactions} transaction(s) committed after "
            "it and read by this run"
            if self.late_transactions
            else ""
        )
        return (
            f"source {self.source} row(s) in a REPEATABLE READ snapshot ({self.snapshot}) taken "
            f"before the run's end position{late}; lake {self.lake.rows} row(s) in the current "
            f"state ({self.lake.how})"
        )
