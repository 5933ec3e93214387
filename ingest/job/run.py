"""Run one job: one dlt pipeline copying one table into the lake. Step 2 of a run.

`run_job(task)` takes a `Task` of the `Plan` made by `plan` and returns its `JobResult` (the
audit row; for a load it split, a result that has not ended and carries the `SplitPlan`: its
chunks run next, then its commit, whose result is the job's). It
never raises for a job failure: the result says FAILED, with a message that says what to do
and holds no secret; `retriable` says whether another try may help.
"Any failure" includes a native library's panic (`pyo3_runtime.PanicException` is a
`BaseException`): only a request to stop the process passes through
(`ingest.errors.is_process_exit`), so one bad table fails alone.

Guarantees:
- The dlt working folder is new for every call and deleted afterwards; the watermark comes
  from the lake, so any worker with an empty disk continues where the last load stopped.
- One writer per job: the job's lease (`ingest.lake.lease`) is held from the clean-up to the
  completion marker; a second writer waits, then ends SKIPPED (`on_busy="skip"`, the CLI) or
  as a retriable failure (`on_busy="retry"`, Durable activities) naming the holder.
- Files of loads that never committed are removed first, under the lease (`ingest.lake`).
- The commit is fenced: the load is committed by a write of the table's commit log that the
  storage refuses to a writer that lost the lease (`ingest.lake.commits`), before dlt writes the
  state and completion marker; load ids follow the commit order, not the host's clock.
- Idempotent per task (run id + kind: plain, full refresh, backfill range): the task is recorded
  in the pipeline state that dlt commits with the load (`ingest.lake.ledger`); the same task run
  again finds it and reports that load instead of loading again.
- A FULL load is a snapshot, also when it read 0 rows (one empty Parquet file).

The steps pass values, not a shared dict: `_load` returns a `JobOutcome` (what landed, the
watermarks, what the checks found), and `_result` builds the `JobResult` from it once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dlt

from ingest.checks.boundary import COUNT_FROM as BOUNDARY_COUNT_FROM
from ingest.checks.boundary import BoundaryTracker
from ingest.checks.deletes import DeleteDetection
from ingest.checks.deletes import due as deletes_due
from ingest.checks.job_checks import Checked, JobChecks, delta_merge_hints, emit_check_events
from ingest.checks.lookback import LookbackFilter, known_versions
from ingest.checks.reconcile import Outcome
from ingest.checks.table_count import TableCount
from ingest.config import JobConfig
from ingest.errors import JobError, is_process_exit
from ingest.identifiers import lake_name
from ingest.job import cdc
from ingest.job import split as splitting
from ingest.job.compaction import Thresholds, compact
from ingest.job.compaction import due as compaction_due
from ingest.job.errors import classify_error
from ingest.job.progress import (
    Deadline,
    HighestWatermark,
    Progress,
    extracted_rows,
)
from ingest.lake import ledger
from ingest.lake.commits import (
    CommitLog,
    committing_with,
    load_id_exactly,
    load_ids_after,
    use_sequenced_load_ids,
)
from ingest.lake.destination import Destination
from ingest.lake.layout import lease_name, load_id_of
from ingest.lake.lease import Holder, JobLease, LeaseBusy, LeaseLost, lease_for
from ingest.lake.loads import count_rows, ensure_dataset, remove_incomplete_loads, table_files
from ingest.lake.parquet_writer import use_lake_parquet_writer
from ingest.model.result import JobResult, Landed, Watermarks, short_error
from ingest.model.split import SplitPlan
from ingest.model.task import Task
from ingest.runtime.logcontext import job_context
from ingest.secrets import Redactor, SecretResolver, build_resolver
from ingest.settings import Settings, apply_dlt_defaults
from ingest.sources import (
    ExtractOptions,
    KeyRange,
    SourceBuilder,
    SourceTable,
    SourceTimeouts,
    get_builder,
)
from ingest.sources.cdc import pgoutput
from ingest.sources.cdc.replication import SlotInfo
from ingest.sources.reserved import note as reserved_note
from ingest.sources.sql import coerce_watermark
from ingest.sources.window import read_start
from ingest.views.state import current_state, state_connection
from ingest.vocabulary import Backend, LoadType, Reconciled, ReconcileMode, Status, TableFormat

log = logging.getLogger(__name__)

#: what a job whose lease is held by another writer ends as (see run_job)
ON_BUSY = ("skip", "retry")


@dataclass
class JobRun:
    """What `run_job` keeps while one job runs: the typed context of its steps."""

    task: Task
    settings: Settings
    #: where the source is, for error messages ("source 'erp' (postgresql at host:5432/db)")
    where: str = ""
    #: the watermark the load starts from, once known (a failed job still reports it)
    watermark_before: str = ""
    #: the dlt working folder of this run (deleted at the end)
    workdir: Path | None = None
    #: the data-trust checks in force (closed at the end)
    checks: JobChecks | None = None
    #: the source type's builder, once known (it explains its failures)
    builder: SourceBuilder | None = None
    #: when the job must have finished (INGEST_JOB_TIMEOUT_S, or the job's `timeout`)
    deadline: Deadline | None = None
    #: a CDC job's read (its slot and source connections; closed at the end)
    cdc: cdc.CdcRead | None = None

    #: more to do at the end (a chunk's engine: `ingest.job.chunk`)
    closers: list[Any] = field(default_factory=list)

    def close_later(self, call: Any) -> None:
        self.closers.append(call)

    def close(self) -> None:
        for call in self.closers:
            call()
        if self.cdc is not None:
            self.cdc.close()
        if self.checks is not None:
            self.checks.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class JobOutcome:
    """What a job that did not fail produced."""

    landed: Landed
    watermarks: Watermarks = field(default_factory=Watermarks)
    #: the checks' findings (None: the task had already loaded; its load was checked then)
    checked: Checked | None = None
    #: delete markers the load landed (None: deletes were not detected in this run)
    deleted: int | None = None
    #: rows the lookback caught (None: the job has no lookback)
    late: int | None = None
    #: source columns landed under another name (`ingest.sources.reserved`)
    renamed: dict[str, str] = field(default_factory=dict)
    #: the load was split instead (`ingest.job.split`): its chunks and commit come next
    split: SplitPlan | None = None
    #: a split load's commit: the chunks it committed
    chunks: int | None = None
    #: CDC jobs: (inserts, updates) landed (None: not a CDC job)
    cdc: tuple[int, int] | None = None
    #: CDC jobs: the slot after the run (telemetry)
    slot: SlotInfo | None = None


def _deadline(job: JobConfig, settings: Settings) -> Deadline:
    if job.timeout_s:
        return Deadline(job, job.timeout_s, f"the job's timeout in {job.origin or 'the config'}")
    return Deadline(job, settings.job_timeout_s)


def _source_timeouts(settings: Settings, deadline: Deadline) -> SourceTimeouts:
    """A statement may run INGEST_STATEMENT_TIMEOUT_S, and never past the job's deadline."""
    statement = deadline.seconds
    if settings.statement_timeout_s:
        statement = min(statement, settings.statement_timeout_s)
    return SourceTimeouts(statement_s=statement, lock_s=settings.lock_timeout_s or None)


