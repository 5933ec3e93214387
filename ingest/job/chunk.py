"""One chunk of a split load (`ingest.job.split`, step 2): read a key range, land its files.

`run_chunk(task)` takes the job's `Task` with its `split` plan and chunk number and returns a
`ChunkResult` (`status`, `rows`, `error`, `retriable`, ...); it never raises for a
failure. The job's lease is taken only for moments: to check that the split load is still
pending and this chunk has not landed (and to remove this chunk's files of an earlier
attempt), every TOUCH_EVERY_S while it reads (to renew the split load), right before the files
are written, and to record the landing. All are fenced writes or reads of the table's commit
log: a chunk of a split load that was abandoned never lands. Its files carry the split load's
id and are staged outside the table's folder (`ingest.lake.layout.CHUNK_LAYOUT`): only the
split load's commit moves the landed ones into the table. So an attempt that writes late (after
another attempt landed its chunk and the split load committed), or dies right after writing,
can never add a file to a committed load, and it only ever removes staged files.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from typing import Any

import dlt

from ingest.errors import JobError, is_process_exit
from ingest.job import split as splitting
from ingest.job.errors import classify_error
from ingest.job.progress import Deadline, HighestWatermark, Progress
from ingest.job.run import JobRun, _commit, _deadline, _lease, _source_timeouts, _working_dir
from ingest.job.split_snapshot import gone, importing_engine
from ingest.lake import ledger
from ingest.lake.commits import (
    ChunkLanded,
    committing_with,
    load_id_exactly,
    use_sequenced_load_ids,
)
from ingest.lake.destination import Destination
from ingest.lake.lease import JobLease, LeaseBusy
from ingest.lake.loads import count_rows, ensure_dataset, staged_files
from ingest.lake.parquet_writer import use_lake_parquet_writer
from ingest.model.result import ChunkResult, short_error
from ingest.model.split import SplitPlan
from ingest.model.task import Task
from ingest.runtime.logcontext import job_context
from ingest.secrets import Redactor, SecretResolver, build_resolver
from ingest.settings import Settings, apply_dlt_defaults
from ingest.sources import ExtractOptions, KeyRange, get_builder
from ingest.vocabulary import Status

log = logging.getLogger(__name__)


#: how often a running chunk touches its split load (it is being worked on)
TOUCH_EVERY_S = 600.0


class _Toucher:
    """A dlt map step: every TOUCH_EVERY_S while the chunk reads, it touches the pending split
    load (a fenced write under a brief hold of the job's lease), so that a long chunk never
    lets it look abandoned (INGEST_SPLIT_STALE_S); a split load abandoned meanwhile stops the
    chunk at once (SplitAbandoned)."""

    def __init__(self, touch: Any) -> None:
        self.touch = touch
        self.last = time.monotonic()

    def __call__(self, item: Any) -> Any:
        if time.monotonic() - self.last >= TOUCH_EVERY_S:
            self.touch()
            self.last = time.monotonic()
        return item


class _Landing:
    """The chunk's "committer" inside dlt's load step: its files are written; the split
    load's state and completion marker are its commit's, not the chunk's."""

    writes_marker = False

    def __call__(self, load_id: str, schema: str) -> None:
        return None


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _own_files(dest: Destination, task: Task, plan: SplitPlan, prefix: str) -> list[str]:
    job = task.job
    files = staged_files(dest, job.source_name, job.lake_table, plan.load_id)
    start = f"{plan.load_id}.{prefix}"
    return [p for p in files if p.rsplit("/", 1)[-1].startswith(start)]


def _begin(dest: Destination, lease: JobLease, task: Task, plan: SplitPlan) -> int | None:
    """Under the lease: the rows of the chunk when it has landed already (None: it has not;
    then its files of an earlier attempt are removed and the split load is touched)."""
    assert plan.chunk is not None
    log_ = lease.read_log()
    pending = splitting.check_pending(log_, plan, lease)
    if plan.chunk in pending.landed:
        return pending.landed[plan.chunk].rows
    _remove(dest, _own_files(dest, task, plan, splitting.chunk_prefix(plan.chunk)), "earlier")
    assert log_ is not None
    touched = dataclasses.replace(pending, touched=splitting._now())
    lease.write_log(log_.with_pending(touched))
    return None


def _touch(lease: JobLease, plan: SplitPlan) -> None:
    """Under the lease: the split load is being worked on (SplitAbandoned if it is gone)."""
    log_ = lease.read_log()
    pending = splitting.check_pending(log_, plan, lease)
    assert log_ is not None
    lease.write_log(log_.with_pending(dataclasses.replace(pending, touched=splitting._now())))


def _remove(dest: Destination, paths: list[str], which: str) -> None:
    fs = dest.filesystem()
    for path in paths:
        log.info("removing %s: written by an %s attempt of this chunk", path, which)
        fs.rm(path)


def _land(
    dest: Destination,
    lease: JobLease,
    task: Task,
    plan: SplitPlan,
    attempt: str,
    rows: int,
    highest: str,
    snapshot: str = "",
    counted: int | None = None,
) -> int:
    """Under the lease: record this attempt's files and rows in the pending split load. The
    files are counted from their footers: a concurrent attempt of the same chunk that removed
    some of them makes this one fail (and be retried), never land short. An attempt whose
    chunk another attempt landed first, or whose split load is gone (committed or abandoned),
    removes its files: no landing lists them."""
    assert plan.chunk is not None
    log_ = lease.read_log()
    mine = _own_files(dest, task, plan, splitting.chunk_prefix(plan.chunk, attempt))
    try:
        pending = splitting.check_pending(log_, plan, lease)
    except splitting.SplitAbandoned:
        _remove(dest, mine, "abandoned")
        raise
    landed_before = pending.landed.get(plan.chunk)
    if landed_before is not None:
        _remove(dest, [p for p in mine if _name(p) not in landed_before.files], "extra")
        return landed_before.rows
    files = mine
    found = count_rows(dest, files)
    if found != rows:
        raise JobError(
            f"chunk {plan.chunk} of split load {plan.load_id}: {found} rows in its files, "
            f"{rows} written (another attempt of this chunk removed some); run it again"
        )
    landed = dict(pending.landed)
    names = tuple(_name(p) for p in files)
    landed[plan.chunk] = ChunkLanded(names, rows, highest, snapshot, counted)
    new = dataclasses.replace(pending, landed=landed, touched=splitting._now())
    assert log_ is not None
    lease.write_log(log_.with_pending(new))
    return rows


def _read_and_write(
    run: JobRun,
    resolver: SecretResolver,
    options: ExtractOptions,
    plan: SplitPlan,
    snapshot: str = "",
) -> tuple[int, bool]:
    """(rows, whether they had landed before this attempt). `snapshot`: the exported snapshot
    of the source every chunk of the split load reads (`ingest.job.split_snapshot`)."""
    task, settings = run.task, run.settings
    job = task.job
    assert plan.chunk is not None
    deadline: Deadline = _deadline(job, settings)
    run.deadline = deadline
    builder = run.builder = get_builder(job.source_type, _source_timeouts(settings, deadline))
    secrets = builder.secrets(resolver, job.source_name)
    run.where = f"source {job.source_name!r} ({builder.describe(secrets)})"
    dest = Destination.from_url(task.destination)
    ensure_dataset(dest, job.source_name)
    part = f" chunk {plan.chunk}"

    def briefly() -> JobLease:
        return _lease(task, dest, settings, part)

    with briefly() as lease:
        landed = _begin(dest, lease, task, plan)
    if landed is not None:
        return landed, True
    attempt = uuid.uuid4().hex[:8]
    prefix = splitting.chunk_prefix(plan.chunk, attempt)
    run.workdir = _working_dir(settings, task)
    run.workdir.mkdir(parents=True, exist_ok=True)
    pipeline = dlt.pipeline(
        pipeline_name=task.pipeline_name,
        destination=dest.dlt_destination(file_prefix=prefix),
        dataset_name=job.source_name,
        pipelines_dir=str(run.workdir),
    )
    pipeline.sync_destination()  # the lake's schema; the cursor is not this chunk's to use
    ledger.forget_cursor(pipeline)
    lower, upper = plan.range_of(plan.chunk)
    key_range = KeyRange(plan.column, lower, upper, plan.chunk == 0, plan.watermark_below)
    options = dataclasses.replace(options, key_range=key_range)
    highest = None
    if task.backfill:  # its watermark range, and the highest watermark read in it
        options = dataclasses.replace(
            options, initial_watermark=task.backfill.start, end_watermark=task.backfill.end
        )
        highest = HighestWatermark(job.watermark_column or "")
    counted: int | None = None
    if snapshot:  # one state for every chunk: each read of either path imports it
        engine = importing_engine(builder, secrets, snapshot)
        clock = time.monotonic()
        try:  # its range's rows in that state, for the commit's reconciliation
            counted = builder.range_count(engine, job, key_range)  # type: ignore[attr-defined]
            log.info(
                "job %s chunk %d: %d rows of its range counted in the snapshot in %.2f s",
                job.job_id,
                plan.chunk,
                counted,
                time.monotonic() - clock,
            )
        except Exception as exc:
            engine.dispose()
            if not gone(exc):
                raise
            log.warning(
                "job %s chunk %d: the exported snapshot %s ended (its holder died or was "
                "stopped): this chunk reads its range at its own time, and the reconciliation "
                "says the load was not read in one state",
                job.job_id,
                plan.chunk,
                snapshot,
            )
            snapshot = ""
    if snapshot:
        options = dataclasses.replace(options, snapshot=snapshot)
    else:
        engine = builder.engine(secrets)  # type: ignore[attr-defined]
    run.close_later(engine.dispose)  # no pooled connection outlives the chunk
    source = builder.build_resource(job, secrets, dataclasses.replace(options, engine=engine))
    resource = source.resource
    resource.apply_hints(table_name=job.lake_table)
    resource.add_step(Progress(job, None, highest, deadline, None).as_step())

    def touch() -> None:
        with briefly() as lease:
            _touch(lease, plan)

    resource.add_map(_Toucher(touch))
    with load_id_exactly(plan.load_id):
        pipeline.extract([resource], loader_file_format="parquet")
    deadline.check()
    with briefly() as lease:  # not abandoned meanwhile (narrows what a stalled chunk writes)
        pending = splitting.check_pending(lease.read_log(), plan, lease)
    if plan.chunk in pending.landed:
        return pending.landed[plan.chunk].rows, True
    with committing_with(_Landing()):
        written = _commit(pipeline, job.lake_table, settings.load_workers)
    with briefly() as lease:
        top = highest.text if highest is not None else ""
        rows = _land(dest, lease, task, plan, attempt, written.rows, top, snapshot, counted)
        return rows, False


def run_chunk(
    task: Task,
    *,
    settings: Settings | None = None,
    resolver: SecretResolver | None = None,
) -> ChunkResult:
    """Run one chunk of a split load (see module doc)."""
    settings = settings or Settings.from_env()
    apply_dlt_defaults(settings)
    use_lake_parquet_writer(settings.parquet_dictionary)
    use_sequenced_load_ids()
    spec = task
    plan = spec.split
    if plan is None or plan.chunk is None:
        raise ValueError("run_chunk needs a task with a split plan and a chunk number")
    job = spec.job
    redactor = resolver.redactor if resolver else Redactor()
    resolver = resolver or build_resolver(
        settings.secrets_file, settings.key_vault_url, redactor=redactor
    )
    options = ExtractOptions(
        chunk_size=settings.chunk_size,
        backend=settings.backend,
        partitions=settings.read_partitions,
    )
    clock = time.monotonic()
    run = JobRun(spec, settings)
    status, error, retriable, rows, again = Status.SUCCESS, "", False, 0, False
    with job_context(spec.run_id, job.job_id):
        try:
            snapshot = (plan.snapshot if plan else None) or ""
            rows, again = _read_and_write(run, resolver, options, plan, snapshot)
        except LeaseBusy as exc:
            status, error, retriable = Status.FAILED, str(exc), True
        except BaseException as exc:
            if is_process_exit(exc):
                raise
            failure = classify_error(
                exc,
                job,
                run.where or f"source {job.source_name!r}",
                builder=run.builder,
                redact=redactor.redact,
            )
            status, error, retriable = Status.FAILED, str(failure), failure.retriable
            if gone(exc):  # it ended between this chunk's count and its read: nothing landed
                retriable = True
                error = (
                    f"chunk {plan.chunk}: the exported snapshot {plan.snapshot} ended while it "
                    f"read; run it again (it then reads its range at its own time): {error}"
                )
            log.debug("job %s chunk %d failure detail", job.job_id, plan.chunk, exc_info=True)
        finally:
            run.close()
    duration = round(time.monotonic() - clock, 3)
    if status == Status.SUCCESS:
        log.info(
            "job %s: chunk %d of %d %s (%.1f s)",
            job.job_id,
            plan.chunk,
            plan.chunks,
            f"{'had landed' if again else 'landed'} {rows:,} rows",
            duration,
        )
    else:
        log.error("job %s: chunk %d failed: %s", job.job_id, plan.chunk, error)
    return ChunkResult(
        job_id=job.job_id,
        chunk=plan.chunk,
        chunks=plan.chunks,
        status=status,
        rows=rows,
        already_landed=again,
        duration_s=duration,
        error=short_error(redactor.redact(error)),
        retriable=retriable,
    )
