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
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import forkserver
from typing import Any

from ingest.errors import is_process_exit
from ingest.job import run_job
from ingest.lake.destination import Destination
from ingest.limits import MAX_REASON_CHARS, shorten
from ingest.model.result import failed_result
from ingest.runtime.logsetup import configure_logging, current_log_format
from ingest.runtime.warmup import preload_engine
from ingest.secrets.redaction import redact_text
from ingest.settings import Settings, replace_environment
from ingest.settings import environment as settings_environment
from ingest.telemetry import configure as configure_telemetry

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


def _run_isolated(task: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """`run_job`, and a FAILED result for whatever still escapes it (never a process exit)."""
    try:
        return run_job(task, settings=settings)
    except BaseException as exc:
        if is_process_exit(exc):
            raise
        job_id = task["job"]["job_id"]
        log.error("job %s failed outside its run: %s", job_id, type(exc).__name__)
        reason = redact_text(shorten(str(exc).strip(), MAX_REASON_CHARS))
        return failed_result(task, f"job {job_id} failed: {type(exc).__name__}: {reason}")


def _run_with_environment(
    environment: dict[str, str], task: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """Run a job in a pool worker with the caller's environment (settings and secrets read
    from the environment must be the caller's, not the fork server's from when it started)."""
    replace_environment(environment)
    return _run_isolated(task, settings)


def run_tasks(
    tasks: Iterable[Mapping[str, Any]],
    settings: Settings,
    workers: int = 1,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every task; one failure never stops the others. Results in task order."""
    tasks = list(tasks)
    results: dict[int, dict[str, Any]] = {}

    def done(index: int, result: dict[str, Any]) -> None:
        results[index] = result
        if on_result:
            on_result(result)

    if workers <= 1 or len(tasks) <= 1:
        if tasks:
            preload_engine()  # a no-op after prepare_local_run(); library callers may skip that
        for index, task in enumerate(tasks):
            done(index, _run_isolated(task, settings))
    else:
        context = _pool_context()
        level = logging.getLogger().getEffectiveLevel()
        with ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(level, current_log_format()),
        ) as pool:
            environment = dict(settings_environment())
            futures = {
                pool.submit(_run_with_environment, environment, task, settings): index
                for index, task in enumerate(tasks)
            }
            for future in as_completed(futures):
                index = futures[future]
                try:
                    done(index, future.result())
                except BaseException as exc:  # a worker process died (killed, out of memory)
                    if is_process_exit(exc):
                        raise
                    log.error("worker running job %s died: %s", tasks[index]["job"]["job_id"], exc)
                    done(index, failed_result(tasks[index], f"worker process died: {exc}"))
    return [results[i] for i in range(len(tasks))]
