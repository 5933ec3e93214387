"""The local run: the same three steps as the Durable orchestrator, with a process pool.

plan -> run_job for each task (in `workers` processes) -> write_audit.

One task's failure never ends the run: `run_job` reports it as that job's FAILED result, and
here a task that still raises (anything but a request to stop, `ingest.errors.is_process_exit`;
also a native library's panic, a `BaseException`) or whose worker process died gets a FAILED
result too; the other tasks run and the audit has a row for every task.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import forkserver
from typing import Any

from ingest.errors import is_process_exit
from ingest.job import run_job
from ingest.job.chunk import run_chunk
from ingest.job.progress import SplitProgress
from ingest.job.split_snapshot import HeldSnapshot
from ingest.job.split_snapshot import export as export_snapshot
from ingest.lake.destination import Destination
from ingest.limits import MAX_REASON_CHARS, shorten
from ingest.model.result import ChunkResult, JobResult, failed_result
from ingest.model.split import SplitPlan
from ingest.model.task import Task
from ingest.runtime.logsetup import configure_logging, current_log_format
from ingest.runtime.warmup import preload_engine
from ingest.secrets.redaction import redact_text
from ingest.settings import Settings, replace_environment
from ingest.settings import environment as settings_environment
from ingest.telemetry import configure as configure_telemetry
from ingest.vocabulary import Status

log = logging.getLogger(__name__)


def _init_worker(level: int, log_format: str) -> None:

    configure_logging(level, log_format)
    configure_telemetry()
    preload_engine()  # a no-op under the fork server, which imported and froze it already


def _pool_context() -> Any:
    """Worker processes start from a fork server that has already imported the engine: each
    worker costs a fork, not the ~1 s import of dlt. Where fork servers do not exist
    (Windows, macOS defaults), spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ingest.runtime.forkserver_preload"])
        return context
    return multiprocessing.get_context("spawn")


def prepare_local_run(destination: str, workers: int = 1) -> None:
    """Call before planning a local run: a bad lake URL is a usage error found before anything
    else (ingest.lake.destination). With workers > 1 the pool's fork server starts now, so
    its import of the engine overlaps this process's own; this process imports the engine too
    (GC paused, `ingest.runtime.warmup`), since planning needs dlt (lake names follow its naming
    convention) and serial jobs run here."""

    Destination.from_url(destination)
    if workers > 1 and "forkserver" in multiprocessing.get_all_start_methods():
        _pool_context()
        forkserver.ensure_running()
    preload_engine()


def _run_isolated(task: Task, settings: Settings) -> JobResult:
    """`run_job`, and a FAILED result for whatever still escapes it (never a process exit)."""
    try:
        return run_job(task, settings=settings)
    except BaseException as exc:
        if is_process_exit(exc):
            raise
        job_id = task.job.job_id
        log.error("job %s failed outside its run: %s", job_id, type(exc).__name__)
        reason = redact_text(shorten(str(exc).strip(), MAX_REASON_CHARS))
        return failed_result(task, f"job {job_id} failed: {type(exc).__name__}: {reason}")


def _run_with_environment(environment: dict[str, str], task: Task, settings: Settings) -> JobResult:
    """Run a job in a pool worker with the caller's environment (settings and secrets read
    from the environment must be the caller's, not the fork server's from when it started)."""
    replace_environment(environment)
    return _run_isolated(task, settings)


def _run_chunk_isolated(task: Task, settings: Settings) -> ChunkResult:
    """`run_chunk`, and a FAILED chunk result for whatever still escapes it."""
    try:
        return run_chunk(task, settings=settings)
    except BaseException as exc:
        if is_process_exit(exc):
            raise
        reason = redact_text(shorten(str(exc).strip(), MAX_REASON_CHARS))
        return ChunkResult.failed(task.job.job_id, _chunk_of(task), reason)


def _chunk_of(task: Task) -> int:
    """The chunk a task of a split load runs."""
    return (task.split.chunk or 0) if task.split else 0


def _execute(
    environment: dict[str, str] | None, step: str, task: Task, settings: Settings
) -> JobResult | ChunkResult:
    """One step in a pool worker (with the caller's environment) or here: a job's task (which
    may split its load, or be a split load's commit) or a chunk of a split load."""
    if environment is not None:
        replace_environment(environment)
    if step == CHUNK:
        return _run_chunk_isolated(task, settings)
    return _run_isolated(task, settings)


JOB, CHUNK = "job", "chunk"


@dataclass
class _SplitState:
    """A split load in flight: its plan, chunks still running, attempts, failures."""

    plan: SplitPlan
    #: the source's exported snapshot every chunk reads, held here until every chunk ended
    snapshot: HeldSnapshot | None = None
    running: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


