"""The data-trust checks of one job run: reconciliation, schema drift, backfill, Delta output.

`ingest.job` calls these at fixed points; each returns a value, none writes the job's result.
The logic lives in `ingest.checks.reconcile` and `ingest.checks.drift`.

    checks = JobChecks(task, builder, secrets, dest)      # after the secrets resolve
    options = checks.extract_options(options)             # before build_resource
    checks.prepare(resource)                              # before the extraction
    checks.after_extraction(watermarks, read, type)       # starts the final source count
    outcome = checks.finish(pipeline, landed)             # after the load: Checked
    checks.close()                                        # always
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.checks.boundary import ReadWindow
from ingest.checks.drift import Diff, DriftCheck, data_columns, emit_schema_changed
from ingest.checks.events import emit_reconcile_mismatch
from ingest.checks.reconcile import Outcome, Reconciler
from ingest.checks.table_count import TableCount, count_table
from ingest.lake.delta import current_version
from ingest.lake.destination import Destination
from ingest.model.result import Landed, Watermarks
from ingest.model.task import Task
from ingest.runtime.optional import require_delta
from ingest.sources.base import ExtractOptions, SourceBuilder
from ingest.vocabulary import DELETED, Reconciled, TableFormat

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    """What the checks found after a load."""

    reconciliation: Outcome
    schema_changes: Diff
    #: keyed tables: the source's count against the current state's
    table: TableCount | None = None
    #: columns the lake's schema holds after this load and did not before
    new_columns: frozenset[str] = frozenset()


class JobChecks:
    def __init__(
        self,
        task: Task,
        builder: SourceBuilder,
        secrets: Mapping[str, Any],
        dest: Destination,
    ):
        self.task = task
        self.job = task.job
        self.dest = dest
        self.dataset, self.table = self.job.source_name, self.job.lake_table
        self.reconciler = Reconciler(self.job, builder, secrets, backfill=task.backfill)
        self.drift = DriftCheck(self.job, dest, self.dataset, self.table)

    @property
    def other_schema_names(self) -> tuple[str, ...]:
        """Schemas whose completed loads also belong to this job's table (clean-up): a
        backfill's loads and the job's own loads share the table folder."""
        base = self.job.base_schema_name_in_lake  # compacted bases (ingest.job.compaction)
        if self.task.backfill:
            return (self.job.schema_name_in_lake, base)
        return (self.job.backfill_schema_name_in_lake, base)

    def extract_options(self, options: ExtractOptions) -> ExtractOptions:
        """The options with the backfill's range and the engine dlt reads through."""
        changes: dict[str, Any] = {}
        if self.task.backfill:
            changes["initial_watermark"] = self.task.backfill.start
            changes["end_watermark"] = self.task.backfill.end
        engine = self.reconciler.extraction_engine()
        if engine is not None:
            changes["engine"] = engine
        return dataclasses.replace(options, **changes) if changes else options

    def prepare(self, resource: Any, keys: tuple[str, ...] = ()) -> None:
        """Before the extraction. A Delta table with a key (INCREMENTAL) is merged by key: the
        table itself is the current state (an upsert per key; a delete marker removes its key)."""
        if self.job.table_format == TableFormat.DELTA:
            require_delta(self.job.job_id)  # before a row is read: the `delta` extra
            resource.apply_hints(table_format="delta", **delta_merge_hints(self.job, keys))
            self.reconciler.delta_version = current_version(self.dest, self.dataset, self.table)
        self.drift.prepare(resource)
        self.reconciler.before_extraction()

    def after_extraction(
        self, watermarks: Watermarks, read: ReadWindow | None, watermark_type: Any
    ) -> None:
        """Starts the final source count while dlt normalizes and loads. `read`: how an
        INCREMENTAL run read its source (`ingest.checks.boundary`)."""
        self.reconciler.after_extraction(watermarks, read, watermark_type)

    def finish(
        self,
        pipeline: Any,
        landed: Landed,
        *,
        keyed: bool = False,
        memory_mb: int = 512,
        spill_dir: Path | None = None,
    ) -> Checked:
        changes = self.drift.finish(pipeline)
        if changes:
            log.warning(
                "job %s: schema changed (%s): %s",
                self.job.job_id,
                self.job.schema_policy,
                changes.summary(),
            )
        outcome = self.reconciler.finish(self.dest, self.dataset, self.table, landed)
        table = None
        counted = self.reconciler.engine is not None and not self.reconciler.skip_reason
        if keyed and counted and self.job.is_incremental and not self.task.backfill and spill_dir:
            table = count_table(
                self.job, self.dest, self.reconciler.count_table, memory_mb, spill_dir
            )
        return Checked(outcome, changes, table, self._new_columns(pipeline))

    def _new_columns(self, pipeline: Any) -> frozenset[str]:
        try:
            now = data_columns(pipeline.default_schema.get_table(self.table))
        except Exception:  # no table in the schema (nothing loaded)
            return frozenset()
        return frozenset(now) - frozenset(self.drift.lake_columns)

    def close(self) -> None:
        self.reconciler.close()


def delta_merge_hints(job: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """dlt hints that make a keyed INCREMENTAL Delta table its current state: upsert by key,
    `_deleted` markers delete their key ({} for other jobs: an append, or a FULL snapshot)."""
    if not keys or not job.is_incremental:
        return {}
    return {
        "write_disposition": {"disposition": "merge", "strategy": "upsert"},
        "primary_key": list(keys),
        "columns": {DELETED: {"data_type": "bool", "nullable": True, "hard_delete": True}},
    }


def emit_check_events(result: Mapping[str, Any], checked: Checked, schema_policy: str) -> None:
    """The checks' telemetry for a finished job (`result`: its audit row)."""
    if checked.schema_changes:
        emit_schema_changed({**result, "schema_policy": schema_policy}, checked.schema_changes)
    if checked.reconciliation.reconciled == Reconciled.MISMATCH:
        emit_reconcile_mismatch(result)