def _working_dir(settings: Settings, task: Task) -> Path:
    safe_run = "".join(c if c.isalnum() or c in "-_" else "_" for c in task.run_id)[:80]
    name = f"{safe_run}-{task.job.job_id}-{uuid.uuid4().hex[:8]}"
    return settings.work_dir / "pipelines" / name


def _lease(task: Task, dest: Destination, settings: Settings, part: str = "") -> JobLease:
    """The lease every writer of this job's lake table takes (plain, full refresh, backfill);
    `part`: a split load's chunk, for messages."""
    return lease_for(
        dest,
        lease_name(task.job.source_name, task.job.lake_table),
        Holder.me(task.run_id, task.kind + part),
        wait_s=settings.lease_wait_s,
        same_task_wait_s=settings.lease_same_task_wait_s,
        period_s=settings.lease_period_s,
    )


def _already_loaded(
    task: Task, dest: Destination, entry: ledger.Entry, pipeline: Any
) -> JobOutcome:
    """The outcome of a task that already loaded: its load, as it is in the lake."""
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
    after = ""
    if job.watermark_column and job.is_incremental and not task.backfill and entry.latest:
        # the state's cursor is the one this load reached
        after = ledger.watermark_text(ledger.last_value(pipeline.state, job.watermark_column))
    return JobOutcome(
        Landed(count_rows(dest, files), len(files), entry.load_id),
        Watermarks(entry.watermark_before, after),
    )