def run_tasks(
    tasks: Iterable[Task],
    settings: Settings,
    workers: int = 1,
    on_result: Callable[[JobResult], None] | None = None,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
) -> list[JobResult]:
    """Run every task; one failure never stops the others. Results in task order.

    A task whose load is split (`ingest.job.split`) returns its plan instead of a result: its
    chunks then run over the same workers (a failed chunk is retried alone, up to
    INGEST_RETRY_MAX_ATTEMPTS tries), then its commit, whose result is the task's. A split
    FULL load of PostgreSQL reads one state of the table: this process holds the transaction
    whose snapshot every chunk imports, until every chunk ended (each counts its range in it
    for the commit's reconciliation: `ingest.job.split_snapshot`).
    `on_chunk` gets each chunk's result as JSON, with the table's progress under "table"."""
    tasks = list(tasks)
    results: dict[int, JobResult] = {}
    splits: dict[int, _SplitState] = {}
    progress = SplitProgress()
    queue: deque[tuple[int, str, Task]] = deque(
        (index, JOB, task) for index, task in enumerate(tasks)
    )

    def done(index: int, result: JobResult) -> None:
        results[index] = result
        if on_result:
            on_result(result)

    def finished(index: int, step: str, task: Task, result: JobResult | ChunkResult) -> None:
        if isinstance(result, JobResult) and result.split is not None:
            plan = result.split
            state = splits[index] = _SplitState(plan, export_snapshot(task, settings))
            if state.snapshot is not None:
                plan = state.plan = replace(plan, snapshot=state.snapshot.id)
            progress.started(task.job.job_id, plan.chunks)
            for chunk in range(plan.chunks):
                state.attempts[chunk] = 1
                state.running += 1
                queue.append((index, CHUNK, replace(task, split=plan.for_chunk(chunk))))
            return
        if isinstance(result, JobResult):
            ended = splits.pop(index, None)
            if ended is not None and ended.snapshot is not None:
                ended.snapshot.close()
            if ended is not None and ended.failures and result.status == Status.FAILED:
                first = min(ended.failures)
                error = f"chunk {first}: {ended.failures[first]}; {result.error}"
                result = replace(result, error=error)
            done(index, result)
            return
        state = splits[index]
        chunk = _chunk_of(task)
        job_id = task.job.job_id
        failed = result.status == Status.FAILED
        again = failed and result.retriable and state.attempts[chunk] < settings.retry_max_attempts
        progress.chunk_ended(job_id, chunk, result, final=not again)
        if on_chunk:
            on_chunk(
                {
                    **result.to_dict(),
                    "job_id": job_id,
                    "chunk": chunk,
                    "table": progress.snapshot(job_id),
                }
            )
        if again:
            state.attempts[chunk] += 1
            log.warning(
                "job %s: chunk %d failed, trying it again (%d of %d): %s",
                job_id,
                chunk,
                state.attempts[chunk],
                settings.retry_max_attempts,
                result.error,
            )
            queue.append((index, CHUNK, task))
            return
        if failed:
            state.failures[chunk] = result.error or "failed"
        state.running -= 1
        if state.running == 0:  # every chunk landed or gave up: the commit
            if state.snapshot is not None:  # the chunks counted in it: the source may vacuum
                state.snapshot.close()
                state.snapshot = None
            queue.append((index, JOB, replace(task, split=state.plan.for_chunk(None))))

    # one task, or one worker: jobs run in this process; a split load's chunks use the pool
    inline = workers <= 1 or len(tasks) <= 1
    if tasks:
        preload_engine()  # a no-op after prepare_local_run(); library callers may skip that
    pool: ProcessPoolExecutor | None = None
    futures: dict[Future[JobResult | ChunkResult], tuple[int, str, Task]] = {}
    environment = dict(settings_environment())
    try:
        while queue or futures:
            while queue:
                index, step, task = queue.popleft()
                if workers <= 1 or (step == JOB and inline):
                    finished(index, step, task, _execute(None, step, task, settings))
                    continue
                if pool is None:
                    pool = ProcessPoolExecutor(
                        max_workers=workers,
                        mp_context=_pool_context(),
                        initializer=_init_worker,
                        initargs=(logging.getLogger().getEffectiveLevel(), current_log_format()),
                    )
                future = pool.submit(_execute, environment, step, task, settings)
                futures[future] = (index, step, task)
            if not futures:
                continue
            ready, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in ready:
                index, step, task = futures.pop(future)
                result: JobResult | ChunkResult
                try:
                    result = future.result()
                except BaseException as exc:  # a worker process died (killed, out of memory)
                    if is_process_exit(exc):
                        raise
                    log.error("worker running job %s died: %s", task.job.job_id, exc)
                    if isinstance(exc, BrokenProcessPool) and pool is not None:
                        # the pool takes no more work: the next step starts a new one
                        pool.shutdown(wait=False, cancel_futures=True)
                        pool = None
                    if step == CHUNK:  # a chunk is retried alone (it cleans up after itself)
                        died = f"worker process died: {exc}"
                        result = ChunkResult.failed(task.job.job_id, _chunk_of(task), died)
                    else:
                        result = failed_result(task, f"worker process died: {exc}")
                finished(index, step, task, result)
    finally:
        if pool is not None:
            pool.shutdown()
        for state in splits.values():
            if state.snapshot is not None:
                state.snapshot.close()
    return [results[i] for i in range(len(tasks))]
