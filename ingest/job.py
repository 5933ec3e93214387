"""Run one job: one dlt pipeline copying one table into the lake. Step 2 of a run.

`run_job(task)` takes the small JSON task made by `plan` and returns the JSON job result
(the audit row). It never raises for a job failure: the result says FAILED, with a message
that says what to do and holds no secret; `retriable` says whether another try may help.

Guarantees:
- The dlt working folder is new for every call and deleted afterwards; the watermark comes
  from the lake, so any worker with an empty disk continues where the last load stopped.
- One writer per job: the job's lease (`ingest.lake.lease`) is held from the clean-up to the
  completion marker; a second writer waits, then ends SKIPPED (`on_busy="skip"`, the CLI) or
  as a retriable failure (`on_busy="retry"`, Durable activities) naming the holder.
- Files of loads that never completed are removed first, under the lease (`ingest.lake.loads`).
- Idempotent per task (run id + kind: plain, full refresh, backfill range): the task is recorded
  in the pipeline state that dlt commits with the load (`ingest.lake.ledger`); the same task run
  again finds it and reports that load instead of loading again.
- A FULL load is a snapshot, also when it read 0 rows (one empty Parquet file).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.checks.job_checks import JobTrust
from ingest.config import JobConfig
from ingest.errors import JobError, RetriableJobError
from ingest.lake import ledger
from ingest.lake.destination import Destination
from ingest.lake.lease import JobLease, LeaseBusy
from ingest.results import JobResult, short_error
from ingest.runtime.logcontext import job_context
from ingest.secrets.resolver import Redactor, SecretResolver, build_resolver
from ingest.settings import Settings, apply_dlt_defaults
from ingest.sources.base import ExtractOptions

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 15.0
#: what a job whose lease is held by another writer ends as (see run_job)
ON_BUSY = ("skip", "retry")


@dataclass(frozen=True)
class Task:
    """What `plan` hands to `run_job`: small, JSON-safe, no secrets."""

    run_id: str
    job: JobConfig
    destination: str
    full_refresh: bool = False
    config_path: str | None = None
    #: data trust: {"from", "to"} re-extracts that watermark range (ingest.checks.backfill)
    backfill: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job.to_dict(),
            "destination": self.destination,
            "full_refresh": self.full_refresh,
            "config_path": self.config_path,
            "backfill": self.backfill,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        return cls(
            run_id=str(data["run_id"]),
            job=JobConfig.from_dict(data["job"]),
            destination=str(data["destination"]),
            full_refresh=bool(data.get("full_refresh", False)),
            config_path=data.get("config_path"),
            backfill=data.get("backfill") or None,
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _row_count(item: Any) -> int:
    """Rows in one extracted item: an Arrow table/batch, a list of rows, or one row; items
    wrapped with dlt hints (the empty first item of sql_table) count their payload."""
    if hasattr(item, "meta") and hasattr(item, "data"):
        item = item.data
    num_rows = getattr(item, "num_rows", None)
    if num_rows is not None:
        return int(num_rows)
    return len(item) if isinstance(item, list) else 1


def _extracted_rows(extract_info: Any, table: str) -> int:
    """Rows of `table` that survived extraction (after dlt's incremental filtering)."""
    total = 0
    for metrics in (extract_info.metrics or {}).values():
        for step in metrics:
            table_metrics = step.get("table_metrics", {}).get(table)
            total += table_metrics.items_count if table_metrics else 0
    return total


class _Progress:
    """Counts the rows that pass dlt's incremental filter and logs every few seconds. For
    INCREMENTAL jobs it also keeps the boundary record (`ingest.lake.ledger`): how many of them have
    the highest watermark seen so far."""

    def __init__(self, job: JobConfig, boundary: _BoundaryTracker | None = None):
        self.job = job
        self.rows = 0
        self.last_log = time.monotonic()
        self.boundary = boundary

    def __call__(self, item: Any) -> Any:
        rows = _row_count(item)
        self.rows += rows
        if self.boundary is not None and rows:
            self.boundary.add(item)
        now = time.monotonic()
        if now - self.last_log >= PROGRESS_EVERY_S:
            self.last_log = now
            log.info(
                "job %s %s: %s rows extracted so far",
                self.job.job_id,
                self.job.table_name,
                f"{self.rows:,}",
            )
        return item


def _after_incremental(function: Any) -> Any:
    """A dlt map step that sees the rows dlt's incremental filter let through (a plain
    `add_map` is placed before it: dlt keeps its incremental step last)."""
    from dlt.extract.items_transform import MapItem

    class AfterIncremental(MapItem):
        placement_affinity = 1.5  # incremental: 1, row limit: 1.1

    return AfterIncremental(function)


class _BoundaryTracker:
    """The rows at the highest watermark of an extraction, recorded in the state as it goes
    (dlt commits the state as it is when the extraction ends)."""

    def __init__(self, cursor: str, before: Any, stored: ledger.Boundary | None):
        self.cursor = cursor.lower()
        self.before_text = ledger.watermark_text(before)
        self.stored = stored
        self.value: Any = None
        self.rows = 0

    def add(self, item: Any) -> None:
        import pyarrow.compute as pc

        names = getattr(item, "column_names", None)
        if names is None:  # not Arrow (REST rows): no boundary record
            return
        column = next((n for n in names if n.lower() == self.cursor), None)
        if column is None:
            return
        values = item.column(column)
        highest = pc.max(values)
        if not highest.is_valid:
            return
        value = highest.as_py()
        if self.value is None or value > self.value:
            self.value, self.rows = value, 0
        if value == self.value:
            self.rows += int(pc.sum(pc.equal(values, highest)).as_py() or 0)
        total = self.rows
        stored = self.stored
        if stored is not None and stored.value == self.before_text == ledger.watermark_text(
            self.value
        ):
            total += stored.rows  # only more rows at the old boundary: add them up
        ledger.record_boundary(self.value, total)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and every error behind it (dlt wraps step failures several levels deep)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return chain


def classify_error(exc: BaseException, job: JobConfig, where: str) -> JobError:
    """The JobError to report for `exc`: ours as is, database errors made actionable,
    network errors retriable, anything else named by its type and message."""
    from ingest.sources.sql import classify_db_error

    chain = _chain(exc)
    for error in chain:
        if isinstance(error, JobError):
            return error
    for error in chain:
        if (db_error := classify_db_error(error, where)) is not None:
            return db_error
    root = chain[-1]
    if "Rescaling Decimal value would cause data loss" in str(root):
        return JobError(
            f"a numeric value in {job.table_name} has more decimal places than its lake type "
            "(numeric without precision lands as decimal(38,9)); nothing was loaded: declare "
            "the column as numeric(p,s) in the source or read the table through a view that "
            "casts it"
        )
    if isinstance(root, ConnectionError | TimeoutError):
        return RetriableJobError(f"{where}: {type(root).__name__}: {root}")
    return JobError(f"{type(root).__name__}: {root}")


def _working_dir(settings: Settings, run_id: str, job: JobConfig) -> Path:
    safe_run = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:80]
    return settings.work_dir / "pipelines" / f"{safe_run}-{job.job_id}-{uuid.uuid4().hex[:8]}"