def _load(run: JobRun, resolver: SecretResolver, options: ExtractOptions) -> JobOutcome:
    task, settings = run.task, run.settings
    job = task.job
    deadline = run.deadline = _deadline(job, settings)
    builder = run.builder = get_builder(job.source_type, _source_timeouts(settings, deadline))
    secrets = builder.secrets(resolver, job.source_name)
    run.where = f"source {job.source_name!r} ({builder.describe(secrets)})"

    dest = Destination.from_url(task.destination)
    dest.ensure_exists()
    dataset, table = job.source_name, job.lake_table
    ensure_dataset(dest, dataset)
    checks = run.checks = JobChecks(task, builder, secrets, dest)
    with _lease(task, dest, settings) as lease:
        # a split load of another task still landing: the table is busy (ingest.job.split)
        found = splitting.guard(lease.read_log(), task, settings, lease)
        # under the lease, files of loads that never committed belong to dead loads only
        _, commit_log = remove_incomplete_loads(
            dest,
            dataset,
            table,
            task.pipeline_name,
            task.schema_name,
            checks.other_schema_names,
            lease,
            found,
        )
        run.workdir = _working_dir(settings, task)
        run.workdir.mkdir(parents=True, exist_ok=True)
        pipeline = dlt.pipeline(
            pipeline_name=task.pipeline_name,
            destination=dest.dlt_destination(),
            dataset_name=dataset,
            pipelines_dir=str(run.workdir),
        )
        pipeline.sync_destination()
        entry = ledger.find(pipeline.state, task.key)
        if entry is not None:
            return _already_loaded(task, dest, entry, pipeline)
        if job.is_cdc:
            return _load_cdc(run, builder, secrets, dest, lease, commit_log, pipeline)
        if not task.continues_from_state:
            # start from initial_watermark (or the backfill's range); the state committed
            # with this load supersedes the old cursor
            ledger.forget_cursor(pipeline)
        cursor = job.watermark_column or ""
        tracker = highest = None
        before = ""
        if task.backfill:
            before = task.backfill.start
            highest = HighestWatermark(cursor)
        stored = boundary = None
        if job.is_incremental and not task.backfill:
            stored = ledger.last_value(pipeline.state, cursor)
            before = ledger.watermark_text(stored)
            boundary = ledger.boundary(pipeline.state)
            if boundary is not None and boundary.value == before and stored is not None:
                options = dataclasses.replace(
                    options,
                    last_value=stored,
                    open_unless_boundary_changed=(
                        boundary.rows if boundary.rows >= BOUNDARY_COUNT_FROM else None
                    ),
                )
        run.watermark_before = before
        split = task.split  # a split load's commit (chunks never run here: ingest.job.chunk)
        chunk_rows = chunk_files = 0
        chunk_highest: tuple[str, ...] = ()
        landing = commit_log.pending if split is not None else None
        by_range = split is not None and splitting.counts_ranges(task)
        if by_range:  # counted range by range below, not by the job's reconciliation
            checks.reconciler.skip_reason = "split load: counted by range"
        # the engine dlt reads through (the reconciliation's snapshot, or its counting engine)
        options = checks.extract_options(options)
        if split is None:
            started = splitting.resumed(commit_log, task)
            if started is None and splitting.whole_table(task, stored):
                started = _plan_split(run, secrets, options.engine, lease, commit_log)
            if started is not None:
                return JobOutcome(Landed(), Watermarks(before), split=started)
        else:
            chunk_rows, chunk_files, chunk_highest = splitting.prepare_commit(
                dest, dataset, table, split, commit_log, lease
            )
            if split.watermark_below is not None:  # the chunks read below it, the commit from it
                options = dataclasses.replace(options, initial_watermark=split.watermark_below)
            else:  # the chunks read every row (FULL: the commit lands the empty snapshot file)
                options = dataclasses.replace(
                    options, key_range=KeyRange(split.column, nothing=True), partitions=1
                )
        source = builder.build_resource(job, secrets, options)
        if job.is_incremental and not task.backfill:
            tracker = BoundaryTracker(cursor, stored, boundary, source.primary_key)
        resource = source.resource
        resource.apply_hints(table_name=table)
        checks.prepare(resource, source.primary_key)
        lookback = _lookback_filter(run, dest, source, stored)
        resource.add_step(Progress(job, tracker, highest, deadline, lookback).as_step())
        resources = [resource, ledger.ledger_resource(task.key, before)]
        detection = _delete_detection(run, builder, secrets, dest, source, pipeline, stored)
        if detection is not None:  # the markers land in the same load as the rows
            detection.detect()
            markers = detection.resource(table)
            if job.table_format == TableFormat.DELTA:
                markers.apply_hints(**delta_merge_hints(job, source.primary_key))
            resources.append(markers)
        # the load id orders the table's loads: above every committed one, whatever the clock
        load_id = (
            load_id_exactly(split.load_id) if split else load_ids_after(commit_log.last_load_id)
        )
        with load_id:
            extract_info = pipeline.extract(resources, loader_file_format="parquet")
        # the watermark the extraction reached (in the pipeline state; normalize/load keep it)
        reached = ""
        if highest is not None:  # a backfill: the highest watermark it extracted ("" if none)
            reached = highest.text
            if chunk_highest:  # a split backfill: its chunks read the rows
                reached = _highest_of((*chunk_highest, reached), source.watermark_type, job)
        elif job.is_incremental:
            reached = ledger.watermark_text(ledger.last_value(pipeline.state, cursor)) or before
        watermarks = Watermarks(before, reached)
        read = None
        if tracker is not None:
            start = read_start(stored, source.lag) if stored is not None else None
            closed = source.range_closed or source.lag is not None
            read = tracker.window(start, closed, lookback)
        checks.after_extraction(watermarks, read, source.watermark_type)
        extracted = extracted_rows(extract_info, table)
        landed = Landed()
        # A FULL load always commits (an empty table is an empty snapshot). An incremental
        # run with nothing new commits nothing: the extracted package stays in the working
        # folder and is deleted with it (loading it would only cost dlt's 1 s job polling).
        if not job.is_incremental or extracted > 0 or split is not None:
            deadline.check()
            lease.check()
            committer = Committer(lease, commit_log, task.run_id, task.kind)
            with committing_with(committer):
                landed = _commit(pipeline, table, settings.load_workers)
            committer.confirm(landed.load_id)
            if split is not None:  # the chunks' rows and files are the load's too
                if landed.load_id != split.load_id:
                    raise JobError(
                        f"job {job.job_id}: the commit of split load {split.load_id} made load "
                        f"{landed.load_id or '(none)'}; nothing of the split load counts, run "
                        "the job again"
                    )
                landed = Landed(
                    landed.rows + chunk_rows, landed.files + chunk_files, landed.load_id
                )
        deleted = detection.found.markers if detection is not None and landed.load_id else None
        if deleted:  # rows_loaded counts the source's rows; the markers are rows_deleted
            landed = dataclasses.replace(landed, rows=landed.rows - deleted)
        checked = checks.finish(
            pipeline,
            landed,
            keyed=bool(source.primary_key),
            memory_mb=settings.state_memory_mb,
            spill_dir=run.workdir / "spill",
        )
        if by_range and split is not None and landing is not None and landed.load_id:
            off = not settings.split_snapshot
            outcome = splitting.reconcile(builder, secrets, task, split, landing, off)
            checked = dataclasses.replace(checked, reconciliation=outcome)
        elif split is not None:  # the chunks read in their own transactions, earlier
            checked = _split_note(checked, split)
        late = read.late if read is not None and source.lag is not None else None
        if landed.load_id and source.primary_key and not task.backfill:
            _compact_if_due(run, dest, lease, committer.log)
        return JobOutcome(
            landed,
            watermarks,
            checked,
            deleted,
            late,
            dict(source.renamed),
            chunks=split.chunks if split is not None else None,
        )


