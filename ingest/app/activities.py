"""The activity bodies: each calls one step of the engine.

Durable runs activities at least once, so each is safe to run again: `plan_run` and
`ingest_table` overwrite their own files in the run store (`ingest.app.runstore`), `run_job` is
idempotent per task (run id, job, kind) and holds the job's lease while it loads (a second
attempt of the same task waits for the first and reports its load), `record_failure` never
replaces a loaded table's result, and `write_audit` writes each load's row once. Payloads are
small JSON (references into the run store, compact results, counts), never data or secrets.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from ingest.app.environment import resolve_config_path, settings
from ingest.app.instances import active_run_ids
from ingest.app.outcomes import (
    SPLIT,
    add_result,
    capped_jobs,
    compact_result,
    compact_views,
    empty_tally,
)
from ingest.model.result import JobResult
from ingest.settings import Settings
from ingest.vocabulary import Status

log = logging.getLogger(__name__)


#: the error of a planned table that has no result in the run store when the audit is written
NO_RESULT_ERROR = (
    "no result was recorded for this table: its activity did not finish (see the run's "
    'Durable history); run it again with POST /api/runs {"jobs": [...]}'
)
MAX_WARNINGS = 10
MAX_WARNING_CHARS = 300


def _engine() -> SimpleNamespace:
    """The engine modules this module runs: the one lazy import of them here (not cached:
    each call reads the modules' current names, as an import in the function would)."""
    # engine modules load when this runs, not at start-up (cold start)
    from ingest.app.http_api import plan_request
    from ingest.app.runstore import RunStore
    from ingest.audit import write_audit as append
    from ingest.errors import is_process_exit
    from ingest.job import chunk as chunks
    from ingest.job import run_job
    from ingest.job import split_snapshot as snapshots
    from ingest.lake.destination import Destination
    from ingest.model.result import ChunkResult, failed_result
    from ingest.model.run import Run, Waited
    from ingest.reports.report_files import report_after_run
    from ingest.views.refresh import refresh_after_run

    return SimpleNamespace(
        ChunkResult=ChunkResult,
        Destination=Destination,
        Run=Run,
        RunStore=RunStore,
        Waited=Waited,
        append=append,
        chunks=chunks,
        failed_result=failed_result,
        is_process_exit=is_process_exit,
        plan_request=plan_request,
        refresh_after_run=refresh_after_run,
        report_after_run=report_after_run,
        run_job=run_job,
        snapshots=snapshots,
    )


class RetriableTableError(RuntimeError):
    """Raised by `ingest_table` for a FAILED result that another attempt may fix, so that
    Durable's retry policy runs the activity again."""


def _payload(value: Any) -> Any:
    """Activity inputs arrive decoded; accept a JSON string too (older workers, tests)."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def prepare_process(engine: bool = False) -> None:
    """Once per worker process, cheap after that: with `engine`, the engine's libraries
    (dlt etc., imported GC-paused by `ingest.runtime.warmup`); Application Insights export (a no-op
    without APPLICATIONINSIGHTS_CONNECTION_STRING) and the secret-redaction filter on every log
    handler, installed after the host's and the exporter's handlers exist."""
    runtime = _runtime()
    if engine:
        runtime.preload_engine()
    runtime.configure()
    runtime.route_dlt_logging()  # dlt's records through the host's handlers, not their own
    runtime.install_redaction()


def _runtime() -> SimpleNamespace:
    """What sets a worker process up (logging, redaction, telemetry, the engine's warm-up):
    the one lazy import of it here; the engine's own modules load after it (`_engine`)."""
    # the process's set-up loads when an activity first runs, not at start-up (cold start)
    from ingest.runtime.logsetup import route_dlt_logging
    from ingest.runtime.warmup import preload_engine
    from ingest.secrets.redaction import install_redaction
    from ingest.telemetry import configure

    return SimpleNamespace(
        configure=configure,
        install_redaction=install_redaction,
        preload_engine=preload_engine,
        route_dlt_logging=route_dlt_logging,
    )


def retry_settings(current: Settings) -> dict[str, Any]:
    """What the orchestrator needs to know (it must not read the environment itself)."""
    return {
        "max_parallel": current.max_parallel,
        "retry_max_attempts": current.retry_max_attempts,
        "retry_first_interval_ms": current.retry_first_interval_s * 1000,
        "retry_backoff": current.retry_backoff,
    }


def plan_run(request: Any) -> dict[str, Any]:
    """Activity `plan_run`: read the configuration, select this run's tasks, store the plan in
    the run store.

    `request`: {"run_id", "jobs", "sources", "full_refresh", "scheduled_weekday"} or
    {"run_id", "backfill": {"job", "from", "to"}}.
    Returns counts and settings only: {"run_id", "destination", "total", "batch_size",
    "batches", "full_refresh", "skipped" (count), "warnings" (at most MAX_WARNINGS),
    "settings", "started_at"}. ConfigError / RequestError propagate: the orchestration fails,
    nothing is loaded.
    """
    prepare_process(engine=True)  # planning imports dlt (lake names follow its naming)
    engine = _engine()
    request = _payload(request) or {}
    current = settings()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    planned = engine.plan_request(request, request["run_id"], current)
    store = engine.RunStore(planned.destination, planned.run_id)
    meta = store.write_plan(
        planned, current.batch_size, started_at=started_at, trigger=request.get("trigger", "http")
    )
    log.info(
        "run %s planned: %d table(s) in %d batch(es), %d skipped; plan in %s",
        planned.run_id,
        meta["total"],
        meta["batches"],
        len(planned.skipped),
        store.path(),
    )
    warnings = [w[:MAX_WARNING_CHARS] for w in planned.warnings[:MAX_WARNINGS]]
    return {
        "run_id": planned.run_id,
        "destination": planned.destination,
        "total": meta["total"],
        "batch_size": meta["batch_size"],
        "batches": meta["batches"],
        "full_refresh": planned.full_refresh,
        "skipped": len(planned.skipped),
        "warnings": warnings,
        "warnings_total": len(planned.warnings),
        "settings": retry_settings(current),
        "started_at": started_at,
    }


def ingest_table(reference: Any) -> dict[str, Any]:
    """Activity `ingest_table`: load one table (one dlt pipeline).

    Whatever the job raises, a native library's panic included, ends as its FAILED result in
    the run store (never as a failed activity that would fail its batch); only a request to
    stop the process passes through (`ingest.errors.is_process_exit`).

    `reference`: {"run_id", "destination", "batch", "position"} (and `commit`: a split table's
    commit): the task is read from the run store, the full result written there (overwriting
    an earlier attempt's), the compact result returned. A FAILED result that may succeed on
    another attempt is raised as `RetriableTableError` (Durable retries it with the run's
    retry policy). A load it split returns {"job_id", "status": "SPLIT", "chunks"} and
    `hold: true` when its chunks read one exported snapshot (`hold_snapshot`).
    """
    prepare_process(engine=True)
    engine = _engine()
    reference = _payload(reference)
    store = engine.RunStore(reference["destination"], reference["run_id"])
    task = store.task(int(reference["batch"]), int(reference["position"]))
    job_id = task.job.job_id
    commit = bool(reference.get("commit"))
    if commit:  # the commit of a split table: its chunks have run (ingest.job.split)
        task = replace(task, split=store.split(job_id).for_chunk(None))
    result: JobResult
    current = settings()
    try:
        # a job another writer is loading ends as a retriable failure: Durable tries again later
        result = engine.run_job(task, settings=current, on_busy="retry")
    except BaseException as exc:  # run_job reports failures itself; this is the last guard
        if engine.is_process_exit(exc):
            raise
        log.error("job %s failed outside its run: %s", job_id, type(exc).__name__)
        result = engine.failed_result(task, f"{type(exc).__name__} while running the job")
    if result.split is not None:  # not ended: its chunks run next, then its commit
        store.write_split(job_id, result.split)
        started = {"job_id": job_id, "status": SPLIT, "chunks": result.split.chunks}
        if engine.snapshots.wanted(task, current):  # a `hold_snapshot` beside the chunks
            started["hold"] = True
        return started
    if commit:  # whatever it did: the snapshot's holder may let go
        store.end_split(job_id)
    store.write_result(result)
    if result.status == Status.FAILED and result.retriable:
        raise RetriableTableError(f"job {job_id}: {result.error or 'failed'}")
    return compact_result(result)


def ingest_chunk(reference: Any) -> dict[str, Any]:
    """Activity `ingest_chunk`: one chunk of a split table (`ingest.job.chunk`).

    `reference`: {"run_id", "destination", "batch", "position", "chunk", "hold" (optional)}:
    the task and the split plan are read from the run store. With `hold`, the chunk first
    waits (at most SNAPSHOT_WAIT_S) for the exported snapshot `hold_snapshot` records and reads
    it; not recorded by then: a retriable failure (nothing read). A snapshot that cannot be
    imported any more: the chunk reads its range at its own time (`ingest.job.split_snapshot`).
    Returns {"job_id", "chunk", "status", "rows"}; a FAILED chunk that may succeed on another
    attempt is raised as `RetriableTableError` (Durable retries it alone). Run twice, it lands
    once."""
    prepare_process(engine=True)
    engine = _engine()
    reference = _payload(reference)
    store = engine.RunStore(reference["destination"], reference["run_id"])
    task = store.task(int(reference["batch"]), int(reference["position"]))
    job_id = task.job.job_id
    number = int(reference["chunk"])
    plan = store.split(job_id).for_chunk(number)
    if reference.get("hold"):  # the split load's chunks read the snapshot `hold_snapshot` holds
        recorded = _wait_for_snapshot(store, job_id)
        if recorded is None:  # its holder has not started: free this slot, try again later
            raise RetriableTableError(
                f"job {job_id} chunk {number}: the snapshot of the split load is not exported "
                f"after {SNAPSHOT_WAIT_S:.0f} s (its hold_snapshot activity has not run yet); "
                "trying again later"
            )
        if recorded.get("snapshot"):
            plan = replace(plan, snapshot=str(recorded["snapshot"]))
    task = replace(task, split=plan)
    try:
        result = engine.chunks.run_chunk(task, settings=settings())
    except BaseException as exc:  # run_chunk reports failures itself; this is the last guard
        if engine.is_process_exit(exc):
            raise
        result = engine.ChunkResult.failed(job_id, number, type(exc).__name__)
    if result.status == Status.FAILED:
        error = result.error or "failed"
        if result.retriable:
            raise RetriableTableError(f"job {job_id} chunk {number}: {error}")
        log.error("job %s chunk %d failed: %s", job_id, number, error)
    return {"job_id": job_id, "chunk": number, "status": str(result.status), "rows": result.rows}


#: how long a chunk waits for its split load's exported snapshot to be recorded
SNAPSHOT_WAIT_S = 120.0
#: how often it looks
SNAPSHOT_POLL_S = 1.0


def _wait_for_snapshot(store: Any, job_id: str) -> dict[str, Any] | None:
    """What the holder of the split table's snapshot recorded (None: nothing within
    SNAPSHOT_WAIT_S)."""
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while True:
        recorded = store.snapshot(job_id)
        if recorded is not None or time.monotonic() >= deadline:
            return recorded
        time.sleep(SNAPSHOT_POLL_S)


def hold_snapshot(reference: Any) -> dict[str, Any]:
    """Activity `hold_snapshot`: the exported snapshot every chunk of a split FULL load reads
    (`ingest.job.split_snapshot`; scheduled by `ingest_batch` next to the chunks when the
    start returned `hold`).

    `reference`: {"run_id", "destination", "batch", "position"}. It exports the snapshot
    (a REPEATABLE READ transaction on the source, `pg_export_snapshot()`), records its id in
    the run store (`splits/<job_id>.snapshot.json`), where the chunks wait for it, and keeps
    the transaction open until every chunk has landed, the split load is no longer pending,
    its commit ended, or min(INGEST_SPLIT_STALE_S, INGEST_JOB_TIMEOUT_S) passed (inside the
    activity's time limit); it looks every `HOLD_POLL_S`. It occupies one activity slot of
    its instance all that time (one idle connection to the source).

    A snapshot the source does not export: recorded as none (the chunks read at their own
    times). Run again after an attempt exported one (Durable's retry after a crash, or a
    duplicate): that snapshot still importable means the earlier attempt still holds it, and
    this one ends; not importable, it is recorded lost (the chunks not read yet read at their
    own times, the reconciliation says so). Returns {"job_id", "snapshot", "ended", "held_s"}.
    """
    prepare_process(engine=True)
    engine = _engine()
    snapshots = engine.snapshots
    reference = _payload(reference)
    store = engine.RunStore(reference["destination"], reference["run_id"])
    task = store.task(int(reference["batch"]), int(reference["position"]))
    job_id = task.job.job_id
    plan = store.split(job_id)
    current = settings()
    earlier = store.snapshot(job_id)
    if earlier is not None:  # an earlier attempt of this activity exported (or decided) it
        exported = earlier.get("snapshot")
        if not exported:
            return {"job_id": job_id, "snapshot": None, "ended": "no snapshot", "held_s": 0}
        if snapshots.importable(task, current, str(exported)):
            why = "an earlier attempt of hold_snapshot still holds it"
        else:
            why = "lost: its holder ended before every chunk landed"
            store.write_snapshot(job_id, None, lost=exported, reason=why)
            log.warning("job %s: exported snapshot %s %s", job_id, exported, why)
        return {"job_id": job_id, "snapshot": exported, "ended": why, "held_s": 0}
    try:
        held = snapshots.export(task, current)
    except Exception as exc:  # the chunks must learn that there is none: they wait for it
        log.warning("job %s: no exported snapshot: %s", job_id, type(exc).__name__)
        held = None
    if held is None:
        reason = "the source exported no snapshot (see the log)"
        if store.claim_snapshot(job_id, None, reason=reason) is None:
            return {"job_id": job_id, "snapshot": None, "ended": reason, "held_s": 0}
        why = "another attempt of hold_snapshot recorded the snapshot first"
        return {"job_id": job_id, "snapshot": None, "ended": why, "held_s": 0}
    clock = time.monotonic()
    dest = engine.Destination.from_url(task.destination)

    def ended() -> str | None:
        if store.split_ended(job_id):
            return "the split load's commit ended"
        return snapshots.holder_done(dest, task, plan)

    try:
        first = store.claim_snapshot(job_id, held.id)
        if first is not None:  # an attempt running at the same time recorded its own first
            why = "another attempt of hold_snapshot recorded its snapshot first"
            log.info("job %s: snapshot %s not used: %s", job_id, held.id, why)
            return {"job_id": job_id, "snapshot": first.get("snapshot"), "ended": why, "held_s": 0}
        why = snapshots.hold(held, ended, min(current.split_stale_s, current.job_timeout_s))
    finally:
        held.close()
    held_s = round(time.monotonic() - clock, 1)
    log.info("job %s: exported snapshot %s held %.1f s: %s", job_id, held.id, held_s, why)
    return {"job_id": job_id, "snapshot": held.id, "ended": why[:200], "held_s": held_s}


def record_failure(request: Any) -> dict[str, Any]:
    """Activity `record_failure`: store FAILED results for tables whose activity (or whole
    batch) failed after its retries, so the audit has their reason.

    `request`: {"run_id", "destination", "batch", "position" (one table; omitted: every table
    of the batch without a result), "error"}. A table whose stored result says it loaded
    (SUCCESS/WARN/SKIPPED) keeps it. Returns the tally of the tables it covered.
    """
    engine = _engine()
    request = _payload(request)
    store = engine.RunStore(request["destination"], request["run_id"])
    tasks = store.batch(int(request["batch"]))
    if request.get("position") is not None:
        tasks = [tasks[int(request["position"])]]
    stored = store.results(task.job.job_id for task in tasks)
    outcome = empty_tally()
    for task in tasks:
        result = stored.get(task.job.job_id)
        if result is None or result.status == Status.FAILED:
            result = engine.failed_result(task, str(request["error"]))
            store.write_result(result)
            if store.has_split(task.job.job_id):  # its snapshot's holder may let go
                store.end_split(task.job.job_id)
            log.warning("job %s recorded FAILED: %s", result.job_id, result.error)
        add_result(outcome, compact_result(result))
    return outcome


def write_audit(request: Any) -> dict[str, Any]:
    """Activity `write_audit`: read the run's results from the run store, append its audit
    rows (and telemetry), then refresh the lake's views and write the run's HTML report (a
    failure there is logged and reported, never fails the audit); return the run summary.

    `request`: {"run_id", "destination", "started_at", "trigger", "waited" (optional)}. A
    planned table without a stored result gets a FAILED row saying so. The summary lists at
    most MAX_FAILED_JOBS_LISTED failed job ids (`failed_jobs_total` counts them all).
    """
    prepare_process()
    engine = _engine()
    request = _payload(request)
    store = engine.RunStore(request["destination"], request["run_id"])
    tasks = store.tasks()
    stored = store.results(task.job.job_id for task in tasks)
    run = engine.Run(
        run_id=request["run_id"],
        destination=request["destination"],
        results=tuple(
            stored.get(task.job.job_id) or engine.failed_result(task, NO_RESULT_ERROR)
            for task in tasks
        ),
        started_at=request.get("started_at"),
        trigger=request.get("trigger"),
        waited=engine.Waited.from_dict(request.get("waited")),
    )
    summary = engine.append(run)
    views = compact_views(refresh_views_after(run.destination, run.run_id))
    summary = replace(summary, views=views, report=report_after(run.destination, run.run_id))
    return {**summary.to_dict(), **capped_jobs(list(summary.failed_jobs))}


def refresh_views_after(destination: str, run_id: str) -> dict[str, Any]:
    """The views step of a run (ingest.views.refresh), for the app's configuration."""
    engine = _engine()
    config_path = resolve_config_path(settings().config_path)
    return engine.refresh_after_run(config_path, destination, run_id)


def report_after(destination: str, run_id: str) -> dict[str, Any]:
    """The report step of a run (ingest.reports.report_files): never raises."""
    engine = _engine()
    return engine.report_after_run(destination, run_id)


async def find_active_runs(request: Any, client: Any) -> list[str]:
    """Activity `find_active_runs` (with a Durable client): ids of the active runs other than
    `request["exclude"]`, at most 5. A waiting scheduled run polls it."""
    request = _payload(request) or {}
    return (await active_run_ids(client, set(request.get("exclude") or [])))[:5]