def _lease(task: Task, dest: Destination, settings: Settings, kind: str) -> JobLease:
    """The lease every writer of this job's lake table takes (plain, full refresh, backfill)."""
    from ingest.lake.lease import Holder, lease_for, lease_name

    return lease_for(
        dest,
        lease_name(task.job.source_name, task.job.lake_table),
        Holder.me(task.run_id, kind),
        wait_s=settings.lease_wait_s,
        same_task_wait_s=settings.lease_same_task_wait_s,
        period_s=settings.lease_period_s,
    )


def _report_loaded(
    task: Task, dest: Destination, entry: ledger.Entry, pipeline: Any, result: dict[str, Any]
) -> None:
    """The result of a task that already loaded: its load, as it is in the lake."""
    from ingest.lake.loads import count_rows, load_id_of, table_files

    job = task.job
    files = [
        p
        for p in table_files(dest, job.source_name, job.lake_table)
        if load_id_of(p) == entry.load_id
    ]
    log.info(
        "job %s: this task (run %s) already loaded it: load %s; not loading again",
        job.job_id,
        task.run_id,
        entry.load_id,
    )
    result.update(
        rows_loaded=count_rows(dest, files),
        files_written=len(files),
        load_id=entry.load_id,
        watermark_before=entry.watermark_before,
        reconciled="SKIPPED",
        reconcile_note=f"already loaded by this task (load {entry.load_id}); not counted again",
    )
    if job.is_incremental and not task.backfill and entry.latest:
        # the state's cursor is the one this load reached
        result["watermark_after"] = ledger.watermark_text(
            ledger.last_value(pipeline.state, job.watermark_column or "")
        )


