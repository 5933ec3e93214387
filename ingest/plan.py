"""Step 1 of a run: configuration + filters -> the list of tasks to run.

Pure and cheap (reads the config file, nothing else), so the Durable orchestrator can call it
in an activity and the CLI can print it. The output is a `Plan` (`ingest.model.plan`): its
JSON (`Plan.to_dict`) holds no secrets.
"""

from __future__ import annotations

import datetime as dt
import secrets as _random
from collections.abc import Iterable
from typing import Any

from ingest.checks.backfill import check_range
from ingest.config import IngestConfig
from ingest.configuration import load_config
from ingest.errors import RequestError
from ingest.model.plan import BackfillRange, Plan, Skipped
from ingest.model.task import Backfill, Task
from ingest.vocabulary import WEEKDAYS


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"run-{now:%Y%m%dT%H%M%SZ}-{_random.token_hex(3)}"


def _check_names(kind: str, wanted: Iterable[str], known: Iterable[str]) -> list[str]:
    wanted = [w for w in wanted]
    known_set = set(known)
    unknown = [w for w in wanted if w not in known_set]
    if unknown:
        raise RequestError(
            f"unknown {kind}(s): {', '.join(unknown)}; known: {', '.join(sorted(known_set))}"
        )
    return wanted


def plan_from_config(
    config: IngestConfig,
    *,
    destination: str,
    run_id: str,
    jobs: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    full_refresh: bool = False,
    scheduled_weekday: str | None = None,
) -> Plan:
    """Select the jobs of this run.

    - `jobs` / `sources`: only these (unknown names raise RequestError listing the known ones);
    - disabled jobs never run; when asked for by id they are listed under `skipped`;
    - `scheduled_weekday` (MON..SUN, New York): a scheduled run skips WEEKLY jobs of other days.
    """
    wanted_jobs = _check_names("job id", jobs or [], (j.job_id for j in config.jobs))
    wanted_sources = _check_names("source", sources or [], (j.source_name for j in config.jobs))
    if scheduled_weekday is not None and scheduled_weekday not in WEEKDAYS:
        raise RequestError(f"weekday {scheduled_weekday!r} is not one of {WEEKDAYS}")
    tasks: list[Task] = []
    skipped: list[Skipped] = []
    for job in config.jobs:
        if wanted_jobs and job.job_id not in wanted_jobs:
            continue
        if wanted_sources and job.source_name not in wanted_sources:
            continue
        if not job.enabled:
            if wanted_jobs:
                skipped.append(Skipped(job.job_id, "disabled (enabled = N)"))
            continue
        if scheduled_weekday and not job.runs_on(scheduled_weekday):
            skipped.append(Skipped(job.job_id, f"scheduled {job.schedule}"))
            continue
        tasks.append(Task(run_id, job, destination, full_refresh, config.path))
    return Plan(
        run_id=run_id,
        destination=destination,
        config_path=config.path,
        tasks=tuple(tasks),
        skipped=tuple(skipped),
        warnings=tuple(config.warnings),
        full_refresh=full_refresh,
    )


def plan(
    config_path: str,
    *,
    destination: str,
    run_id: str | None = None,
    jobs: Iterable[str] | None = None,
    sources: Iterable[str] | None = None,
    full_refresh: bool = False,
    scheduled_weekday: str | None = None,
) -> Plan:
    """Read the configuration and select the jobs of this run (see `plan_from_config`).

    Raises ConfigError (bad file) or RequestError (unknown job/source); both mean: nothing runs.
    """
    config = load_config(config_path)
    return plan_from_config(
        config,
        destination=destination,
        run_id=run_id or new_run_id(),
        jobs=jobs,
        sources=sources,
        full_refresh=full_refresh,
        scheduled_weekday=scheduled_weekday,
    )


def plan_backfill(
    config_path: str,
    destination: str,
    job_id: str,
    start: Any,
    end: Any = None,
    run_id: str | None = None,
) -> Plan:
    """The plan of a backfill run: one task for `job_id` with its `Backfill` range, and the
    range in `Plan.backfill`. Raises ConfigError / RequestError (nothing runs)."""
    config = load_config(config_path)
    try:
        job = config.job(job_id)
    except KeyError:
        known = ", ".join(j.job_id for j in config.jobs)
        raise RequestError(f"unknown job id: {job_id}; known: {known}") from None
    start_text, end_text = check_range(job, start, end)
    run_id = run_id or new_run_id()
    task = Task(run_id, job, destination, False, config.path, Backfill(start_text, end_text))
    warnings = list(config.warnings)
    if not job.enabled:
        warnings.append(f"job {job.job_id} is disabled (enabled = N); backfilling it as asked")
    return Plan(
        run_id=run_id,
        destination=destination,
        config_path=config.path,
        tasks=(task,),
        warnings=tuple(warnings),
        backfill=BackfillRange(job.job_id, start_text, end_text),
    )
