"""The local run: the same three steps as the Durable orchestrator, with a process pool.

plan -> run_job for each task (in `workers` processes) -> write_audit.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from ingest.job import run_job
from ingest.results import JobResult, short_error
from ingest.settings import Settings

log = logging.getLogger(__name__)


def _init_worker(level: int) -> None:
    from ingest.logsetup import configure_logging

    configure_logging(level)


def failed_result(task: Mapping[str, Any], error: str) -> dict[str, Any]:
    job = task["job"]
    return JobResult(
        run_id=task["run_id"],
        job_id=job["job_id"],
        source_type=job["source_type"],
        source_name=job["source_name"],
        table_name=job["table_name"],
        load_type=job["load_type"],
        status="FAILED",
        watermark_column=job.get("watermark_column") or "",
        error=short_error(error),
    ).to_dict()


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
        for index, task in enumerate(tasks):
            done(index, run_job(task, settings=settings))
    else:
        context = multiprocessing.get_context("spawn")
        level = logging.getLogger().getEffectiveLevel()
        with ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(level,),
        ) as pool:
            futures = {
                pool.submit(run_job, task, settings=settings): index
                for index, task in enumerate(tasks)
            }
            for future in as_completed(futures):
                index = futures[future]
                try:
                    done(index, future.result())
                except Exception as exc:  # a worker process died (killed, out of memory)
                    log.error("worker running job %s died: %s", tasks[index]["job"]["job_id"], exc)
                    done(index, failed_result(tasks[index], f"worker process died: {exc}"))
    return [results[i] for i in range(len(tasks))]