def _load(
    task: Task,
    settings: Settings,
    resolver: SecretResolver,
    options: ExtractOptions,
    result: dict[str, Any],
) -> None:
    """Do the work; fill `result` as facts become known (so a failure still reports them)."""
    import dlt

    from ingest.lake.loads import ensure_dataset, remove_incomplete_loads
    from ingest.sources import get_builder

    job = task.job
    builder = get_builder(job.source_type)
    secrets = resolver.resolve(job.source_name, builder.required_keys, builder.optional_keys)
    result["_where"] = f"source {job.source_name!r} ({builder.describe(secrets)})"

    dest = Destination.from_url(task.destination)
    dest.ensure_exists()
    dataset, table = job.source_name, job.lake_table
    ensure_dataset(dest, dataset)
    # data trust hooks (ingest.checks.job_checks): reconciliation, drift, backfill, Delta
    trust = JobTrust(task, builder, secrets, dest, result)
    kind = ledger.task_kind(task.full_refresh, task.backfill)
    key = ledger.task_key(task.run_id, kind)
    with _lease(task, dest, settings, kind) as lease:
        # under the lease, files without a completion marker belong to dead loads only
        remove_incomplete_loads(
            dest, dataset, table, trust.pipeline_name, trust.schema_name, trust.other_schema_names
        )
        workdir = _working_dir(settings, task.run_id, job)
        workdir.mkdir(parents=True, exist_ok=True)
        result["_workdir"] = workdir
        pipeline = dlt.pipeline(
            pipeline_name=trust.pipeline_name,
            destination=dest.dlt_destination(),
            dataset_name=dataset,
            pipelines_dir=str(workdir),
        )
        pipeline.sync_destination()
        entry = ledger.find(pipeline.state, key)
        if entry is not None:
            _report_loaded(task, dest, entry, pipeline, result)
            return
        if task.full_refresh or not trust.restores_state:
            # start from initial_watermark (or the backfill's range); the state committed
            # with this load supersedes the old cursor
            ledger.forget_cursor(pipeline)
        cursor = job.watermark_column or ""
        before = ledger.last_value(pipeline.state, cursor) if job.is_incremental else None
        boundary = None
        if job.is_incremental and trust.restores_state:
            result["watermark_before"] = ledger.watermark_text(before)
            boundary = _BoundaryTracker(cursor, before, ledger.boundary(pipeline.state))
        resource = builder.build_resource(job, secrets, trust.extract_options(options))
        resource.apply_hints(table_name=table)
        trust.prepare(resource)
        resource.add_step(_after_incremental(_Progress(job, boundary)))
        extract_info = pipeline.extract(
            [resource, ledger.ledger_resource(key, result.get("watermark_before", ""))],
            loader_file_format="parquet",
        )
        # the watermark the extraction reached (in the pipeline state; normalize/load keep it)
        reached = ""
        if job.is_incremental:
            reached = ledger.watermark_text(
                ledger.last_value(pipeline.state, cursor)
            ) or result.get("watermark_before", "")
        trust.after_extraction(
            {**result, "watermark_after": reached},
            boundary.stored if boundary is not None else None,
        )
        rows, files, load_id = 0, 0, ""
        # A FULL load always commits (an empty table is an empty snapshot). An incremental
        # run with nothing new commits nothing: the extracted package stays in the working
        # folder and is deleted with it (loading it would only cost dlt's 1 s job polling).
        if not job.is_incremental or _extracted_rows(extract_info, table) > 0:
            lease.check()
            pipeline.normalize()
            load_info = pipeline.load()
            normalize_info = pipeline.last_trace.last_normalize_info
            rows = normalize_info.row_counts.get(table, 0) if normalize_info else 0
            for package in load_info.load_packages:
                for job_info in package.jobs.get("completed_jobs", []):
                    if job_info.job_file_info.table_name == table:
                        files += 1
            load_id = load_info.loads_ids[-1] if load_info.loads_ids else ""
        result.update(rows_loaded=rows, files_written=files, load_id=load_id)
        if job.is_incremental:
            result["watermark_after"] = reached
        trust.finish(pipeline, result)