def _plan_split(
    run: JobRun,
    secrets: Mapping[str, Any],
    engine: Any,
    lease: JobLease,
    commit_log: CommitLog,
) -> SplitPlan | None:
    """Whether this load is split (`ingest.job.split`), asked through the job's engine (no
    second connection to the source); its plan, written as pending, or None."""
    builder = run.builder
    if not hasattr(builder, "key_bounds"):  # SQL sources only
        return None
    own = engine is None
    if own:
        engine = builder.engine(secrets)  # type: ignore[union-attr]
    try:
        return splitting.plan_split(run.task, run.settings, builder, engine, lease, commit_log)
    finally:
        if own:
            engine.dispose()


def _highest_of(texts: tuple[str, ...], column_type: Any, job: JobConfig) -> str:
    """The highest of watermarks given as text, compared as the column's values."""
    values = [coerce_watermark(t, column_type, job) for t in texts if t]
    return ledger.watermark_text(max(values)) if values else ""


def _split_note(checked: Checked, split: SplitPlan) -> Checked:
    """The reconciliation of a split load says how its rows were read: by its chunks, each in
    its own transaction, counted against the source at the commit (`ingest.job.split`)."""
    outcome = checked.reconciliation
    if outcome.reconciled == Reconciled.SKIPPED:
        return checked
    note = (
        f"{outcome.note}; split load: {split.chunks} chunks read in their own transactions, "
        "the source counted at the commit"
    )
    return dataclasses.replace(checked, reconciliation=dataclasses.replace(outcome, note=note))


