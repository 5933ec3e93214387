"""The current state of a keyed table, as the engine itself reads it: the very SELECT its DuckDB
view runs (`ingest.views.dialects`), over the table's committed loads. One definition of "the
current state" for the views, the delete detection, the whole-table reconciliation and the
compaction (`ingest.checks.deletes`, `ingest.checks.reconcile`, `ingest.lake.compaction`).

DuckDB reads the lake's files (local paths, or `az://` through the lake's fsspec filesystem) in
bounded memory: `memory_limit` and a temporary folder to spill to, so a table of any size is
compared or rewritten without holding it (`INGEST_STATE_MEMORY_MB`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ingest.config import JobConfig
from ingest.lake.destination import Destination
from ingest.views.definition import DELETED, STATE, Column, ViewDef
from ingest.views.dialects import DuckDbRenderer, LakeUrls, duckdb_type, literal_sql
from ingest.views.duck import connect
from ingest.views.inventory import build_job_views, list_source, table_keys


@dataclass(frozen=True)
class TableState:
    """The current state of one job's table: `sql` selects it (one row per key)."""

    view: ViewDef
    sql: str
    dest: Destination

    @property
    def keys(self) -> tuple[str, ...]:
        return self.view.keys

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.view.data_columns

    def column(self, name: str) -> Column:
        return next(c for c in self.view.columns if c.name == name)

    def duckdb_type(self, name: str) -> str:
        return duckdb_type(self.column(name))

    @property
    def keys_sql(self) -> str:
        """The same state with only what ranks it (keys, watermark, delete flag): for counts
        and key comparisons, which then read and rank a few columns, not every one."""
        wanted = {*self.view.keys, self.view.order_by, DELETED}
        narrow = replace(self.view, columns=tuple(c for c in self.view.columns if c.name in wanted))
        return DuckDbRenderer(LakeUrls.of(self.dest)).state_keys(narrow)


def current_state(dest: Destination, job: JobConfig, fs: Any = None) -> TableState | None:
    """The job's table's current state over its committed loads; None when the table has no
    key or nothing committed yet (it has no current state to read)."""
    fs = fs or dest.filesystem()
    listing = list_source(dest, job.source_name, fs)
    built = build_job_views(dest, job, listing, fs, history_allowed=False)
    view = next((v for v in built.views if v.kind == STATE), None)
    if view is None and built.views and built.views[0].delta_folder and job.is_incremental:
        # a keyed Delta table is merged by key: its current version is the state
        keys = table_keys(job, built.views[0].columns)
        view = replace(built.views[0], keys=keys) if keys else None
    if view is None or not view.parts:
        return None
    return TableState(view, DuckDbRenderer(LakeUrls.of(dest)).statement_body(view), dest)


def state_connection(dest: Destination, memory_mb: int, spill_dir: Path, fs: Any = None) -> Any:
    """A DuckDB connection that reads the lake in at most `memory_mb` (spilling to
    `spill_dir`), with one thread per usable core. Arrow's allocator first returns the memory
    the load freed to the system: DuckDB's share then comes on top of what the process uses,
    not of what the load once used (TPC-H lineitem's first load: the peak of the load and its
    whole-table count was 627 MB, 1.52x the load alone)."""
    pa.default_memory_pool().release_unused()
    connection = connect(dest, fs)
    spill_dir.mkdir(parents=True, exist_ok=True)
    connection.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    connection.execute(f"SET temp_directory = {literal_sql(str(spill_dir))}")
    connection.execute("SET preserve_insertion_order = false")
    return connection