def run_job(
    task: Mapping[str, Any],
    *,
    settings: Settings | None = None,
    resolver: SecretResolver | None = None,
    options: ExtractOptions | None = None,
    on_busy: str = "skip",
) -> dict[str, Any]:
    """Run one job and return its result (a JSON-safe dict with the audit columns).

    `on_busy`: what a job whose lease another writer holds (and kept longer than
    INGEST_LEASE_WAIT_S) ends as: "skip" (SKIPPED, the local CLI) or "retry" (a retriable
    FAILED result, for Durable's retry policy)."""
    if on_busy not in ON_BUSY:
        raise ValueError(f"on_busy must be one of {ON_BUSY}, got {on_busy!r}")
    settings = settings or Settings.from_env()
    apply_dlt_defaults(settings)
    spec = Task.from_dict(task)
    job = spec.job
    redactor = resolver.redactor if resolver else Redactor()
    resolver = resolver or build_resolver(
        settings.secrets_file, settings.key_vault_url, redactor=redactor
    )
    options = options or ExtractOptions(
        chunk_size=settings.chunk_size,
        config_path=spec.config_path,
        backend=settings.backend,
        partitions=settings.read_partitions,
    )
    started = _now()
    clock = time.monotonic()
    result: dict[str, Any] = {
        "run_id": spec.run_id,
        "job_id": job.job_id,
        "source_type": job.source_type,
        "source_name": job.source_name,
        "table_name": job.table_name,
        "load_type": job.load_type,
        "status": "SUCCESS",
        "watermark_column": job.watermark_column or "",
        "started_at": started.isoformat(timespec="seconds"),
    }
    with job_context(spec.run_id, job.job_id):
        log.info(
            "job %s started: %s %s.%s (%s)",
            job.job_id,
            job.source_type,
            job.source_name,
            job.table_name,
            job.load_type,
        )
        try:
            _load(spec, settings, resolver, options, result)
        except LeaseBusy as exc:
            skip = on_busy == "skip"
            result["status"] = "SKIPPED" if skip else "FAILED"
            result["retriable"] = not skip
            result["error"] = short_error(redactor.redact(str(exc)))
            log.warning("job %s %s: %s", job.job_id, result["status"].lower(), result["error"])
        except Exception as exc:  # one job's failure never stops the run
            where = result.get("_where") or f"source {job.source_name!r}"
            error = classify_error(exc, job, where)
            result["status"] = "FAILED"
            result["retriable"] = error.retriable
            result["error"] = short_error(redactor.redact(str(error)))
            log.error("job %s failed: %s", job.job_id, result["error"])
            log.debug("job %s failure detail", job.job_id, exc_info=True)
        finally:
            workdir = result.pop("_workdir", None)
            if (trust := result.pop("_trust", None)) is not None:
                trust.close()
            result.pop("_where", None)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        finished = _now()
        result["finished_at"] = finished.isoformat(timespec="seconds")
        result["duration_s"] = round(time.monotonic() - clock, 3)
        if result["status"] == "SUCCESS":
            log.info(
                "job %s finished: %s rows in %s file(s), %.1f s, watermark %s",
                job.job_id,
                f"{result.get('rows_loaded', 0):,}",
                result.get("files_written", 0),
                result["duration_s"],
                result.get("watermark_after") or "-",
            )
    return JobResult.from_dict(result).to_dict()