def _load_cdc(
    run: JobRun,
    builder: SourceBuilder,
    secrets: dict[str, Any],
    dest: Destination,
    lease: JobLease,
    commit_log: CommitLog,
    pipeline: Any,
) -> JobOutcome:
    """A CDC job's load under its lease (`ingest.job.cdc`): the first copy in the slot's
    snapshot, or the slot's changes up to the run's end position; the slot is confirmed only
    after the load committed."""
    task, settings = run.task, run.settings
    job, table = task.job, task.job.lake_table
    assert run.workdir is not None and run.deadline is not None and run.checks is not None
    stored = cdc.stored_lsn(pipeline.state) if task.continues_from_state else None
    read = run.cdc = cdc.CdcRead(
        job,
        builder,
        secrets,
        dest,
        run.workdir,
        job.chunk_size or settings.chunk_size,
        settings.cdc_max_changes,
        settings.cdc_max_bytes,
        settings.state_memory_mb,
        stored,
        fast_path=settings.backend != Backend.PYARROW,
    )
    keys = read.prepare()
    read.deadline_s = time.monotonic() + run.deadline.remaining()
    run.watermark_before = pgoutput.lsn_text(stored) if stored is not None else ""
    resource = read.resource()
    resource.apply_hints(table_name=table, columns=read.hints(), primary_key=list(keys))
    run.checks.drift.prepare(resource)
    with load_ids_after(commit_log.last_load_id):
        extract_info = pipeline.extract(
            [resource, ledger.ledger_resource(task.key, run.watermark_before)],
            loader_file_format="parquet",
        )
    after = cdc.stored_lsn(pipeline.state)
    watermarks = Watermarks(
        run.watermark_before, pgoutput.lsn_text(after) if after is not None else ""
    )
    landed = Landed()
    # the first copy always commits (its LSN must land, also for an empty table)
    if extracted_rows(extract_info, table) > 0 or read.snapshot_rows is not None:
        run.deadline.check()
        lease.check()
        committer = Committer(lease, commit_log, task.run_id, task.kind)
        with committing_with(committer):
            landed = _commit(pipeline, table, settings.load_workers)
        committer.confirm(landed.load_id)
    read.confirm()  # after the commit: a crash before it re-reads what the lake holds
    if landed.load_id:
        _compact_if_due(run, dest, lease, committer.log)
    counts = read.read
    outcome, counted = read.reconcile()
    changes = run.checks.drift.finish(pipeline)
    # the whole-table count of later runs (`ingest.checks.cdc_count`): the source's snapshot
    # against the lake's current state, at the cost of the run's changes
    table_count = TableCount(counted.expected, counted.lake.rows) if counted else None
    checked = Checked(outcome, changes, table_count, run.checks._new_columns(pipeline))
    if landed.load_id and read.markers:  # rows_loaded: versions; the markers: rows_deleted
        landed = dataclasses.replace(landed, rows=landed.rows - read.markers)
    landed_any = bool(landed.load_id)
    return JobOutcome(
        landed,
        watermarks,
        checked,
        read.markers if landed_any else 0,
        None,
        dict(read.plan.renamed) if read.plan else {},
        cdc=(counts.inserts, counts.updates) if landed_any else (0, 0),
        slot=read.slot_info(),
    )


