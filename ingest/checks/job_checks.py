"""The data-trust hooks of one job run: reconciliation, schema drift, backfill, Delta output.

`ingest.job._load` calls these at fixed points (a few lines there); the logic lives in
`ingest.checks.reconcile`, `ingest.checks.drift` and `ingest.checks.backfill`.

    trust = JobTrust(task, builder, secrets, dest, result)    # after the secrets resolve
    ... pipeline named trust.pipeline_name, state restored only if trust.restores_state
    options = trust.extract_options(options)                   # before build_resource
    trust.prepare(resource)                                    # before the extraction
    trust.after_extraction(result, boundary)  # with the watermark the extraction reached
    trust.finish(pipeline, result)                             # after the result is filled
    trust.close()                                              # always (run_job's finally)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ingest.checks import backfill as _backfill
from ingest.checks.reconcile import MISMATCH, Reconciler, mismatch_mode

if TYPE_CHECKING:
    from ingest.lake.ledger import Boundary

log = logging.getLogger(__name__)


class JobTrust:
    def __init__(
        self,
        task: Any,
        builder: Any,
        secrets: Mapping[str, Any],
        dest: Any,
        result: dict[str, Any],
    ):
        from ingest.checks.drift import DriftCheck

        self.job = task.job
        self.backfill: Mapping[str, Any] | None = getattr(task, "backfill", None)
        self.dest = dest
        self.dataset, self.table = self.job.source_name, self.job.lake_table
        self.mode = mismatch_mode()
        self.reconciler = Reconciler(self.job, builder, secrets, backfill=self.backfill)
        self.drift = DriftCheck(self.job, dest, self.dataset, self.table)
        if self.backfill:
            result["load_type"] = _backfill.LOAD_TYPE
        result["_trust"] = self
        self.result = result

    @property
    def pipeline_name(self) -> str:
        return _backfill.pipeline_name(self.job) if self.backfill else self.job.pipeline_name

    @property
    def schema_name(self) -> str:
        """Schema of this pipeline's loads (prefix of its `_dlt_loads` markers)."""
        return _backfill.schema_name(self.job) if self.backfill else self.job.schema_name_in_lake

    @property
    def restores_state(self) -> bool:
        """Whether the load continues from the pipeline's stored cursor: a backfill reads
        its own range and never moves the job's watermark (its own pipeline's state keeps
        only its task ledger)."""
        return not self.backfill

    @property
    def other_schema_names(self) -> tuple[str, ...]:
        """Schemas whose completed loads also belong to this job's table (clean-up)."""
        if self.backfill:
            return (self.job.schema_name_in_lake,)
        return (_backfill.schema_name(self.job),)

    def extract_options(self, options: Any) -> Any:
        changes: dict[str, Any] = {}
        if self.backfill:
            self.result["watermark_before"] = str(self.backfill.get("from") or "")
            changes["initial_watermark"] = self.backfill.get("from")
            changes["end_watermark"] = self.backfill.get("to") or None
        engine = self.reconciler.extraction_engine(shareable=hasattr(options, "engine"))
        if engine is not None:
            changes["engine"] = engine
        return dataclasses.replace(options, **changes) if changes else options

    def prepare(self, resource: Any) -> None:
        if self.job.table_format == "delta":
            from ingest.lake.delta import current_version

            resource.apply_hints(table_format="delta")
            self.reconciler.delta_version = current_version(self.dest, self.dataset, self.table)
        self.drift.prepare(resource)
        self.reconciler.before_extraction()

    def after_extraction(self, result: Mapping[str, Any], boundary: Boundary | None) -> None:
        """Starts the final source count while dlt normalizes and loads. `boundary`: the
        boundary record restored with the job's state (INCREMENTAL jobs, `ingest.lake.ledger`)."""
        self.reconciler.after_extraction(result, boundary)

    def finish(self, pipeline: Any, result: dict[str, Any]) -> None:
        from ingest.checks.drift import emit_schema_changed

        changes = self.drift.finish(pipeline)
        result["schema_changes"] = changes.summary()
        if changes:
            log.warning(
                "job %s: schema changed (%s): %s",
                self.job.job_id,
                self.job.schema_policy,
                result["schema_changes"],
            )
            emit_schema_changed({**result, "schema_policy": self.job.schema_policy}, changes)
        outcome = self.reconciler.finish(self.dest, self.dataset, self.table, result)
        outcome.apply(result, self.mode)
        if outcome.reconciled == MISMATCH:
            from ingest.checks.events import emit_reconcile_mismatch

            emit_reconcile_mismatch(result)

    def close(self) -> None:
        self.reconciler.close()