def _compact_if_due(run: JobRun, dest: Destination, lease: JobLease, log_: CommitLog) -> None:
    """After a load of a keyed table, under its lease: a new base when the thresholds say so
    (`ingest.job.compaction`). The load has committed: a failure here is logged, never the
    job's failure (the next run tries again)."""
    job, settings = run.task.job, run.settings
    if not job.keeps_versions or job.table_format == TableFormat.DELTA:
        return
    assert run.workdir is not None
    try:
        thresholds = Thresholds(
            settings.compact_loads, settings.compact_ratio, settings.compact_max_rows
        )
        reason = compaction_due(dest, job, thresholds)
        if not reason:
            return
        log.info("job %s: compacting: %s", job.job_id, reason)
        compact(
            dest,
            job,
            lease,
            log_,
            run_id=run.task.run_id,
            workdir=run.workdir / "compaction",
            memory_mb=settings.state_memory_mb,
            file_max_rows=settings.file_max_rows,
            retention_days=settings.history_retention_days,
            dictionary=settings.parquet_dictionary,
        )
    except Exception as exc:  # e.g. the lease lost meanwhile: no base commits, files cleaned
        log.warning("job %s: not compacted: %s: %s", job.job_id, type(exc).__name__, exc)


def _lookback_filter(
    run: JobRun, dest: Destination, source: SourceTable, stored: Any
) -> LookbackFilter | None:
    """With a lookback: the versions the lake holds in the re-read window, to land only the
    rows it does not hold (`ingest.checks.lookback`)."""
    job = run.task.job
    if source.lag is None or stored is None or not source.primary_key or run.task.backfill:
        return None
    assert run.workdir is not None and job.watermark_column
    state = current_state(dest, job)
    known: set[tuple] = set()
    if state is not None:
        connection = state_connection(dest, run.settings.state_memory_mb, run.workdir / "spill")
        try:
            known = known_versions(
                state,
                connection,
                lake_name(job.watermark_column),
                read_start(stored, source.lag),
                stored,
            )
        finally:
            connection.close()
    return LookbackFilter(job.watermark_column, source.primary_key, stored, known)


def _delete_detection(
    run: JobRun,
    builder: SourceBuilder,
    secrets: Mapping[str, Any],
    dest: Destination,
    source: SourceTable,
    pipeline: Any,
    stored: Any,
) -> DeleteDetection | None:
    """The run's delete detection, when the job asks for one and it is due
    (`ingest.checks.deletes`); its markers carry the stored watermark (`stored`)."""
    task, job = run.task, run.task.job
    if task.backfill or not job.is_incremental or job.delete_detection is None:
        return None
    now = dt.datetime.now(dt.UTC)
    if not deletes_due(job, ledger.deletes_checked_at(pipeline.state), now):
        log.info("job %s: deletes not detected in this run (delete_detection_every)", job.job_id)
        return None
    if not source.primary_key:
        raise JobError(
            f"job {job.job_id}: delete_detection needs a key: declare primary_key in "
            f"{job.origin or 'the config'} (table {job.table_name} has no primary key of its own)"
        )
    assert run.workdir is not None
    return DeleteDetection(
        job,
        builder,
        builder.engine(secrets),  # type: ignore[attr-defined]
        dest,
        source.primary_key,
        run.workdir / "deletes",
        run.settings.state_memory_mb,
        stored,
        checked_at=now.isoformat(timespec="seconds"),
        not_null=_not_null_keys(source),
    )


def _not_null_keys(source: SourceTable) -> frozenset[str]:
    """The key columns (lake names) the source's rows land NOT NULL (their dlt hints)."""
    hints = source.resource.columns if isinstance(source.resource.columns, dict) else {}
    return frozenset(
        lake_name(name)
        for name, hint in hints.items()
        if name in source.primary_key and hint.get("nullable", True) is False
    )


@dataclass
class Committer:
    """The load's commit (`ingest.lake.commits`): called by the lake's dlt client before it
    writes the load's state and completion marker; the lease refuses it to a writer that lost
    the job (LeaseLost), and then neither is written."""

    lease: JobLease
    log: CommitLog
    run_id: str
    task: str

    def __call__(self, load_id: str, schema: str) -> None:
        log = self.log.add(load_id, schema, self.run_id, self.task)
        self.lease.write_log(log)
        self.log = log

    def confirm(self, load_id: str) -> None:
        """After dlt wrote the state and the marker: the commit still stands. A writer that
        stalled between its commit and its marker for longer than the lease period may find
        that the next holder removed the load (its marker was missing then): it is no load,
        and this writer must not report one."""
        if not load_id:
            return
        log = self.lease.read_log()  # LeaseLost when another writer holds the job now
        if log is None or not log.is_committed(load_id):
            raise LeaseLost(
                f"the lease on {self.lease.name} was lost before the load committed: another "
                f"writer took the job over while this one stalled between its commit and its "
                f"completion marker, and removed load {load_id}. Nothing of it counts; the "
                "next run removes what is left of it"
            )


def _commit(pipeline: Any, table: str, workers: int) -> Landed:
    """dlt's normalize and load steps: the load's files, its state, its completion marker.
    `workers`: files written at once (INGEST_LOAD_WORKERS; each may hold a file in memory)."""
    pipeline.normalize()
    load_info = pipeline.load(workers=workers)
    normalize_info = pipeline.last_trace.last_normalize_info
    rows = normalize_info.row_counts.get(table, 0) if normalize_info else 0
    files = sum(
        1
        for package in load_info.load_packages
        for job_info in package.jobs.get("completed_jobs", [])
        if job_info.job_file_info.table_name == table
    )
    load_id = load_info.loads_ids[-1] if load_info.loads_ids else ""
    return Landed(rows, files, load_id)


def _reconciliation_status(
    outcome: Outcome, mode: ReconcileMode, job_id: str
) -> tuple[Status, str]:
    """A MISMATCH fails the job (INGEST_RECONCILE=FAILED) or flags it (WARN)."""
    if outcome.reconciled != Reconciled.MISMATCH:
        return Status.SUCCESS, ""
    message = f"reconciliation mismatch: {outcome.note}"
    if mode == ReconcileMode.WARN:
        log.warning("job %s: %s (INGEST_RECONCILE=WARN)", job_id, message)
        return Status.WARN, ""
    log.error("job %s: %s", job_id, message)
    return Status.FAILED, (
        f"{message}; the rows are in the lake, the job is marked FAILED "
        "(set INGEST_RECONCILE=WARN to only flag it)"
    )


def run_job(
    task: Task,
    *,
    settings: Settings | None = None,
    resolver: SecretResolver | None = None,
    options: ExtractOptions | None = None,
    on_busy: str = "skip",
) -> JobResult:
    """Run one job and return its result. A job that split its load returns a result that
    has not ended (`result.split`: the plan; no audit row): the runner runs its chunks, then
    its commit (`ingest.job.chunk`), whose result is the job's.

    `on_busy`: what a job whose lease another writer holds (and kept longer than
    INGEST_LEASE_WAIT_S) ends as: "skip" (SKIPPED, the local CLI) or "retry" (a retriable
    FAILED result, for Durable's retry policy)."""
    if on_busy not in ON_BUSY:
        raise ValueError(f"on_busy must be one of {ON_BUSY}, got {on_busy!r}")
    settings = settings or Settings.from_env()
    apply_dlt_defaults(settings)
    use_lake_parquet_writer(settings.parquet_dictionary)
    use_sequenced_load_ids()
    job = task.job
    redactor = resolver.redactor if resolver else Redactor()
    resolver = resolver or build_resolver(
        settings.secrets_file, settings.key_vault_url, redactor=redactor
    )
    options = options or ExtractOptions(
        chunk_size=settings.chunk_size,
        backend=settings.backend,
        partitions=settings.read_partitions,
    )
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    run = JobRun(task, settings)
    outcome: JobOutcome | None = None
    status, error, retriable = Status.SUCCESS, "", False
    with job_context(task.run_id, job.job_id):
        log.info(
            "job %s started: %s %s.%s (%s)",
            job.job_id,
            job.source_type,
            job.source_name,
            job.table_name,
            job.load_type,
        )
        try:
            outcome = _load(run, resolver, options)
        except LeaseBusy as exc:
            status = Status.SKIPPED if on_busy == "skip" else Status.FAILED
            error, retriable = str(exc), on_busy == "retry"
        except BaseException as exc:  # one job's failure (also a native panic) never stops the run
            if is_process_exit(exc):
                raise
            failure: JobError = classify_error(
                exc,
                job,
                run.where or f"source {job.source_name!r}",
                builder=run.builder,
                redact=redactor.redact,
            )
            status, error, retriable = Status.FAILED, str(failure), failure.retriable
            log.debug("job %s failure detail", job.job_id, exc_info=True)
        finally:
            run.close()
        if outcome is not None and outcome.checked is not None:
            status, error = _reconciliation_status(
                outcome.checked.reconciliation, settings.reconcile_mode, job.job_id
            )
        result = _result(
            run,
            outcome,
            Ending(status, short_error(redactor.redact(error)), retriable),
            started,
            round(time.monotonic() - clock, 3),
        )
        if outcome is not None and outcome.split is not None:
            log.info("job %s: split into %d chunks", job.job_id, outcome.split.chunks)
            # not ended: the runner runs the chunks, then the commit (ingest.job.chunk)
            return replace(result, split=outcome.split)
        _log_end(result)
        if outcome is not None and outcome.checked is not None:
            emit_check_events(result.to_dict(), outcome.checked, job.schema_policy)
    return result


@dataclass(frozen=True)
class Ending:
    """How a job ended: its status, its error (already redacted) and whether to retry."""

    status: Status
    error: str = ""
    retriable: bool = False


def _result(
    run: JobRun,
    outcome: JobOutcome | None,
    ending: Ending,
    started: dt.datetime,
    duration_s: float,
) -> JobResult:
    """The job's result, built once from what its steps returned."""
    task = run.task
    job = task.job
    landed = outcome.landed if outcome else Landed()
    watermarks = outcome.watermarks if outcome else Watermarks(run.watermark_before)
    checked = outcome.checked if outcome else None
    reconciliation = checked.reconciliation if checked else None
    table = checked.table if checked else None
    if outcome is not None and checked is None:  # a task that had loaded: reported, not checked
        reconciliation = Outcome(
            Reconciled.SKIPPED,
            None,
            f"already loaded by this task (load {landed.load_id}); not counted again",
        )
    return JobResult(
        run_id=task.run_id,
        job_id=job.job_id,
        source_type=job.source_type,
        source_name=job.source_name,
        table_name=job.table_name,
        load_type=LoadType.BACKFILL if task.backfill else job.load_type,
        status=ending.status,
        rows_loaded=landed.rows,
        files_written=landed.files,
        watermark_column=job.watermark_column or "",
        watermark_before=watermarks.before,
        watermark_after=watermarks.after,
        load_id=landed.load_id,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        duration_s=duration_s,
        error=ending.error,
        source_rows=reconciliation.source_rows if reconciliation else None,
        reconciled=reconciliation.reconciled if reconciliation else "",
        reconcile_note=reconciliation.note if reconciliation else "",
        schema_changes=_schema_note(checked, outcome.renamed if outcome else {}),
        rows_deleted=outcome.deleted if outcome else None,
        late_rows=outcome.late if outcome else None,
        table_rows_source=table.source if table else None,
        table_rows_lake=table.lake if table else None,
        table_reconciled=table.reconciled if table else "",
        chunks=outcome.chunks if outcome else None,
        rows_inserted=outcome.cdc[0] if outcome and outcome.cdc else None,
        rows_updated=outcome.cdc[1] if outcome and outcome.cdc else None,
        cdc_slot=outcome.slot.name if outcome and outcome.slot else "",
        cdc_retained_bytes=outcome.slot.retained_bytes if outcome and outcome.slot else None,
        cdc_lag_bytes=outcome.slot.lag_bytes if outcome and outcome.slot else None,
        retriable=ending.retriable,
    )


def _schema_note(checked: Checked | None, renamed: dict[str, str]) -> str:
    """The schema changes, and a column renamed on the way in the first time it lands."""
    if checked is None:
        return ""
    summary = checked.schema_changes.summary()
    if renamed and any(lake_name(new) in checked.new_columns for new in renamed.values()):
        return "; ".join(p for p in (reserved_note(renamed), summary) if p)
    return summary


def _log_end(result: JobResult) -> None:
    if result.status in (Status.SUCCESS, Status.WARN):
        log.info(
            "job %s finished: %s rows in %s file(s), %.1f s, watermark %s",
            result.job_id,
            f"{result.rows_loaded:,}",
            result.files_written,
            result.duration_s,
            result.watermark_after or "-",
        )
    elif result.status == Status.SKIPPED:
        log.warning("job %s skipped: %s", result.job_id, result.error)
    else:
        log.error("job %s failed: %s", result.job_id, result.error)
